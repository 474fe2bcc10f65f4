"""The scan gate: a severity threshold and an audited ignore file (every ignore has a reason and an expiry)."""

from __future__ import annotations

import datetime as dt
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
    threshold: str
    blocking: tuple[Finding, ...]
    ignored: tuple[tuple[Finding, Ignore], ...]
    below_threshold: int
    expired: tuple[Ignore, ...]


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


def gate(findings: list[Finding], ignores: list[Ignore], threshold: str, today: dt.date) -> GateResult:
    """Block on findings at or above `threshold` unless an unexpired ignore names them."""
    if threshold not in SEVERITIES:
        raise ConfigError(f"unknown severity {threshold!r}; use one of {', '.join(SEVERITIES)}")
    active = {i.id: i for i in ignores if i.expires >= today}
    expired = tuple(i for i in ignores if i.expires < today)
    rank = SEVERITIES.index(threshold)
    at_or_above = [f for f in findings if f.rank >= rank]
    blocking = tuple(f for f in at_or_above if f.id not in active)
    ignored = tuple((f, active[f.id]) for f in at_or_above if f.id in active)
    return GateResult(not blocking, threshold, blocking, ignored, len(findings) - len(at_or_above), expired)
