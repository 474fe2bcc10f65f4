"""The one error hierarchy every user-facing failure belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class DeliveryError(Exception):
    """Base of every error shown to a user: a message plus what to do next."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The one-paragraph text the top-level handler prints."""
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class UsageError(DeliveryError):
    """The command line itself is wrong (exit code 2, like argparse)."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One finding in a user-written file, located to the character."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        field = self.field or "<document>"
        return f"{self.file}:{self.line}:{self.column}: {field}: {self.message}"


class ManifestError(DeliveryError):
    """A user-written file (manifest, environment, freeze spec) is invalid."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0] if self.problems else None
        summary = str(first) if first else "invalid file"
        super().__init__(summary, hint="Fix the file at the position shown and run the command again.")

    def render(self) -> str:
        lines = [str(p) for p in self.problems]
        lines.append(f"{len(self.problems)} problem(s). Fix them and run the command again.")
        return "\n".join(lines)


class ExternalServiceError(DeliveryError):
    """An external system (registry, Docker, GitHub, Jenkins, Nomad) failed or refused."""

    service = "external service"

    def __init__(
        self, message: str, *, status: int | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class ConfigError(DeliveryError):
    """Configuration (environment variables, credentials, paths) is missing or wrong."""
