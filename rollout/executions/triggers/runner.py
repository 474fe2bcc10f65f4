"""Turns trigger events into pinned submissions through the `Submitter`; failures stay recorded for a retry."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from delivery.audit import current_actor
from delivery.errors import DeliveryError
from delivery.secrets import Secret, from_env
from rollout.executions.model import ExecutionRequest
from rollout.executions.sandbox import input_identity
from rollout.executions.submit import Submitter
from rollout.executions.triggers.endpoint import serve
from rollout.executions.triggers.events import TriggerEvent, TriggerLog
from rollout.executions.triggers.folder import FolderWatcher
from rollout.executions.triggers.rules import FolderRule, TriggerFile, WebhookRule
from rollout.executions.triggers.webhook import WebhookRejected, verify

log = logging.getLogger(__name__)
Job = tuple[str, str, ExecutionRequest]


class TriggerRunner:
    """Folder polling and webhook deliveries record events; one worker submits them in order."""

    def __init__(self, rules: TriggerFile, submitter: Submitter, events: TriggerLog, *,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rules, self.events, self._submitter = rules, events, submitter
        self._clock, self._sleep = clock, sleep
        self._watchers = [FolderWatcher(r) for r in rules.rules if isinstance(r, FolderRule)]
        self._keys: dict[str, Secret] = {}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._warned: dict[str, str] = {}

    # -- events -----------------------------------------------------------------------------------------------

    def scan_folders(self) -> int:
        """One poll of every watched folder; records and queues the entries that became stable."""
        queued = 0
        for watcher in self._watchers:
            for entry in watcher.poll():
                try:
                    identity = input_identity(entry)
                except (DeliveryError, OSError) as e:  # one refused study (a link out, a FIFO) stops no other
                    self._refused(watcher.rule.name, entry, e)
                    continue
                key = f"{entry.name}@{identity}"  # a changed study is a new event, a restart is not
                request = _request(watcher.rule, entry, entry.name, key, None)
                queued += self._receive(watcher.rule.name, key, request, {"path": str(entry)})
        return queued

    def webhook(self, rule_name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Verify and record one delivery; 202 once queued, 409 for a delivery id already received."""
        rule = self.rules.rule(rule_name)
        if not isinstance(rule, WebhookRule):
            raise WebhookRejected(404, f"no webhook rule {rule_name}")
        found = verify(rule, self._key(rule), headers, body, self._clock())
        request = _request(rule, found.input_path, found.id, found.id, found.series_uid)
        if not self._receive(rule.name, found.id, request, {"delivery": found.id}):
            raise WebhookRejected(409, f"delivery {found.id} was already received (replay?)")
        return 202, {"accepted": found.id, "execution_id_request": request.request_id}

    def _refused(self, rule: str, entry: Path, error: DeliveryError | OSError) -> None:
        reason = error.message if isinstance(error, DeliveryError) else str(error)
        if self._warned.get(str(entry)) != reason:  # once per study and reason, not at every poll
            self._warned[str(entry)] = reason
            log.warning("trigger %s: study %s refused: %s", rule, entry.name, reason)

    def _receive(self, rule: str, key: str, request: ExecutionRequest, details: dict[str, Any]) -> bool:
        if not self.events.receive(rule, key, request, details):
            return False
        self._queue.put((rule, key, request))
        return True

    def _key(self, rule: WebhookRule) -> Secret:
        if rule.name not in self._keys:
            key = from_env(rule.secret_env)
            assert key is not None  # required=True raises instead
            self._keys[rule.name] = key
        return self._keys[rule.name]

    # -- submitting -------------------------------------------------------------------------------------------

    def drain(self) -> int:
        """Submit every queued event now; returns how many were handled."""
        handled = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return handled
            self.fire(*job)
            handled += 1

    def fire(self, rule: str, key: str, request: ExecutionRequest) -> bool:
        """Submit one queued event."""
        return fire(self._submitter, self.events, rule, key, request)

    # -- loops ------------------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Two polls one interval apart (so a stable entry counts), then submit what they found."""
        if not self._watchers:
            return self.drain()
        self.scan_folders()
        self._sleep(max(w.rule.poll_seconds for w in self._watchers))
        self.scan_folders()
        return self.drain()

    def run(self, stop: threading.Event) -> None:
        """Serve webhooks and poll folders until `stop` is set; submissions run on one worker thread."""
        server = self.serve_webhooks()
        worker = threading.Thread(target=self._work, args=(stop,), name="triggers-submit", daemon=True)
        worker.start()
        interval = min((w.rule.poll_seconds for w in self._watchers), default=1.0)
        try:
            while not stop.is_set():
                self.scan_folders()
                stop.wait(interval)
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            worker.join()

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set() or not self._queue.empty():
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.fire(*job)

    def serve_webhooks(self) -> ThreadingHTTPServer | None:
        """Start the webhook endpoint on `listen` if a rule needs it (port 0: any free port)."""
        hooks = {r.name: r for r in self.rules.rules if isinstance(r, WebhookRule)}
        if not hooks:
            return None
        for rule in hooks.values():
            self._key(rule)  # a missing key stops the command now, not at the first delivery
        host, _, port = self.rules.listen.rpartition(":")

        def body_limit(name: str) -> int | None:
            return hooks[name].max_body_bytes if name in hooks else None

        return serve(host, int(port), self.webhook, body_limit)


def _request(rule: FolderRule | WebhookRule, study: Path, out_name: str, key: str,
             series_uid: str | None) -> ExecutionRequest:
    return ExecutionRequest(biomarker=rule.biomarker, spec=rule.spec, input_path=study,
                            output_path=rule.output / out_name, variant=rule.variant, environment=rule.environment,
                            cohort=rule.cohort, series_uid=series_uid, request_id=f"trigger:{rule.name}:{key}",
                            actor=f"trigger {rule.name} ({current_actor()})")


def fire(submitter: Submitter, events: TriggerLog, rule: str, key: str, request: ExecutionRequest) -> bool:
    """Submit one event's request; the outcome is appended to the event (a failure stays retryable)."""
    try:
        execution = submitter.submit(request)
    except (DeliveryError, OSError) as e:
        reason = e.message if isinstance(e, DeliveryError) else str(e)
        log.warning("trigger %s event %s: submission failed: %s", rule, key, reason)
        events.append(rule, key, "failed", {"reason": reason})
        return False
    events.append(rule, key, "submitted", {"execution_id": execution.id, "status": execution.status})
    return True


def retry_failed(submitter: Submitter, events: TriggerLog) -> list[TriggerEvent]:
    """Re-run every event whose last submission failed, from its recorded request (same request id: a
    submission that did get through the first time is found again, never run twice); returns them as they are now."""
    failed = events.events(status="failed")
    for event in failed:
        fire(submitter, events, event.rule, event.key, event.request)
    keys = {(e.rule, e.key) for e in failed}
    return [e for e in events.events() if (e.rule, e.key) in keys]
