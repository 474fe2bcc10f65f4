"""`on: file_created`: poll a folder; each top-level entry (a file, or a folder holding a series) is one study.

An entry counts once it is stable: its size, file count and newest mtime are the same on two consecutive polls
(`poll_seconds` apart). Writers that cannot guarantee that should write under a hidden name (`.x`) or with a
`.part`/`.tmp` suffix and rename when done: such names are never picked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rollout.executions.triggers.rules import FolderRule

IN_PROGRESS = (".part", ".partial", ".tmp")


@dataclass(frozen=True)
class Snapshot:
    """What must stay unchanged between two polls for an entry to count as complete."""

    size: int
    files: int
    newest_mtime_ns: int


class FolderWatcher:
    """Remembers the previous poll; `poll` returns the entries that just became stable."""

    def __init__(self, rule: FolderRule) -> None:
        self.rule = rule
        self._previous: dict[str, Snapshot] = {}
        self._handled: dict[str, Snapshot] = {}

    def poll(self) -> list[Path]:
        """Entries unchanged since the last poll and not handed out in that state before (oldest name first)."""
        current = {p.name: s for p in self._entries() if (s := snapshot(p)) is not None}
        stable = [name for name, snap in sorted(current.items())
                  if self._previous.get(name) == snap and self._handled.get(name) != snap]
        for name in stable:
            self._handled[name] = current[name]
        self._previous = current
        return [self.rule.folder / name for name in stable]

    def _entries(self) -> list[Path]:
        try:
            return [p for p in self.rule.folder.iterdir()
                    if not p.name.startswith(".") and not p.name.endswith(IN_PROGRESS)]
        except FileNotFoundError:
            return []


def snapshot(entry: Path) -> Snapshot | None:
    """Size, count and newest mtime of a file or a folder tree; None if it vanished or is not readable."""
    try:
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        stats = [f.stat() for f in files]
    except OSError:
        return None
    if not stats:
        return None  # an empty folder is a study still being copied
    return Snapshot(sum(s.st_size for s in stats), len(stats), max(s.st_mtime_ns for s in stats))
