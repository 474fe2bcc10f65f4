"""Release state per (environment, biomarker), stored with compare-and-set so no update is ever lost."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from delivery.errors import DeliveryError


class ConflictError(DeliveryError):
    """Someone else changed the release state since it was read; read again and retry."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelPin(_Frozen):
    """What a channel (e.g. `stable`, `candidate`) of an environment points at."""

    version: str
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    image: str = Field(description="registry host/repository, without tag or digest")
    moved_at: datetime
    moved_by: str
    reason: str = ""

    @property
    def reference(self) -> str:
        """`REGISTRY/IMAGE:VERSION@sha256:…`, the form every pin resolves to."""
        return f"{self.image}:{self.version}@{self.digest}"


class Freeze(_Frozen):
    """An ad-hoc freeze: blocks new candidates and promotions; a version pin makes resolution stick."""

    id: str
    reason: str
    owner: str
    created_at: datetime
    expires_at: datetime | None = None
    version: str | None = None
    cohort: str | None = None
    # Recurring window (rollout freezes): active for `duration_s` after each `cron` match in `timezone`.
    cron: str | None = None
    duration_s: int | None = None
    timezone: str | None = None


class ReleaseState(_Frozen):
    """Everything the release manager controls for one biomarker in one environment."""

    environment: str
    biomarker: str
    channels: dict[str, ChannelPin] = Field(default_factory=dict)
    freezes: tuple[Freeze, ...] = ()
    rollout: dict[str, Any] | None = Field(None, description="controller-owned rollout status")


@dataclass(frozen=True)
class Versioned:
    """A state and the index it was read at (0: never written)."""

    state: ReleaseState
    index: int


class ReleaseStore(Protocol):
    """Compare-and-set storage of release state (Nomad Variables in production, SQLite embedded)."""

    def read(self, environment: str, biomarker: str) -> Versioned: ...

    def write(self, state: ReleaseState, expected_index: int) -> int: ...

    def biomarkers(self, environment: str) -> list[str]: ...

    def pairs(self) -> list[tuple[str, str]]: ...


class SqliteReleaseStore:
    """Release state in one SQLite file; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS release_state (environment TEXT NOT NULL, biomarker TEXT NOT NULL,"
                " doc TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (environment, biomarker))"
            )

    def read(self, environment: str, biomarker: str) -> Versioned:
        """The current state, or an empty one at index 0."""
        with self._connect() as db:
            row = db.execute(
                "SELECT doc, idx FROM release_state WHERE environment = ? AND biomarker = ?", (environment, biomarker)
            ).fetchone()
        if row is None:
            return Versioned(ReleaseState(environment=environment, biomarker=biomarker), 0)
        return Versioned(ReleaseState.model_validate_json(row[0]), int(row[1]))

    def write(self, state: ReleaseState, expected_index: int) -> int:
        """Store `state` if nobody wrote since `expected_index`; returns the new index."""
        doc = json.dumps(state.model_dump(mode="json"), sort_keys=True)
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT idx FROM release_state WHERE environment = ? AND biomarker = ?",
                (state.environment, state.biomarker),
            ).fetchone()
            current = int(row[0]) if row else 0
            if current != expected_index:
                raise ConflictError(
                    f"release state of {state.biomarker} in {state.environment} changed (index {current}, "
                    f"expected {expected_index})",
                    hint="Another controller or user acted at the same time; run the command again.",
                )
            db.execute(
                "INSERT OR REPLACE INTO release_state (environment, biomarker, doc, idx) VALUES (?, ?, ?, ?)",
                (state.environment, state.biomarker, doc, current + 1),
            )
        return current + 1

    def biomarkers(self, environment: str) -> list[str]:
        """Biomarkers with any release state in `environment`."""
        with self._connect() as db:
            rows = db.execute("SELECT biomarker FROM release_state WHERE environment = ? ORDER BY 1", (environment,))
            return [str(r[0]) for r in rows]

    def pairs(self) -> list[tuple[str, str]]:
        """Every (environment, biomarker) with release state, from one query."""
        with self._connect() as db:
            rows = db.execute("SELECT environment, biomarker FROM release_state ORDER BY 1, 2")
            return [(str(e), str(b)) for e, b in rows]

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                yield db
                if db.in_transaction:
                    db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            finally:
                db.close()
