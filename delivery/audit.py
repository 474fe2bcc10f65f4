"""The append-only audit trail: who did what, when and why (promote, yank, force, gc, freeze overrides)."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
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
            return [AuditEvent(r.action, r.subject, r.reason, r.actor, r.at, dict(r.details))
                    for r in session.scalars(query)]


def _scrub_details(details: dict[str, Any]) -> dict[str, Any]:
    return {k: scrub(v) if isinstance(v, str) else v for k, v in details.items()}
