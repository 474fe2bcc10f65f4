"""Atomic output writing: everything goes to a staging folder first, so a crash leaves no partial result."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

REPORT = "report.json"


def _staging_dir(out_dir: Path) -> tuple[Path, bool]:
    """Sibling temp folder (whole-folder rename), or one inside DIR when DIR is a mount point."""
    if out_dir.is_dir() and os.path.ismount(out_dir):
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir)), False
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent)), True


def _publish_files(tmp: Path, out_dir: Path) -> None:
    """Per-file atomic replace, report.json last so its presence means the result is complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in tmp.iterdir() if p.name != REPORT) + [REPORT]
    for name in names:
        os.replace(tmp / name, out_dir / name)
    tmp.rmdir()


def _publish_dir(tmp: Path, out_dir: Path) -> None:
    """Rename the staging folder onto DIR; an existing non-empty DIR is swapped out then deleted."""
    if out_dir.exists() and any(out_dir.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "prev")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return
    if out_dir.exists():
        out_dir.rmdir()
    os.replace(tmp, out_dir)


class AtomicOutput:
    """Staging folder whose writers may run in background threads (zlib and PIL release the GIL)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        self.tmp, self._whole_dir = _staging_dir(self.out_dir)
        self.tmp.chmod(0o755)  # mkdtemp makes 0700; the result folder must be readable by the next step
        self._pool = ThreadPoolExecutor(max_workers=2)
        self._futures: list[Future[None]] = []

    def submit(self, name: str, write: Callable[[Path], None]) -> None:
        """Start writing one file into the staging folder in the background."""
        self._futures.append(self._pool.submit(write, self.tmp / name))

    def publish(self, report: Callable[[], dict]) -> None:
        """Wait for all writers, add report.json (built last), then publish in one step."""
        for f in self._futures:
            f.result()
        (self.tmp / REPORT).write_text(json.dumps(report(), indent=2) + "\n")
        (_publish_dir if self._whole_dir else _publish_files)(self.tmp, self.out_dir)
        self._pool.shutdown()

    def abort(self) -> None:
        """Drop the staging folder: nothing partial is ever visible in DIR."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
