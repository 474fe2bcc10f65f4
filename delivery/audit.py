"""The append-only audit trail: who did what, when and why.

Everything people and the rollout controller do is appended here (promote, force, yank, gc, recall, freezes and
their overrides, deploys, pauses, rollbacks, gate verdicts) and nothing is ever rewritten, so a later rollout can
drop nothing from it. A freeze's expiry needs no writer: `AuditTrail.read` derives it from the freeze's own event.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from delivery.secrets import scrub


class Base(DeclarativeBase):
    """Declarative base shared by the audit log and the execution ledger."""


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(400), index=True)
    reason: Mapped[str] = mapped_column(String(2000))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True)
class AuditEvent:
    """One audited action."""

    action: str
    subject: str
    reason: str = ""
    actor: str = field(default_factory=lambda: current_actor())
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def environment(self) -> str | None:
        """The environment acted in: `ENV/NAME[:…]` subjects and `environment` details; None for recalls."""
        if "environment" in self.details:
            return str(self.details["environment"])
        return self.subject.split("/", 1)[0] if "/" in self.subject else None

    @property
    def biomarker(self) -> str:
        """The biomarker acted on, from `ENV/NAME[:CHANNEL|:VERSION]` or `NAME@VERSION`."""
        if "biomarker" in self.details:
            return str(self.details["biomarker"])
        name = self.subject.split("/", 1)[-1]
        return name.split(":", 1)[0].split("@", 1)[0]

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready document (what `delivery audit --json` and the API show)."""
        return {"at": self.at.isoformat(), "action": self.action, "subject": self.subject,
                "environment": self.environment, "biomarker": self.biomarker, "actor": self.actor,
                "reason": self.reason, "details": self.details}


@dataclass(frozen=True)
class AuditQuery:
    """Which events to read: each given filter must match (times are inclusive). An event of no one environment
    (a recall withdraws a version everywhere) matches every environment."""

    biomarker: str | None = None
    environment: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: AuditEvent) -> bool:
        at = _utc(event.at)
        return ((self.biomarker is None or event.biomarker == self.biomarker)
                and (self.environment is None or event.environment in (self.environment, None))
                and (self.actor is None or event.actor == self.actor)
                and (self.action is None or event.action == self.action)
                and (self.since is None or at >= _utc(self.since))
                and (self.until is None or at <= _utc(self.until)))


def current_actor() -> str:
    """Who is acting: `DELIVERY_ACTOR`, else the Jenkins user, else the login name."""
    return os.environ.get("DELIVERY_ACTOR") or os.environ.get("BUILD_USER_ID") or getpass.getuser()


class AuditLog:
    """Append-only audit log in the ledger database (SQLite file or PostgreSQL URL)."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(url)
        Base.metadata.create_all(self._engine, tables=[AuditRow.__table__])  # type: ignore[list-item]

    def append(self, event: AuditEvent) -> None:
        """Record one event; secrets are scrubbed from reason and details."""
        row = AuditRow(at=event.at, actor=event.actor, action=event.action, subject=event.subject,
                       reason=scrub(event.reason), details=_scrub_details(event.details))
        with Session(self._engine) as session, session.begin():
            session.add(row)

    def events(self, *, subject_prefix: str = "", action: str | None = None) -> list[AuditEvent]:
        """Recorded events, oldest first, optionally filtered."""
        query = select(AuditRow).where(AuditRow.subject.startswith(subject_prefix)).order_by(AuditRow.id)
        if action:
            query = query.where(AuditRow.action == action)
        with Session(self._engine) as session:
            return [AuditEvent(r.action, r.subject, r.reason, r.actor, _utc(r.at), dict(r.details))
                    for r in session.scalars(query)]

    def read(self, query: AuditQuery, now: datetime | None = None) -> list[AuditEvent]:
        """The trail `query` selects, oldest first, with each freeze's expiry (once past) as an event of its own."""
        recorded = self.events()
        derived = _expiries(recorded, now or datetime.now(UTC))
        return sorted((e for e in [*recorded, *derived] if query.matches(e)), key=lambda e: _utc(e.at))


def _expiries(events: Iterable[AuditEvent], now: datetime) -> list[AuditEvent]:
    """`freeze-expired` at each recorded freeze's `expires_at` that has passed, unless it was lifted before."""
    events = list(events)
    lifted = {(e.subject, e.details.get("id")): _utc(e.at) for e in events if e.action == "unfreeze"}
    out = []
    for e in events:
        expires = e.details.get("expires_at") if e.action == "freeze" else None
        if not expires:
            continue
        at = _utc(datetime.fromisoformat(str(expires)))
        before = lifted.get((e.subject, e.details.get("id")))
        if at <= now and (before is None or before > at):
            out.append(replace(e, action="freeze-expired", actor="clock", at=at,
                               reason=f"freeze {e.details.get('id')} expired ({e.reason})"))
    return out


def _utc(at: datetime) -> datetime:
    """SQLite hands back naive datetimes: every time here is UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _scrub_details(details: dict[str, Any]) -> dict[str, Any]:
    return {k: scrub(v) if isinstance(v, str) else v for k, v in details.items()}
