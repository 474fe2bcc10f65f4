"""ETags and bodies of GitHub answers kept on disk, so an unchanged rescan costs only 304s."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def default_path() -> Path:
    """`$DELIVERY_CACHE/github-etags.json`, else under `~/.cache/biomarker-delivery/`."""
    root = os.environ.get("DELIVERY_CACHE") or str(Path.home() / ".cache" / "biomarker-delivery")
    return Path(root) / "github-etags.json"


class EtagCache:
    """URL → (ETag, body, Link header); `None` as path keeps it in memory only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, list[str]] = {}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                loaded = {}  # a damaged cache only costs full requests, never a wrong answer
            if isinstance(loaded, dict):
                self._entries = {k: v for k, v in loaded.items() if _is_entry(v)}

    def get(self, url: str) -> tuple[str, str, str] | None:
        """The cached (etag, body, link) of `url`, if any."""
        entry = self._entries.get(url)
        return (entry[0], entry[1], entry[2]) if entry else None

    def put(self, url: str, etag: str, body: str, link: str = "") -> None:
        """Remember the answer to `url` (a 304 carries no Link header, so pagination is cached too)."""
        self._entries[url] = [etag, body, link]

    def save(self) -> None:
        """Write the cache atomically (a crash leaves the old file whole)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".etags-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self._entries, handle)
        Path(tmp).replace(self.path)


def _is_entry(value: object) -> bool:
    return isinstance(value, list) and len(value) == 3 and all(isinstance(x, str) for x in value)
