"""The ownership marker: the first line of every job description we write; only marked jobs are ever touched."""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "delivery:owned"
# Anchored at the very start: user text comes after it, so a manifest cannot forge ownership of another job.
_MARKER = re.compile(r"\Adelivery:owned repo=([A-Za-z0-9._-]+) config-sha256=([0-9a-f]{64})(?:\n|\Z)")
PLACEHOLDER = "0" * 64


@dataclass(frozen=True)
class Ownership:
    """What a marker says: which repository the job was rendered for, and the hash of that rendering."""

    repo: str
    digest: str


def marker(repo: str, digest: str) -> str:
    """The marker line for `repo` rendered to `digest`."""
    return f"{PREFIX} repo={repo} config-sha256={digest}"


def parse(description: str | None) -> Ownership | None:
    """The ownership a job description carries, or None for jobs we do not own."""
    match = _MARKER.match(description or "")
    return Ownership(match.group(1), match.group(2)) if match else None
