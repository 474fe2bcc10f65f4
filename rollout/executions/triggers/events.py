"""Trigger events in the ledger database, append-only: `received` (with the request to submit), then `submitted`
(execution id) or `failed` (reason); a failed event gets more facts appended when `rollout triggers retry` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from delivery.audit import Base
from delivery.secrets import scrub
from rollout.executions.ledger import AppendOnlyViolation, ledger_engine
from rollout.executions.model import ExecutionRequest

OUTCOMES = frozenset({"submitted", "failed"})


class TriggerEventRow(Base):
    __tablename__ = "trigger_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rule: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(String(400), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True)
class TriggerEvent:
    """One event (a stable new study, a webhook delivery) folded over its appended facts."""

    rule: str
    key: str
    received_at: datetime
    request: ExecutionRequest
    status: str  # received | submitted | failed
    attempts: int
    execution_id: str | None = None
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "key": self.key, "received_at": self.received_at.isoformat(),
                "status": self.status, "attempts": self.attempts, "execution_id": self.execution_id,
                "reason": self.reason, "request": request_json(self.request)}


class TriggerLog:
    """Append-only event log beside the execution ledger (same database)."""

    def __init__(self, url: str) -> None:
        engine = ledger_engine(url)
        Base.metadata.create_all(engine, tables=[TriggerEventRow.__table__])  # type: ignore[list-item]
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _refuse_rewrites)

    def receive(self, rule: str, key: str, request: ExecutionRequest, details: Mapping[str, Any]) -> bool:
        """Record a new event; False (nothing written) when `key` was already received for `rule`."""
        with self._sessions.begin() as session:
            seen = session.scalars(select(TriggerEventRow.id).where(
                TriggerEventRow.rule == rule, TriggerEventRow.key == key).limit(1)).first()
            if seen is not None:
                return False
            session.add(_row(rule, key, "received", {**details, "request": request_json(request)}))
        return True

    def append(self, rule: str, key: str, kind: str, details: Mapping[str, Any]) -> None:
        """Append an outcome (`submitted` or `failed`) to an event."""
        with self._sessions.begin() as session:
            session.add(_row(rule, key, kind, details))

    def events(self, *, rule: str | None = None, status: str | None = None) -> list[TriggerEvent]:
        """Events oldest first, folded; optionally only one rule's or one status."""
        query = select(TriggerEventRow).order_by(TriggerEventRow.id)
        if rule:
            query = query.where(TriggerEventRow.rule == rule)
        grouped: dict[tuple[str, str], list[TriggerEventRow]] = {}
        with self._sessions() as session:
            for row in session.scalars(query):
                grouped.setdefault((row.rule, row.key), []).append(row)
        folded = [_fold(rows) for rows in grouped.values()]
        return [e for e in folded if status is None or e.status == status]


def _fold(rows: list[TriggerEventRow]) -> TriggerEvent:
    first, outcomes = rows[0], [r for r in rows if r.kind in OUTCOMES]
    last = outcomes[-1] if outcomes else first
    return TriggerEvent(first.rule, first.key, _utc(first.at), request_from(first.details["request"]),
                        last.kind, len(outcomes), last.details.get("execution_id"), last.details.get("reason", ""))


def request_json(request: ExecutionRequest) -> dict[str, Any]:
    """What a retry needs to submit exactly the same request again."""
    return {"biomarker": request.biomarker, "spec": request.spec, "input_path": str(request.input_path),
            "output_path": str(request.output_path), "variant": request.variant,
            "environment": request.environment, "cohort": request.cohort, "series_uid": request.series_uid,
            "request_id": request.request_id, "actor": request.actor}


def request_from(doc: Mapping[str, Any]) -> ExecutionRequest:
    return ExecutionRequest(**{**doc, "input_path": Path(doc["input_path"]), "output_path": Path(doc["output_path"])})


def _row(rule: str, key: str, kind: str, details: Mapping[str, Any]) -> TriggerEventRow:
    clean = {k: scrub(v) if isinstance(v, str) else v for k, v in details.items()}
    return TriggerEventRow(at=datetime.now(UTC), rule=rule, key=key, kind=kind, details=clean)


def _refuse_rewrites(session: Session, _context: Any, _instances: Any) -> None:
    if any(isinstance(o, TriggerEventRow) for o in (*session.dirty, *session.deleted)):
        raise AppendOnlyViolation("trigger events are append-only; refusing to rewrite one")


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
