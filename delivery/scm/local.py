"""The embedded default: a folder whose sub-folders (git repositories or plain folders) are the repositories."""

from __future__ import annotations

from pathlib import Path

from delivery.errors import ConfigError
from delivery.manifest.source import MAX_BYTES
from delivery.scm.model import JENKINSFILE, MANIFEST_FILE, Candidate, Repository, ScanOptions, ScanResult, judge

DEFAULT_BRANCH = "main"


class LocalBackend:
    """Scan `root`: every non-hidden sub-folder is one repository of the organisation `root.name`."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(f"local organisation {root} is not a folder", hint="Pass --org local:PATH to a folder.")
        self.root = root.resolve()
        self.org = self.root.name

    def scan(self, options: ScanOptions) -> ScanResult:
        """Every biomarker repository under the root that passes `options`."""
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        wanted = [p for p in folders if options.wants(p.name, ())]
        return self._collect(wanted, seen=len(folders))

    def scan_one(self, name: str) -> ScanResult:
        """Only sub-folder `name`; an empty result when it is gone."""
        path = self.root / name
        present = "/" not in name and not name.startswith(".") and path.is_dir()
        return self._collect([path] if present else [], seen=1)

    def _collect(self, folders: list[Path], *, seen: int) -> ScanResult:
        repos: list[Repository] = []
        invalid: list[str] = []
        problems: list[str] = []
        for folder in folders:
            verdict = judge(self._candidate(folder))
            problems.extend(verdict.problems)
            if verdict.repository is not None:
                repos.append(verdict.repository)
            elif verdict.invalid:
                invalid.append(verdict.name)
        return ScanResult(self.org, tuple(repos), tuple(invalid), tuple(problems), seen=seen)

    def _candidate(self, folder: Path) -> Candidate:
        manifest_path = folder / MANIFEST_FILE
        raw = None
        if manifest_path.is_file():
            # Oversized files are read only up to the limit; the validator reports them by size.
            with manifest_path.open("rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        return Candidate(
            self.org, folder.name, _default_branch(folder), folder.as_uri(), raw, (folder / JENKINSFILE).is_file()
        )


def _default_branch(folder: Path) -> str:
    """The checked-out branch of a git repository (read from .git/HEAD), else `main`."""
    head = folder / ".git" / "HEAD"
    try:
        text = head.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return DEFAULT_BRANCH
    prefix = "ref: refs/heads/"
    return text[len(prefix):] if text.startswith(prefix) else DEFAULT_BRANCH
