"""What a build's attestation says about its vulnerability scan: scanned, unscanned or stale, the DB's age, overrides.

Fail closed: anything that does not positively say `scanned` (no record, a malformed one) reads as unscanned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

ScanStatus = Literal["scanned", "unscanned", "stale"]
SCANNED: ScanStatus = "scanned"
UNSCANNED: ScanStatus = "unscanned"
STALE: ScanStatus = "stale"
NOT_RECORDED = "the attestation records no vulnerability scan"


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class DbMetadata:
    """Trivy's `metadata.json` beside `trivy.db`: when the DB was built and when the next one is due."""

    updated_at: datetime
    next_update: datetime | None = None

    def age(self, now: datetime) -> timedelta:
        return now - self.updated_at

    def describe(self, now: datetime) -> str:
        """`vulnerability DB of 2026-12-01T06:00:00Z (2.5 days old; next update due …)` for every scan summary."""
        due = f"; next update due {_iso(self.next_update)}" if self.next_update else ""
        return f"vulnerability DB of {_iso(self.updated_at)} ({self.age(now) / timedelta(days=1):.1f} days old{due})"


@dataclass(frozen=True)
class Override:
    """Who let an unscanned image through, and why (audited)."""

    reason: str
    actor: str


@dataclass(frozen=True)
class ScanRecord:
    """The vulnerability-scan part of a build's provenance."""

    status: ScanStatus
    reason: str = ""
    db_updated_at: str | None = None
    db_next_update: str | None = None
    override: Override | None = None

    @property
    def scanned(self) -> bool:
        """Whether vulnerabilities were scanned against a fresh enough DB."""
        return self.status == SCANNED

    def with_override(self, override: Override | None) -> ScanRecord:
        """This record with the override that let it through (only an unscanned or stale one needs it)."""
        if self.scanned or override is None:
            return self
        return ScanRecord(self.status, self.reason, self.db_updated_at, self.db_next_update, override)

    def describe(self) -> str:
        """`scanned`, `not scanned (why)` or `stale (why)`, plus any override, for people."""
        text = {SCANNED: "scanned", UNSCANNED: "not scanned", STALE: "scanned with a stale DB"}[self.status]
        text += f" ({self.reason})" if self.reason and not self.scanned else ""
        if self.override is not None:
            text += f"; allowed by {self.override.actor}: {self.override.reason}"
        return text

    def as_json(self) -> dict[str, Any]:
        """The attestation's `scan` field."""
        override = None if self.override is None else {"reason": self.override.reason, "actor": self.override.actor}
        return {"status": self.status, "reason": self.reason, "db_updated_at": self.db_updated_at,
                "db_next_update": self.db_next_update, "override": override}

    @classmethod
    def from_json(cls, data: object) -> ScanRecord:
        """Read an attestation's `scan` field; anything missing or malformed is unscanned."""
        if not isinstance(data, dict) or data.get("status") not in (SCANNED, UNSCANNED, STALE):
            return cls(UNSCANNED, NOT_RECORDED)
        raw = data.get("override")
        override = Override(str(raw.get("reason", "")), str(raw.get("actor", ""))) if isinstance(raw, dict) else None
        updated, due = data.get("db_updated_at"), data.get("db_next_update")
        return cls(data["status"], str(data.get("reason") or ""), str(updated) if updated else None,
                   str(due) if due else None, override)


def assess(db: DbMetadata | None, missing: str, max_age: timedelta, now: datetime) -> ScanRecord:
    """Scanned with a DB no older than `max_age`, stale with an older one, unscanned (`missing` says why) without."""
    if db is None:
        return ScanRecord(UNSCANNED, missing)
    updated, due = _iso(db.updated_at), _iso(db.next_update) if db.next_update else None
    if db.age(now) > max_age:
        days = max_age / timedelta(days=1)
        return ScanRecord(STALE, f"the vulnerability DB is {db.age(now) / timedelta(days=1):.1f} days old "
                                 f"(at most {days:g} allowed)", updated, due)
    return ScanRecord(SCANNED, "", updated, due)
