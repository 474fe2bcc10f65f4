"""The scan gate: a severity threshold and an audited ignore file (every ignore has a reason and an expiry)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from delivery.errors import ConfigError
from delivery.trivy import SEVERITIES, Finding

IGNORE_FILE = "scan-ignore.yaml"


class Ignore(BaseModel):
    """One accepted finding: who may ignore what, why, and until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    reason: Annotated[str, StringConstraints(min_length=10, max_length=1000)]
    expires: dt.date
    owner: str = ""


class IgnoreFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ignores: list[Ignore] = Field(default_factory=list)


@dataclass(frozen=True)
class GateResult:
    """What the gate decided and why, for the summary and the attestation."""

    passed: bool
    threshold: str  # `HIGH` (that and above) or a list such as `CRITICAL,HIGH` (exactly those)
    blocking: tuple[Finding, ...]
    ignored: tuple[tuple[Finding, Ignore], ...]
    below_threshold: int
    expired: tuple[Ignore, ...]

    @property
    def described(self) -> str:
        """The gate's severities in words, for summaries."""
        return f"{self.threshold} or above" if self.threshold in SEVERITIES else self.threshold.replace(",", "/")


def load_ignores(path: Path) -> list[Ignore]:
    """The ignore file's entries (none if it does not exist); every problem is reported with its field."""
    if not path.exists():
        return []
    try:
        return IgnoreFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {}).ignores
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML ({e})") from e
    except ValidationError as e:
        problems = "\n".join(f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        hint = "Each ignore needs `id`, a `reason` (at least 10 characters) and `expires: YYYY-MM-DD`."
        raise ConfigError(f"{path} is invalid:\n{problems}", hint=hint) from e


def blocking_severities(severity: str | Sequence[str]) -> tuple[str, ...]:
    """A single severity blocks it and everything above; a list (the manifest's) blocks exactly those listed."""
    names = [severity] if isinstance(severity, str) else list(severity)
    unknown = [n for n in names if n not in SEVERITIES]
    if unknown or not names:
        raise ConfigError(f"unknown severity {', '.join(unknown) or '(none)'}; use one of {', '.join(SEVERITIES)}")
    if isinstance(severity, str):
        return SEVERITIES[SEVERITIES.index(severity):][::-1]
    return tuple(s for s in reversed(SEVERITIES) if s in names)


def gate(findings: list[Finding], ignores: list[Ignore], severity: str | Sequence[str], today: dt.date) -> GateResult:
    """Block on findings of the gate's severities unless an unexpired ignore names them."""
    blocks = blocking_severities(severity)
    active = {i.id: i for i in ignores if i.expires >= today}
    expired = tuple(i for i in ignores if i.expires < today)
    gated = [f for f in findings if SEVERITIES[f.rank] in blocks]
    blocking = tuple(f for f in gated if f.id not in active)
    ignored = tuple((f, active[f.id]) for f in gated if f.id in active)
    label = severity if isinstance(severity, str) else ",".join(blocks)
    return GateResult(not blocking, label, blocking, ignored, len(findings) - len(gated), expired)
