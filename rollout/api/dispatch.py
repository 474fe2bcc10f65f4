"""Asynchronous submissions: the API answers once the ledger holds the execution; the run goes on in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from delivery.errors import DeliveryError
from rollout.executions.ledger import Ledger
from rollout.executions.model import Execution, ExecutionError, ExecutionRecord, ExecutionRequest
from rollout.executions.submit import Submitter

log = logging.getLogger(__name__)


class Busy(ExecutionError):
    """Too many submissions are running in this server process; retry later (or on another copy)."""


class PlanningFailed(ExecutionError):
    """Planning a submission failed on the server for a reason that is no DeliveryError (a bug or the host)."""


@dataclass
class _Attempt:
    """One planning attempt of an execution in this process, shared by every request waiting on it."""

    settled: threading.Event  # set when the execution is recorded, or when the attempt ends
    failure: DeliveryError | None = None


class NotifyingLedger(Ledger):
    """The ledger, telling a waiting request the moment its execution is recorded."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}

    def expect(self, execution_id: str) -> threading.Event:
        """A new event, set when `execution_id` is recorded (one per attempt, so a finished attempt's event
        never wakes the next one early)."""
        event = threading.Event()
        with self._lock:
            self._waiting[execution_id] = event
        return event

    def forget(self, execution_id: str, event: threading.Event) -> None:
        with self._lock:
            if self._waiting.get(execution_id) is event:
                del self._waiting[execution_id]

    def record(self, record: ExecutionRecord, first_event: tuple[str, Mapping[str, Any]] | None = None) -> bool:
        fresh = super().record(record, first_event)
        with self._lock:
            waiting = self._waiting.get(record.id)
        if waiting is not None:
            waiting.set()
        return fresh


class Dispatcher:
    """Runs `Submitter.run(..., wait=True)` in a thread per submission, at most `limit` at once per process."""

    def __init__(self, submitter: Submitter, ledger: NotifyingLedger, *, limit: int = 64,
                 accept_timeout_s: float = 120.0) -> None:
        self._submitter, self._ledger = submitter, ledger
        self._slots = threading.BoundedSemaphore(limit)
        self._accept_timeout_s = accept_timeout_s
        self._lock = threading.Lock()
        self._running: dict[str, _Attempt] = {}

    def start(self, request: ExecutionRequest, execution_id: str) -> Execution:
        """Start the submission (or join the one already planning it) and return the execution as soon as it is
        recorded (queued).

        Raises:
            DeliveryError: planning failed (unknown version, frozen cohort, ...): nothing was recorded. Every
                request waiting on the same execution gets the same error.
            PlanningFailed: planning failed with an error that is no DeliveryError.
            Busy: this process already runs `limit` submissions.
        """
        with self._lock:
            attempt = self._running.get(execution_id)
            fresh = attempt is None
            if attempt is None:
                if not self._slots.acquire(blocking=False):
                    raise Busy("this server is running as many submissions as it may",
                               hint="Retry with the same Idempotency-Key in a few seconds.")
                attempt = self._running[execution_id] = _Attempt(self._ledger.expect(execution_id))
        if fresh:
            threading.Thread(target=self._work, args=(request, execution_id, attempt),
                             name=f"execution-{execution_id[:8]}", daemon=True).start()
        attempt.settled.wait(self._accept_timeout_s)
        found = self._ledger.find(execution_id)
        if found is not None:
            return found
        if attempt.failure is not None:
            raise attempt.failure
        raise ExecutionError(f"execution {execution_id} was not recorded within {self._accept_timeout_s:.0f}s",
                             hint="Retry with the same Idempotency-Key.")

    def idle(self, timeout_s: float) -> bool:
        """Wait until no submission runs in this process (tests and shutdown)."""
        event = threading.Event()
        for _ in range(int(timeout_s * 20)):
            with self._lock:
                if not self._running:
                    return True
            event.wait(0.05)
        return False

    def _work(self, request: ExecutionRequest, execution_id: str, attempt: _Attempt) -> None:
        try:
            self._submitter.run(request, wait=True)
        except DeliveryError as e:  # reported to the waiting requests, or recorded as dispatch_failed
            attempt.failure = e
            log.warning("execution %s: %s", execution_id, e.message)
        except Exception as e:  # a bug or the host: the requests get a 500 that says so, never a bare traceback
            attempt.failure = PlanningFailed(
                f"execution {execution_id} could not be planned: the server failed ({type(e).__name__})",
                hint="Retry with the same Idempotency-Key; if it fails again, report it to the service's operators.")
            log.exception("execution %s: planning failed", execution_id)
        finally:
            with self._lock:
                if self._running.get(execution_id) is attempt:
                    del self._running[execution_id]
            self._slots.release()
            attempt.settled.set()
            self._ledger.forget(execution_id, attempt.settled)
