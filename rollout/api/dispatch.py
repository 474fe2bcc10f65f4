"""Asynchronous submissions: the API answers once the ledger holds the execution; the run goes on in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from rollout.executions.ledger import Ledger
from rollout.executions.model import Execution, ExecutionError, ExecutionRecord, ExecutionRequest
from rollout.executions.submit import Submitter

log = logging.getLogger(__name__)


class Busy(ExecutionError):
    """Too many submissions are running in this server process; retry later (or on another copy)."""


class NotifyingLedger(Ledger):
    """The ledger, telling a waiting request the moment its execution is recorded."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}

    def expect(self, execution_id: str) -> threading.Event:
        """An event set when `execution_id` is recorded (shared by every caller expecting it)."""
        with self._lock:
            return self._waiting.setdefault(execution_id, threading.Event())

    def forget(self, execution_id: str) -> None:
        with self._lock:
            self._waiting.pop(execution_id, None)

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
        self._running: set[str] = set()

    def start(self, request: ExecutionRequest, execution_id: str) -> Execution:
        """Start the submission and return the execution as soon as it is recorded (queued).

        Raises:
            DeliveryError: planning failed (unknown version, frozen cohort, ...): nothing was recorded.
            Busy: this process already runs `limit` submissions.
        """
        recorded = self._ledger.expect(execution_id)
        failures: list[BaseException] = []
        with self._lock:
            duplicate = execution_id in self._running
            if not duplicate:
                if not self._slots.acquire(blocking=False):
                    self._ledger.forget(execution_id)
                    raise Busy("this server is running as many submissions as it may",
                               hint="Retry with the same Idempotency-Key in a few seconds.")
                self._running.add(execution_id)
        if not duplicate:
            threading.Thread(target=self._work, args=(request, execution_id, recorded, failures),
                             name=f"execution-{execution_id[:8]}", daemon=True).start()
        recorded.wait(self._accept_timeout_s)
        found = self._ledger.find(execution_id)
        if found is not None:
            return found
        if failures:
            raise failures[0]
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

    def _work(self, request: ExecutionRequest, execution_id: str, recorded: threading.Event,
              failures: list[BaseException]) -> None:
        try:
            self._submitter.run(request, wait=True)
        except Exception as e:  # reported to the waiting request, or recorded as dispatch_failed by the Submitter
            failures.append(e)
            log.warning("execution %s: %s", execution_id, getattr(e, "message", type(e).__name__))
        finally:
            with self._lock:
                self._running.discard(execution_id)
            self._slots.release()
            recorded.set()
            self._ledger.forget(execution_id)
