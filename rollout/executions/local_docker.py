"""The embedded default backend: each execution is one locked-down container on the local Docker engine.

The container's life is tied to the submitting process: `dispatch` runs it to completion and `wait` hands back what
happened, so nothing outside the command has to collect outputs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from delivery.docker import ContainerJob, ContainerOutcome, DockerClient, DockerError, Mount, RegistryAuth
from rollout.executions.backend import Outcome, OutcomeStatus
from rollout.executions.model import ExecutionError, JobDescription, Route

MHZ_PER_CPU = 1000  # Nomad reserves MHz; the engine limits whole CPUs: 1000 MHz count as one CPU here
NOBODY = "65534:65534"


class LocalDockerBackend:
    """Jobs as containers with the limits Nomad would give them: CPU, memory, no network, read-only root, GPU."""

    name = "docker"

    def __init__(self, client: DockerClient, auth: RegistryAuth | None = None) -> None:
        self._client = client
        self._auth = auth
        self._outcomes: dict[str, Outcome] = {}
        self._present: set[str] = set()

    def dispatch(self, token: str, job: JobDescription, route: Route) -> str:
        """Pull the pinned digest, run the container to completion; the token names the job."""
        job_id = f"local-{token}"
        if job_id in self._outcomes:
            return job_id
        image = f"{job.repository}@{job.digest}"  # the digest, never the tag, decides what runs
        if image not in self._present:  # content under a digest never changes: one engine look-up per image
            self._client.pull(image, self._auth)
            self._present.add(image)
        user = _job_user(job.output_path)
        started = time.monotonic()
        try:
            outcome = self._client.run_job(_container_job(job, image, user, token, route))
        except DockerError as e:
            if e.status != 404:
                raise
            self._client.pull(image, self._auth)  # removed from the engine since: pull it again, once
            outcome = self._client.run_job(_container_job(job, image, user, token, route))
        self._outcomes[job_id] = _outcome(outcome, time.monotonic() - started)
        return job_id

    def wait(self, job_id: str, job: JobDescription) -> Outcome:
        """The outcome of a job this backend ran."""
        try:
            return self._outcomes.pop(job_id)
        except KeyError:
            raise ExecutionError(f"local job {job_id} is not known to this process",
                                 hint="Local executions finish inside the submitting command; submit again.") from None


def _container_job(job: JobDescription, image: str, user: str, token: str, route: Route) -> ContainerJob:
    cpus = min(job.cpu_mhz / MHZ_PER_CPU, float(os.cpu_count() or 1))
    return ContainerJob(
        image=image, command=job.argv,
        mounts=(Mount(job.input_path.resolve(), "/data/input", read_only=True),
                Mount(job.output_path.resolve(), "/data/output", read_only=False)),
        nano_cpus=max(int(cpus * 1e9), 10_000_000), memory_bytes=job.memory_mb * 2**20, user=user,
        timeout_s=job.timeout_s, gpus=job.gpu, labels={"delivery.execution": token, "delivery.route": route},
        environment={"DELIVERY_EXECUTION_ID": token, "DELIVERY_IMAGE": job.image, "DELIVERY_IMAGE_DIGEST": job.digest,
                     "DELIVERY_BIOMARKER": job.biomarker, "DELIVERY_VARIANT": job.variant},
    )


def _job_user(output: Path) -> str:
    """The caller's own uid, or `nobody` when the caller is root (then the output folder must be writable by it)."""
    output.mkdir(parents=True, exist_ok=True)
    if os.getuid() != 0:
        return f"{os.getuid()}:{os.getgid()}"
    output.chmod(0o777)  # `nobody` writes the outputs; root reads and hashes them afterwards
    return NOBODY


def _outcome(result: ContainerOutcome, wall_s: float) -> Outcome:
    status: OutcomeStatus = "succeeded" if result.exit_code == 0 else "failed"
    if result.timed_out:
        status = "timed_out"
    return Outcome(status=status, exit_code=result.exit_code, duration_s=round(wall_s, 3), node=os.uname().nodename,
                   log_tail=result.log_tail, reason="" if status == "succeeded" else f"exit code {result.exit_code}")
