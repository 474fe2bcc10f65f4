"""Leader election for the controller service: one replica acts, the others wait.

On Nomad the lock is the Variable `delivery/controller/leader` (items `holder`, `expires_at`, `term`), written
only with compare-and-set, like `nomad var lock`: a replica takes it when it is absent, released or expired,
renews it every TTL/3, and releases it on a clean shutdown. A replica that loses a compare-and-set or sees
another holder steps down at once. `term` grows by one on every change of holder (a fencing number for logs).

Clocks: `expires_at` is the holder's own clock plus the TTL, and every other replica compares it with ITS own
clock. We assume the replicas' clocks differ by at most `max_skew` seconds (NTP keeps them within
milliseconds); so a holder stops acting `max_skew` before its own expiry, and no two replicas act at once
as long as that assumption holds. Every action the controller takes is itself compare-and-set, so even a
broken clock costs a lost race, never a double write.

The embedded default (no Nomad) uses an `fcntl` lock on a file instead: one controller per machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol, TypeVar

from delivery.errors import DeliveryError
from rollout.nomad import NomadBadRequest, NomadClient, NomadConflict, NomadError, NomadUnauthorized

LOCK_PATH = "delivery/controller/leader"
TTL_S = 10.0
MAX_SKEW_S = 1.0
Clock = Callable[[], float]  # seconds since the epoch (time.time)
Log = Callable[[dict[str, object]], None]
_T = TypeVar("_T")


class LeaderLockError(DeliveryError):
    """The leader lock cannot be used at all (Nomad refuses the token or the request)."""


def replica_id() -> str:
    """A name unique to this process: host, pid and a random suffix (a restarted process is a new holder)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Holder:
    """The lock as last read or written."""

    holder: str
    expires_at: float
    term: int
    index: int

    def items(self) -> dict[str, str]:
        """The Variable's items."""
        iso = datetime.fromtimestamp(self.expires_at, UTC).isoformat() if self.expires_at else ""
        return {"holder": self.holder, "expires_at": iso, "term": str(self.term)}


class Lease(Protocol):
    """A lock only one replica holds; `acquire` is also how the holder renews it."""

    identity: str

    def acquire(self) -> bool: ...

    def held(self) -> bool: ...

    def release(self) -> None: ...

    def wait_change(self, timeout: float, stop: threading.Event) -> None: ...

    def describe(self) -> dict[str, object]: ...

    def current_holder(self) -> str | None: ...


