"""The embedded default backend: each execution is one locked-down container on the local Docker engine.

`dispatch` starts the container and returns (so the ledger records `dispatched` while it runs); `wait` waits for it.
The container carries its execution id as a label and is removed only once the outcome is recorded (`release`), so
a server that restarts, or another copy, can still find and collect it (`rollout executions resume`).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from delivery import contract
from delivery.docker import (
    EXECUTION_LABEL,
    ContainerJob,
    ContainerOutcome,
    DockerClient,
    DockerError,
    Mount,
    RegistryAuth,
)
from rollout.executions.backend import Outcome, OutcomeStatus
from rollout.executions.model import REFERENCE, JobDescription, Route

PREFIX = "local-"
OUTPUT_LABEL = "delivery.output"


class LocalDockerBackend:
    """Jobs as containers with the limits Nomad would give them: CPU, memory, no network, read-only root, GPU."""

    name = "docker"
    findable = True  # a job is found by its container label

    def __init__(self, client: DockerClient, auth: RegistryAuth | None = None) -> None:
        self._client = client
        self._auth = auth
        self._present: set[str] = set()

    def dispatch(self, token: str, job: JobDescription, route: Route) -> str:
        """Start the pinned digest's container labelled with the token, unless one is already there."""
        if self._client.find_job_container(token, _owner(job)) is not None:
            return PREFIX + token
        image = f"{job.repository}@{job.digest}"  # the digest, never the tag, decides what runs
        if image not in self._present:  # content under a digest never changes: one engine look-up per image
            self._client.pull(image, self._auth)
            self._present.add(image)
        user = _job_user(job.output_path)
        try:
            self._client.start_job(container_job(job, image, user, token, route))
        except DockerError as e:
            if e.status != 404:
                raise
            self._client.pull(image, self._auth)  # removed from the engine since: pull it again, once
            self._client.start_job(container_job(job, image, user, token, route))
        return PREFIX + token

    def find(self, token: str, job: JobDescription) -> str | None:
        """The job started with `token` whose container is still on the engine, or None."""
        return PREFIX + token if self._client.find_job_container(token, _owner(job)) is not None else None

    def wait(self, job_id: str, job: JobDescription) -> Outcome:
        """Wait for the job's container; a container no longer on the engine is `lost` (its result is unknown)."""
        found = self._client.find_job_container(job_id.removeprefix(PREFIX), _owner(job))
        if found is None:
            return _vanished(job_id)
        try:
            result = self._client.wait_job(found.container_id, job.timeout_s)
        except DockerError as e:
            if e.status != 404:
                raise
            return _vanished(job_id)
        return _outcome(result)

    def release(self, job_id: str, job: JobDescription) -> None:
        """Remove the job's container once its outcome is recorded."""
        found = self._client.find_job_container(job_id.removeprefix(PREFIX), _owner(job))
        if found is not None:
            self._client.remove_job(found.container_id)


def container_job(job: JobDescription, image: str, user: str, token: str, route: Route) -> ContainerJob:
    """The container contract translated for the engine: this execution's own folders, the one CPU conversion
    (public so tests compare it with the other translations)."""
    limits = contract.Limits(job.cpu_mhz, job.memory_mb, job.gpu)
    mounts = tuple(Mount(Path(m.source), m.target, read_only=m.read_only)
                   for m in contract.data_mounts(str(job.input_path.resolve()), str(job.output_path.resolve())))
    return ContainerJob(
        image=image, command=job.argv, mounts=mounts, nano_cpus=limits.nano_cpus(os.cpu_count()),
        memory_bytes=limits.memory_bytes, user=user, timeout_s=job.timeout_s, gpus=limits.gpu,
        labels={EXECUTION_LABEL: token, "delivery.route": route, **_owner(job)},
        environment=contract.environment(_identity(job), execution_id=job.labels.get("execution", token)),
    )


def _identity(job: JobDescription) -> contract.Identity:
    match = REFERENCE.match(job.image)
    version = job.labels.get("version") or (match["tag"] if match and match["tag"] else "")
    return contract.Identity(job.biomarker, version, job.variant, job.image, job.digest)


def _owner(job: JobDescription) -> dict[str, str]:
    """Execution ids derive from request ids, so two ledgers on one engine may share one: the output folder
    tells their containers apart."""
    return {OUTPUT_LABEL: str(job.output_path.resolve())}


def _job_user(output: Path) -> str:
    """The caller's own uid, or `nobody` when the caller is root (then the output folder must be writable by it)."""
    output.mkdir(parents=True, exist_ok=True)
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    output.chmod(contract.OUTPUT_MODE)  # `nobody` writes the outputs; root reads and hashes them afterwards
    return contract.RUN_USER


def _outcome(result: ContainerOutcome) -> Outcome:
    status: OutcomeStatus = "succeeded" if result.exit_code == 0 else "failed"
    if result.timed_out:
        status = "timed_out"
    return Outcome(status=status, exit_code=result.exit_code, duration_s=_duration(result), node=os.uname().nodename,
                   log_tail=result.log_tail, reason="" if status == "succeeded" else f"exit code {result.exit_code}")


def _vanished(job_id: str) -> Outcome:
    return Outcome(status="lost", exit_code=None, duration_s=0.0, node=os.uname().nodename, retry=False,
                   reason=f"the container of {job_id} no longer exists on this engine; its result is unknown")


def _duration(result: ContainerOutcome) -> float:
    """Run time from the engine's own start and finish times (the waiter may have started later).

    The engine stamps StartedAt once the process is running, so a job that exits within a millisecond can
    finish "before" it started: clamp at zero rather than feed a negative runtime to the gates.
    """
    try:
        elapsed = (_engine_time(result.finished_at) - _engine_time(result.started_at)).total_seconds()
        return round(max(0.0, elapsed), 3)
    except ValueError:
        return 0.0


def _engine_time(text: str) -> datetime:
    """The engine's RFC 3339 times carry nanoseconds; Python parses microseconds."""
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")
