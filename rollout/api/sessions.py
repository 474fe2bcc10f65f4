"""Status-page sessions: opaque ids in the ledger database, so every worker and replica sees every sign-in.

The cookie holds a random session id, never the bearer token; the database holds only the id's sha256, the
sha256 of the token it was opened with (revoking the token ends its sessions), the session's CSRF token and when
it expires. Signing out deletes the row; expired rows are deleted when someone signs in.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from delivery.audit import Base
from rollout.executions.ledger import ledger_engine

SESSION_TTL_S = 12 * 3600


class SessionRow(Base):
    __tablename__ = "api_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(Integer)  # epoch seconds: compared the same way on every database
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


@dataclass(frozen=True)
class Session:
    """A live session: which token opened it and the CSRF token its forms carry."""

    token_sha256: str
    csrf: str
    expires_at: int


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions in the shared SQL database (the ledger's), with expiry."""

    def __init__(self, url: str, *, ttl_s: int = SESSION_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self._engine = ledger_engine(url)
        for attempt in range(2):
            try:
                Base.metadata.create_all(self._engine, tables=[SessionRow.__table__])  # type: ignore[list-item]
                break
            except OperationalError:  # another worker created the table between the check and the CREATE
                if attempt:
                    raise
        self.ttl_s, self._clock = ttl_s, clock

    def open(self, token_sha256: str) -> tuple[str, Session]:
        """A new session for the token with this hash; returns its id (for the cookie only) and the session."""
        now = int(self._clock())
        session_id = secrets.token_urlsafe(32)
        session = Session(token_sha256, secrets.token_urlsafe(32), now + self.ttl_s)
        with self._engine.begin() as connection:
            connection.execute(delete(SessionRow).where(SessionRow.expires_at <= now))
            connection.execute(insert(SessionRow), [{"id_sha256": _digest(session_id), "token_sha256": token_sha256,
                                                     "csrf": session.csrf, "created_at": now,
                                                     "expires_at": session.expires_at}])
        return session_id, session

    def find(self, session_id: str) -> Session | None:
        """The live session with this id, or None (unknown, signed out or expired)."""
        with self._engine.connect() as connection:
            row = connection.execute(select(SessionRow.token_sha256, SessionRow.csrf, SessionRow.expires_at).where(
                SessionRow.id_sha256 == _digest(session_id), SessionRow.expires_at > int(self._clock()))).first()
        return Session(row[0], row[1], row[2]) if row else None

    def close(self, session_id: str) -> None:
        """Sign out: the id is worthless from now on, on every replica."""
        with self._engine.begin() as connection:
            connection.execute(delete(SessionRow).where(SessionRow.id_sha256 == _digest(session_id)))


_lock = threading.Lock()


def sessions_of(state: object, url: Callable[[], str]) -> SessionStore:
    """The app's session store, made on first use (the OpenAPI document is built without any database)."""
    with _lock:
        store: SessionStore | None = getattr(state, "sessions", None)
        if store is None:
            store = SessionStore(url())
            state.sessions = store  # type: ignore[attr-defined]
        return store
