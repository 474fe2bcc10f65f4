"""The execution ledger: one immutable record per execution, status changes as appended events, comparisons.

Append-only by construction: writes are plain INSERTs, and the ledger's sessions refuse to flush any UPDATE or
DELETE of a ledger row, so a past fact can only be superseded by a newer event, never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    String,
    create_engine,
    event,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from delivery.audit import Base
from delivery.secrets import scrub
from rollout.executions.model import Execution, ExecutionEvent, ExecutionNotFound, ExecutionRecord


class ExecutionRow(Base):
    __tablename__ = "executions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    biomarker: Mapped[str] = mapped_column(String(64), index=True)
    variant: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    input_identity: Mapped[str] = mapped_column(String(200), index=True)
    input_path: Mapped[str] = mapped_column(String(4096))
    output_path: Mapped[str] = mapped_column(String(4096))
    pin_requested: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(128), index=True)
    digest: Mapped[str] = mapped_column(String(71))
    reference: Mapped[str] = mapped_column(String(600))
    resolution_rule: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    attestation_digest: Mapped[str | None] = mapped_column(String(71), nullable=True)
    cohort: Mapped[str | None] = mapped_column(String(128), nullable=True)
    paired_execution_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rollout_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    workflow: Mapped[str | None] = mapped_column(String(64), nullable=True)
    workflow_step: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExecutionEventRow(Base):
    __tablename__ = "execution_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class ComparisonRow(Base):
    __tablename__ = "execution_comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    biomarker: Mapped[str] = mapped_column(String(64), index=True)
    stable_execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"))
    candidate_execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"))
    stable_version: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[str] = mapped_column(String(128), index=True)
    passed: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutcomeRow(Base):
    """At most one outcome per execution: the primary key makes a second recording (a resume racing a live
    collector, two server copies) fail inside the transaction that would append the outcome event."""

    __tablename__ = "execution_outcomes"

    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))


_LEDGER_TABLES = (ExecutionRow, ExecutionEventRow, ComparisonRow, OutcomeRow)


@dataclass(frozen=True)
class StoredComparison:
    """A paired-run comparison as recorded."""

    at: datetime
    biomarker: str
    stable_execution_id: str
    candidate_execution_id: str
    stable_version: str
    candidate_version: str
    passed: bool
    report: Mapping[str, Any]


class AppendOnlyViolation(RuntimeError):
    """Code tried to rewrite or delete a past ledger fact (a bug, never a user error)."""


class Ledger:
    """Append-only execution ledger in the shared SQL database (SQLite file or PostgreSQL URL)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = ledger_engine(url)
        Base.metadata.create_all(self._engine, tables=[t.__table__ for t in _LEDGER_TABLES])  # type: ignore[misc]
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _refuse_rewrites)

    def record(self, record: ExecutionRecord, first_event: tuple[str, Mapping[str, Any]] | None = None) -> bool:
        """Insert a new execution (and optionally its first event) in one transaction; False when that id is
        already recorded. Plain INSERTs: a submission costs one commit, not a unit-of-work flush."""
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(ExecutionRow), [asdict(record)])
                if first_event is not None:
                    connection.execute(insert(ExecutionEventRow), [_event_values(record.id, *first_event)])
        except IntegrityError:
            if self.find(record.id) is None:
                raise
            return False
        return True

    def append(self, execution_id: str, kind: str, details: Mapping[str, Any] | None = None) -> ExecutionEvent:
        """Append one status event to an execution; returns it as stored."""
        values = _event_values(execution_id, kind, details or {})
        with self._engine.begin() as connection:
            connection.execute(insert(ExecutionEventRow), [values])
        return ExecutionEvent(values["at"], kind, values["details"])

    def record_outcome(self, execution_id: str, kind: str, details: Mapping[str, Any] | None = None) -> bool:
        """Append the outcome event and claim the execution's one outcome in one transaction; False (nothing
        appended) when an outcome is already recorded."""
        values = _event_values(execution_id, kind, details or {})
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(OutcomeRow), [{"execution_id": execution_id, "at": values["at"],
                                                         "kind": kind}])
                connection.execute(insert(ExecutionEventRow), [values])
        except IntegrityError:
            if not self.has_outcome(execution_id):
                raise
            return False
        return True

    def has_outcome(self, execution_id: str) -> bool:
        """Whether an outcome is recorded for the execution."""
        with self._engine.connect() as connection:
            return connection.execute(select(OutcomeRow.execution_id).where(
                OutcomeRow.execution_id == execution_id)).first() is not None

    def unfinished(self, *, since: datetime, backend: str, limit: int) -> list[Execution]:
        """Executions of `backend` created since `since` with no outcome recorded, oldest first (at most `limit`)."""
        recorded = select(OutcomeRow.execution_id)
        query = (select(ExecutionRow).where(ExecutionRow.created_at >= since, ExecutionRow.backend == backend,
                                            ExecutionRow.id.not_in(recorded))
                 .order_by(ExecutionRow.created_at, ExecutionRow.id).limit(limit))
        return [e for e in self._load(query) if not e.finished]

    def get(self, execution_id: str) -> Execution:
        """One execution with its whole history; raises ExecutionNotFound."""
        found = self._load(select(ExecutionRow).where(ExecutionRow.id == execution_id))
        if not found:
            raise ExecutionNotFound(f"no execution {execution_id} in the ledger at {_display(self.url)}",
                                    hint="List executions with `rollout executions list`.")
        return found[0]

    def find(self, execution_id: str) -> Execution | None:
        """One execution, or None."""
        found = self._load(select(ExecutionRow).where(ExecutionRow.id == execution_id))
        return found[0] if found else None

    def executions(self, *, biomarker: str | None = None, version: str | None = None, since: datetime | None = None,
                   limit: int | None = None, newest_first: bool = False,
                   environment: str | None = None) -> list[Execution]:
        """Executions oldest first (or newest first), filtered by biomarker, version, environment and creation time.

        The limit is applied in SQL after the ordering, so `newest_first=True, limit=N` reads only the N latest rows.
        """
        order = (ExecutionRow.created_at.desc(), ExecutionRow.id.desc()) if newest_first else (
            ExecutionRow.created_at, ExecutionRow.id)
        query = select(ExecutionRow).order_by(*order)
        if biomarker:
            query = query.where(ExecutionRow.biomarker == biomarker)
        if version:
            query = query.where(ExecutionRow.version == version)
        if environment:
            query = query.where(ExecutionRow.environment == environment)
        if since:
            query = query.where(ExecutionRow.created_at >= since)
        if limit:
            query = query.limit(limit)
        return self._load(query)

    def record_comparison(self, comparison: StoredComparison) -> None:
        """Append one paired-run comparison."""
        with self._sessions.begin() as session:
            session.add(ComparisonRow(**{**asdict(comparison), "report": dict(comparison.report)}))

    def comparisons(self, *, biomarker: str, candidate_version: str | None = None,
                    since: datetime | None = None) -> list[StoredComparison]:
        """Recorded comparisons, oldest first."""
        query = select(ComparisonRow).where(ComparisonRow.biomarker == biomarker).order_by(ComparisonRow.id)
        if candidate_version:
            query = query.where(ComparisonRow.candidate_version == candidate_version)
        if since:
            query = query.where(ComparisonRow.at >= since)
        with self._sessions() as session:
            return [StoredComparison(_utc(r.at), r.biomarker, r.stable_execution_id, r.candidate_execution_id,
                                     r.stable_version, r.candidate_version, r.passed, dict(r.report))
                    for r in session.scalars(query)]

    def _load(self, query: Any) -> list[Execution]:
        with self._sessions() as session:
            rows = list(session.scalars(query))
            ids = [r.id for r in rows]
            events: dict[str, list[ExecutionEvent]] = {i: [] for i in ids}
            if ids:
                for e in session.scalars(select(ExecutionEventRow).where(ExecutionEventRow.execution_id.in_(ids))
                                         .order_by(ExecutionEventRow.id)):
                    events[e.execution_id].append(ExecutionEvent(_utc(e.at), e.kind, dict(e.details)))
            return [Execution(_record(r), tuple(events[r.id])) for r in rows]


