"""Commit statuses per stage: a Protocol the GitHub adapter implements, and the no-op used elsewhere."""

from __future__ import annotations

from typing import Literal, Protocol

State = Literal["pending", "success", "failure", "error"]


class CommitStatusSink(Protocol):
    """Reports one stage's state on one commit (GitHub commit statuses in Jenkins)."""

    def set_status(self, commit: str, context: str, state: State, description: str, target_url: str | None) -> None:
        """Create or replace the status named `context` on `commit`."""


class NoStatus:
    """Used where no token or no Jenkins build is present: statuses go nowhere."""

    def set_status(self, commit: str, context: str, state: State, description: str, target_url: str | None) -> None:
        """Do nothing."""
