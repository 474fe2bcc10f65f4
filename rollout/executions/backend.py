"""The scheduler Protocol every execution backend implements (local Docker engine, Nomad, plugins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from rollout.executions.model import JobDescription, Route

OutcomeStatus = Literal["succeeded", "failed", "timed_out", "lost"]


@dataclass(frozen=True)
class Outcome:
    """How one run of a job ended, as the backend observed it."""

    status: OutcomeStatus
    exit_code: int | None
    duration_s: float
    node: str | None = None
    gpu: str | None = None
    log_tail: tuple[str, ...] = ()
    reason: str = ""
    lost_nodes: tuple[str, ...] = ()  # nodes lost mid-run whose allocation the scheduler already replaced
    retry: bool = True  # a `lost` run is dispatched once more; False when the loss is final (a vanished container)


class Backend(Protocol):
    """Runs jobs somewhere; `dispatch` is idempotent per token (a repeated token never runs the job twice)."""

    name: str
    findable: bool  # whether `find` answers for certain (False: it cannot tell without dispatching)

    def dispatch(self, token: str, job: JobDescription, route: Route) -> str:
        """Start the job (or find the one already started with `token`); returns the backend job id."""
        ...

    def wait(self, job_id: str, job: JobDescription) -> Outcome:
        """Block until the job ends (or its timeout) and report how."""
        ...

    def find(self, token: str, job: JobDescription) -> str | None:
        """The job already started with `token`, if the backend can tell without starting one."""
        ...

    def release(self, job_id: str, job: JobDescription) -> None:
        """Forget a job whose outcome is recorded (the local engine removes its container)."""
        ...