def ledger_engine(url: str) -> Engine:
    """An engine on the ledger database (SQLite gets WAL, so readers never block the writer)."""
    engine = create_engine(url)
    if url.startswith("sqlite"):
        # WAL + NORMAL sync: commits stay durable against a process crash at a fraction of the fsync cost.
        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    return engine


def _refuse_rewrites(session: Session, _context: Any, _instances: Any) -> None:
    rewritten = [o for o in (*session.dirty, *session.deleted) if isinstance(o, _LEDGER_TABLES)]
    if rewritten:
        raise AppendOnlyViolation(f"the execution ledger is append-only; refusing to rewrite {rewritten[0]!r}")


def _event_values(execution_id: str, kind: str, details: Mapping[str, Any]) -> dict[str, Any]:
    clean = {k: scrub(v) if isinstance(v, str) else v for k, v in details.items()}
    return {"execution_id": execution_id, "at": datetime.now(UTC), "kind": kind, "details": clean}


def _record(row: ExecutionRow) -> ExecutionRecord:
    fields = {k: getattr(row, k) for k in ExecutionRecord.__dataclass_fields__}
    fields["created_at"] = _utc(row.created_at)
    return ExecutionRecord(**fields)


def _utc(value: datetime) -> datetime:
    """SQLite drops the zone; every ledger time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _display(url: str) -> str:
    return url.split("@")[-1] if "@" in url else url


def executions_by_id(executions: Iterable[Execution]) -> dict[str, Execution]:
    """Index executions by id."""
    return {e.id: e for e in executions}
