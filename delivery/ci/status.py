"""Commit statuses per stage: a Protocol the GitHub adapter implements, and the no-op used elsewhere."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, Protocol

from delivery.errors import DeliveryError

State = Literal["pending", "success", "failure", "error"]


class CommitStatusSink(Protocol):
    """Reports one stage's state on one commit (GitHub commit statuses in Jenkins)."""

    def set_status(self, commit: str, context: str, state: State, description: str, target_url: str | None) -> None:
        """Create or replace the status named `context` on `commit`."""


class NoStatus:
    """Used where no token or no Jenkins build is present: statuses go nowhere."""

    def set_status(self, commit: str, context: str, state: State, description: str, target_url: str | None) -> None:
        """Do nothing."""


class StatusClient(Protocol):
    """What the GitHub adapter offers for statuses (`delivery.github.GitHubClient.set_commit_status`)."""

    def set_commit_status(self, full_name: str, commit: str, context: str, state: str, description: str,
                          target_url: str | None) -> None:
        """Create a commit status."""


class GitHubStatus:
    """Statuses on one GitHub repository; failing to report warns and never fails the stage."""

    def __init__(self, client: StatusClient, full_name: str, warn: Callable[[str], None]) -> None:
        self._client, self._full_name, self._warn = client, full_name, warn

    def set_status(self, commit: str, context: str, state: State, description: str, target_url: str | None) -> None:
        """Report `state` for `context` on `commit`."""
        try:
            self._client.set_commit_status(self._full_name, commit, context, state, description, target_url)
        except DeliveryError as e:
            self._warn(f"commit status {context}={state} not set on GitHub: {e.message}")


def github_repository(git_url: str) -> str | None:
    """`owner/name` of a GitHub clone URL (https or ssh form), else None."""
    match = re.match(r"^(?:https?://[^/]+/|git@[^:]+:|ssh://git@[^/]+/)([\w.-]+/[\w.-]+?)(?:\.git)?/?$", git_url)
    return match.group(1) if match else None