class NomadLease:
    """The lock in a Nomad Variable, compare-and-set with a TTL."""

    def __init__(self, client: NomadClient, *, identity: str | None = None, path: str = LOCK_PATH,
                 ttl: float = TTL_S, max_skew: float = MAX_SKEW_S, clock: Clock = time.time) -> None:
        if not 0 <= max_skew < ttl / 3:
            raise ValueError("max_skew must be below a third of the TTL (the renew period)")
        self.client, self.path, self.ttl, self.max_skew, self.clock = client, path, ttl, max_skew, clock
        self.identity = identity or replica_id()
        self._mine: Holder | None = None
        self._seen: Holder | None = None
        self._guard = threading.Lock()

    def held(self) -> bool:
        """This replica holds the lock now, by its own clock, with the skew margin to spare."""
        with self._guard:
            mine = self._mine
        return mine is not None and self.clock() < mine.expires_at - self.max_skew

    def acquire(self) -> bool:
        """Take the lock when absent, released or expired; renew it when ours. False: another replica has it.

        Raises:
            LeaderLockError: Nomad refuses the token or the request (403/400).
            NomadError: Nomad failed after retries (the caller logs it and tries again later).
        """
        current = self._read()
        now = self.clock()
        mine = self._mine
        if current is not None and current.holder and current.expires_at > now and not self._ours(current, mine):
            self._step_down(current)
            return False
        term = mine.term if mine is not None and self._ours(current, mine) else (current.term if current else 0) + 1
        return self._write(Holder(self.identity, now + self.ttl, term, 0), current.index if current else 0)

    def release(self) -> None:
        """Give the lock up now (a clean shutdown hands over without waiting for the TTL)."""
        with self._guard:
            mine, self._mine = self._mine, None
        if mine is None:
            return
        with contextlib.suppress(NomadError):
            self.client.put_variable(self.path, Holder("", 0, mine.term, 0).items(), cas=mine.index)

    def wait_change(self, timeout: float, stop: threading.Event) -> None:
        """Block until the lock Variable changes (blocking query) or `timeout` passes."""
        seen = self._seen
        if seen is None or not seen.index:
            stop.wait(timeout)
            return
        try:
            self.client.variable(self.path, index=seen.index, wait=timeout)
        except NomadError:
            stop.wait(timeout)

    def describe(self) -> dict[str, object]:
        """Who holds the lock as last seen (for logs and `--once`)."""
        seen = self._seen
        if seen is None:
            return {"lock": self.path, "holder": None}
        return {"lock": self.path, **seen.items()}

    def current_holder(self) -> str | None:
        """Who holds the lock now (None: absent, released or expired); reads, never writes.

        Raises:
            LeaderLockError: Nomad refuses the token or the request (403/400).
            NomadError: Nomad failed after retries.
        """
        current = self._read()
        if current is None or not current.holder or current.expires_at <= self.clock():
            return None
        return current.holder

    # ---------------------------------------------------------------- internals
    def _ours(self, current: Holder | None, mine: Holder | None) -> bool:
        return (current is not None and mine is not None and current.holder == self.identity
                and current.term == mine.term)

    def _read(self) -> Holder | None:
        var = self._guarded(lambda: self.client.variable(self.path).value)
        if var is None:
            self._seen = None
            return None
        self._seen = Holder(var.get("holder") or "", _epoch(var.get("expires_at")), int(var.get("term") or 0),
                            var.modify_index)
        return self._seen

    def _write(self, wanted: Holder, cas: int) -> bool:
        try:
            var = self._guarded(lambda: self.client.put_variable(self.path, wanted.items(), cas=cas))
        except NomadConflict:
            current = self._read()  # a retried write may have won before its answer was lost
            if current is not None and current.holder == self.identity and current.term == wanted.term:
                var_index = current.index
            else:
                self._step_down(current)
                return False
        else:
            var_index = var.modify_index
        mine = Holder(wanted.holder, wanted.expires_at, wanted.term, var_index)
        with self._guard:
            self._mine = self._seen = mine
        return True

    def _step_down(self, current: Holder | None) -> None:
        with self._guard:
            self._mine = None
        self._seen = current

    def _guarded(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except (NomadUnauthorized, NomadBadRequest) as e:
            with self._guard:
                self._mine = None
            raise LeaderLockError(
                f"the leader lock {self.path} cannot be used: {e.message}",
                hint=f"The controller's NOMAD_TOKEN needs variables read and write on {self.path} "
                     "(see docs/rollout.md, 'The controller service').") from e


class Leadership:
    """Keeps a lease in a thread: acquire, renew every `period`, wake at once when the lock changes hands."""

    def __init__(self, lease: Lease, *, period: float, log: Log) -> None:
        self.lease, self.period, self.log = lease, period, log
        self.error: LeaderLockError | None = None
        self.changed = threading.Event()  # set on every gain or loss, so the service re-checks at once
        self._stop = threading.Event()
        self._mutex = threading.Lock()  # no acquire runs beside a release, and none starts after stop()
        self._leading = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin contending for the lock in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)
        self._thread.start()

    def leading(self) -> bool:
        """This replica may act now."""
        return not self._stop.is_set() and self.error is None and self.lease.held()

    def stop(self, *, release: bool = True) -> None:
        """Stop contending; `release=False` is a crash as the others see it (they wait out the TTL).

        The thread is not waited for: it acts on nothing any more, and a release wakes its blocking query."""
        self._stop.set()
        with self._mutex:
            if release:
                self.lease.release()

    def tick(self) -> bool:
        """One acquire-or-renew; logs a gain or loss; True while this replica leads."""
        with self._mutex:
            return False if self._stop.is_set() else self._tick()

    def _tick(self) -> bool:
        try:
            leading = self.lease.acquire()
        except LeaderLockError as e:
            self.error = e
            self.log({"leader": "error", "error": e.message, "hint": e.hint, **self.lease.describe()})
            leading = False
        except DeliveryError as e:  # Nomad failing: keep what the lease still covers, try again next period
            self.log({"leader": "unavailable", "error": e.message, **self.lease.describe()})
            leading = self.lease.held()
        if leading != self._leading:
            self._leading = leading
            self.log({"leader": "acquired" if leading else "stepped-down", "replica": self.lease.identity,
                      **self.lease.describe()})
            self.changed.set()
        return leading

    def _run(self) -> None:
        while not self._stop.is_set() and self.error is None:
            self.tick()
            if self.error is not None:
                self.changed.set()
                return
            self.lease.wait_change(self.period, self._stop)


class FileLease:
    """Embedded default: an `fcntl` lock on a file, held while this process lives (one controller per machine)."""

    def __init__(self, path: Path, *, identity: str | None = None) -> None:
        self.path = path
        self.identity = identity or replica_id()
        self._file: IO[str] | None = None

    def held(self) -> bool:
        """This process holds the file lock."""
        return self._file is not None

    def acquire(self) -> bool:
        """Take the lock without blocking; False while another process on this machine has it."""
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(self.identity + "\n")
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        """Unlock (closing the file does it; a killed process releases it too)."""
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def wait_change(self, timeout: float, stop: threading.Event) -> None:
        """A file lock has no change feed: wait `timeout`."""
        stop.wait(timeout)

    def describe(self) -> dict[str, object]:
        """The lock file and, when it is not ours, who wrote it last."""
        holder = self.identity if self._file else _first_line(self.path)
        return {"lock": str(self.path), "holder": holder}

    def current_holder(self) -> str | None:
        """Who holds the file lock now (None: nobody); tests it with a non-blocking shared lock, released at once."""
        if self._file is not None:
            return self.identity
        try:
            handle = self.path.open("r", encoding="utf-8")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return handle.read().strip() or str(self.path)
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None


def _first_line(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _epoch(iso: str | None) -> float:
    if not iso:
        return 0.0
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0  # unreadable: treated as expired, so a broken lock never blocks the controller forever
