"""Collecting runs whose collector died: the outcome of every unfinished execution, recorded at most once.

The thread that collects a run lives in the process that dispatched it. When that process dies the job goes on
(or has finished), so `resume` finds the executions of one backend that have no outcome yet and collects each the
way `rollout executions wait` does. The ledger's one-outcome-per-execution key keeps a resume that races a live
collector, or another server copy's resume, from recording a second outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from delivery.errors import DeliveryError
from rollout.executions.model import Execution
from rollout.executions.submit import Submitter, job_for

WINDOW = timedelta(days=7)  # older unfinished executions are left to an operator (`rollout executions wait`)
LIMIT = 200
PARALLEL = 4
GRACE = timedelta(seconds=60)  # a live server may be between recording a submission and starting its job


@dataclass(frozen=True)
class Resumed:
    """What one resume did for one execution."""

    execution_id: str
    status: str
    action: str

    def as_json(self) -> dict[str, str]:
        return {"execution_id": self.execution_id, "status": self.status, "action": self.action}


def resume(submitter: Submitter, *, clock: Callable[[], datetime] | None = None, window: timedelta = WINDOW,
           limit: int = LIMIT, grace: timedelta = GRACE, parallel: int = PARALLEL) -> list[Resumed]:
    """Collect every unfinished execution of the submitter's backend (bounded: `limit` of the last `window`)."""
    now = (clock or (lambda: datetime.now(UTC)))()
    found = submitter.ledger.unfinished(since=now - window, backend=submitter.backend.name, limit=limit)
    ids = {e.id for e in found}
    # a paired shadow run is collected (and compared) with its primary when both are unfinished
    todo = [e for e in found if not (e.record.route == "shadow" and e.record.paired_execution_id in ids)]
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="resume") as pool:
        return list(pool.map(lambda e: _resume_one(submitter, e, now - grace), todo))


def _resume_one(submitter: Submitter, execution: Execution, settled: datetime) -> Resumed:
    try:
        job = job_for(execution.record, submitter.manifest(execution.record.biomarker))
        if execution.latest("backend_job_id") is None and submitter.backend.find(execution.id, job) is None:
            return _never_started(submitter, execution, settled)
        submitter.wait(execution.id)
        return _result(submitter, execution.id, "collected")
    except DeliveryError as e:
        return Resumed(execution.id, execution.status, f"not collected: {e.message}")


def _never_started(submitter: Submitter, execution: Execution, settled: datetime) -> Resumed:
    """No job to follow: lost on a backend that can tell (the local engine), else left for a retried submit."""
    if not submitter.backend.findable:
        return Resumed(execution.id, execution.status, "never dispatched: submit again with the same request id")
    if execution.record.created_at > settled:
        return Resumed(execution.id, execution.status, "just submitted: left to the server starting it")
    submitter.ledger.record_outcome(execution.id, "lost", {
        "final": True, "reason": "no container of this execution is on the engine: it never started, or it was "
                                 "removed before its outcome was recorded"})
    return _result(submitter, execution.id, "lost")


def _result(submitter: Submitter, execution_id: str, action: str) -> Resumed:
    return Resumed(execution_id, submitter.ledger.get(execution_id).status, action)
