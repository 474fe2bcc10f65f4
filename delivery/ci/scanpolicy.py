"""The scan gate: a severity threshold and an audited ignore file (every ignore has a reason and an expiry), and
the vulnerability DB gate: a build whose vulnerabilities were not scanned against a fresh DB fails closed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from delivery.audit import AuditEvent, AuditLog
from delivery.ci.context import CiContext
from delivery.errors import ConfigError, DeliveryError
from delivery.registry import RegistryClient
from delivery.scannerdb import installed_metadata, pull_archive
from delivery.scanrecord import DbMetadata, ScanRecord, assess
from delivery.trivy import SEVERITIES, Finding, Trivy, TrivyError

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


def db_record(cache: Path, max_age: dt.timedelta, now: dt.datetime) -> tuple[ScanRecord, DbMetadata | None]:
    """What a scan with the DB in `cache` would record (before trivy runs), and the DB's metadata."""
    try:
        metadata = installed_metadata(cache)
    except DeliveryError as e:
        return ScanRecord("unscanned", e.message), None
    missing = f"no trivy vulnerability DB in {cache}/db"
    return assess(metadata, missing, max_age, now), metadata


def prepare_db(cache: Path, max_age: dt.timedelta, mirror: tuple[Callable[[], RegistryClient], str] | None,
               now: dt.datetime) -> tuple[ScanRecord, DbMetadata | None]:
    """The DB's record; a missing or stale DB is first refreshed from the registry mirror, when one is configured."""
    record, metadata = db_record(cache, max_age, now)
    if record.scanned or mirror is None:
        return record, metadata
    client, repository = mirror
    try:
        pull_archive(client(), repository, cache)
    except DeliveryError as e:
        return ScanRecord(record.status, f"{record.reason}; pulling the mirror {repository} failed: {e.message}",
                          record.db_updated_at, record.db_next_update), metadata
    return db_record(cache, max_age, now)


def scan_image(trivy: Trivy, tar: Path, report: Path, record: ScanRecord) -> tuple[list[Finding], ScanRecord]:
    """Image findings: vulnerabilities too unless there is no DB; a DB trivy cannot use leaves them unscanned."""
    if record.status == "unscanned":
        return trivy.scan_image(tar, report, vulnerabilities=False), record
    try:
        return trivy.scan_image(tar, report, vulnerabilities=True), record
    except TrivyError as e:
        said = (e.hint or "").strip().splitlines()[-1:]
        failed = ScanRecord("unscanned", f"{e.message}{': ' + said[0][:300] if said else ''}",
                            record.db_updated_at, record.db_next_update)
        return trivy.scan_image(tar, report, vulnerabilities=False), failed


def unscanned_problem(record: ScanRecord, *, release: bool, require: bool) -> str | None:
    """Why this build must fail for its unscanned or stale vulnerabilities (None: it may pass, with a warning)."""
    if record.scanned or record.override is not None:
        return None
    what = "vulnerabilities were not scanned" if record.status == "unscanned" else "the vulnerability DB is stale"
    if release:
        return f"release build: {what} ({record.reason})"
    if require:
        return f"{what} ({record.reason}) and require_vuln_db is on"
    return None


UNSCANNED_HINT = ("Import a current DB (`delivery scanner db import db.tar.gz`, or `delivery scanner db pull`), or "
                  "accept it for this build with --allow-unscanned --reason TEXT (audited, recorded in the "
                  "attestation). Local experiments on non-release builds: --no-require-vuln-db only warns.")


def audit_override(audit: AuditLog, record: ScanRecord, name: str, context: CiContext) -> None:
    """The override that let an unscanned build through, in the audit trail."""
    if record.override is None:
        return
    audit.append(AuditEvent("allow-unscanned", f"{name}@{context.version}", record.override.reason,
                            record.override.actor, details={"biomarker": name, "command": "ci scan",
                                                            "commit": context.commit, "ref": context.ref,
                                                            "scan": record.as_json()}))

