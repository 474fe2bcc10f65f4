"""The cluster backend: each execution is a dispatch of the track's parameterized parent job on Nomad.

The parent (`<biomarker>-<variant>` stable, `<biomarker>-<variant>-canary` candidate) fixes the image digest, so a
job is dispatched only to a parent whose `Meta.digest` is the digest the pin resolved to: the pinned build runs byte
for byte, or the dispatch is refused. The execution's own folders travel as dispatch meta (`study`, `output`,
`execution_id`, absolute paths on the shared POSIX volume every node mounts at the same path); the parent's task binds
exactly those (`rollout.jobspec`), so a parent that does not require them is refused: it would not isolate the
execution. A lost allocation is replaced by Nomad once; a second loss fails the execution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from delivery import contract
from rollout.executions.backend import Outcome, OutcomeStatus
from rollout.executions.model import ExecutionError, JobDescription, Route
from rollout.jobspec import DISPATCH_META
from rollout.nomad import Allocation, NomadClient

DONE = {"complete": "succeeded", "failed": "failed"}
PARENT_TTL_S = 5.0
MAX_POLL_S = 1.0  # polls back off to this: a server follows up to 64 runs, each polled every 50 ms choked it


def parent_job(biomarker: str, variant: str, route: Route) -> str:
    """The parameterized parent a route dispatches to."""
    return f"{biomarker}-{variant}" + ("" if route == "stable" else "-canary")


class NomadBackend:
    """Dispatch with idempotency token = execution id; follow the child's allocations to the end."""

    name = "nomad"
    findable = False  # a child is found only by dispatching again

    def __init__(self, client: NomadClient, *, poll_s: float = 0.05, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client, self._poll_s, self._sleep, self._clock = client, poll_s, sleep, clock
        self._parents: dict[str, tuple[float, str | None, frozenset[str]]] = {}

    def dispatch(self, token: str, job: JobDescription, route: Route) -> str:
        """Dispatch the route's parent; a repeated token returns the child Nomad already made."""
        parent = parent_job(job.biomarker, job.variant, route)
        digest, required = self._parent(parent)
        if digest != job.digest:
            raise ExecutionError(
                f"{parent} runs {digest or 'no known digest'}, not the pinned {job.digest}",
                hint="Nomad runs only the tracks' images: deploy that version (rollout deploy) or run it locally.")
        missing = [key for key in DISPATCH_META if key not in required]
        if missing:  # its task would not bind this execution's own folders
            raise ExecutionError(
                f"{parent} does not require the dispatch meta {', '.join(missing)}: it was deployed before executions "
                "had their own input and output binds, and would not isolate this execution's data",
                hint="Redeploy the track with this version of rollout (rollout deploy).")
        meta = {"study": str(job.input_path.resolve()), "output": str(_output_folder(job)),
                "execution_id": job.labels.get("execution", token)}
        return self._client.dispatch(parent, meta=meta, idempotency_token=token).job_id

    def wait(self, job_id: str, job: JobDescription) -> Outcome:
        """Poll the child's allocations until one ends, two are lost, or the job's timeout passes."""
        started, delay = self._clock(), self._poll_s
        while self._clock() - started < job.timeout_s:
            allocs = self._client.allocations(job_id)
            lost = tuple(a.node_id for a in allocs if a.client_status == "lost")
            if len(lost) >= 2:
                return Outcome("failed", None, self._since(started), lost[-1], reason="node lost twice",
                               lost_nodes=lost[:1])
            ended = [a for a in allocs if a.client_status in DONE]
            if ended:
                return self._ended(ended[-1], lost, started)
            self._sleep(delay)
            delay = min(delay * 1.5, max(MAX_POLL_S, self._poll_s))
        return Outcome("timed_out", None, self._since(started), reason=f"no result within {job.timeout_s}s")

    def find(self, token: str, job: JobDescription) -> str | None:
        """Nomad finds a child only by dispatching again, which would start one: a resume never does that."""
        return None

    def release(self, job_id: str, job: JobDescription) -> None:
        """Nomad keeps its dispatched children; nothing to remove."""

    def _ended(self, alloc: Allocation, lost: tuple[str, ...], started: float) -> Outcome:
        status: OutcomeStatus = "succeeded" if alloc.client_status == "complete" else "failed"
        return Outcome(status, 0 if status == "succeeded" else None, self._since(started), alloc.node_id,
                       reason="" if status == "succeeded" else f"allocation {alloc.id} failed", lost_nodes=lost)

    def _parent(self, parent: str) -> tuple[str | None, frozenset[str]]:
        """The parent's digest and required meta keys, re-read after PARENT_TTL_S so a promotion is seen."""
        cached = self._parents.get(parent)
        if cached is None or self._clock() - cached[0] > PARENT_TTL_S:
            view = self._client.job(parent).value
            if view is None:
                raise ExecutionError(f"Nomad has no job {parent}", hint="Deploy the track first (rollout deploy).")
            spec = view.as_dict().get("ParameterizedJob") or {}
            required = frozenset(spec.get("MetaRequired") or [])
            cached = (self._clock(), view.meta_value("digest"), required)
            self._parents[parent] = cached
        return cached[1], cached[2]

    def _since(self, started: float) -> float:
        return round(self._clock() - started, 3)


def _output_folder(job: JobDescription) -> Path:
    """The execution's output folder, created: the task binds it, and Docker refuses a bind mount whose source is
    missing (`bind source path does not exist`). The share is mounted at the same path here and on every node."""
    output = job.output_path.resolve()
    try:
        output.mkdir(parents=True, exist_ok=True)
        output.chmod(contract.OUTPUT_MODE)  # the task runs as the contract's unprivileged user
    except OSError as e:
        raise ExecutionError(f"cannot create the output folder {output} ({e.strerror or type(e).__name__})",
                             hint="The output folder must lie on the cluster's shared data volume and be writable "
                                  "by this service.") from e
    return output
