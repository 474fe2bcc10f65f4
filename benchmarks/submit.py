"""Benchmark submissions: pins resolved and dispatched per second against the fake Nomad, and the local backend's
overhead over a bare `docker run` of the same container, both measured in this run.

Usage: python benchmarks/submit.py [--dispatches N] [--runs N]
Needs a Docker engine, Debian's docker-registry and busybox-static (the same real components as the tests).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery import contract
from delivery.docker import ContainerJob, DockerClient, Mount, RegistryAuth
from delivery.localenv import start_registry
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout.executions.backend import Backend, Outcome
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FixedManifests
from rollout.executions.model import ExecutionRequest, JobDescription, Route
from rollout.executions.nomad import NomadBackend
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.submit import Submitter
from rollout.nomad import NomadClient, NomadSettings
from tests.support.executions_builders import Built, build_biomarker, manifest, study
from tests.support.fake_nomad import FakeNomad
from tests.support.images import static_busybox

TARGET_PER_S = 100.0
TARGET_OVERHEAD = 0.10
LIMITS = contract.Limits(500, 64)  # the benchmark manifest's `fast` variant


def submitter(work: Path, registry: RegistryClient, backend: Backend) -> Submitter:
    store = SqliteReleaseStore(work / "rs.sqlite")
    return Submitter(ledger=Ledger(f"sqlite:///{work / 'ledger.sqlite'}"), store=store,
                     resolver=RegistryPinResolver(registry),
                     manifests=FixedManifests(manifest("bench")), backend=backend, shadow_root=work / "shadow")


def dispatch_rate(work: Path, registry: RegistryClient, built: Built, count: int) -> dict[str, Any]:
    """Submissions (resolve + ledger + dispatch, no wait) per second against the fake Nomad."""
    with FakeNomad() as fake:
        client = NomadClient(NomadSettings(address=fake.address))
        task = {"Name": "main", "Driver": "docker", "Config": {"image": f"{built.image}@{built.digest}"},
                "Resources": {"CPU": 500, "MemoryMB": 64}}
        client.register({"ID": "bench-fast", "Name": "bench-fast", "Type": "batch", "Datacenters": ["*"],
                         "TaskGroups": [{"Name": "fast", "Count": 1, "Tasks": [task]}],
                         "ParameterizedJob": {"Payload": "forbidden",
                                              "MetaRequired": ["study", "output", "execution_id"],
                                              "MetaOptional": ["cohort"]},
                         "Meta": {"digest": built.digest}}, enforce_index=0)
        backend = _TimedBackend(NomadBackend(client))
        service = submitter(work / "nomad", registry, backend)
        source = study(work / "nomad-in", 1, 2, 3)

        def one(i: int) -> None:
            service.submit(ExecutionRequest(biomarker="bench", spec=built.version, input_path=source,
                                            output_path=work / "nomad-out" / str(i), environment="bench"), wait=False)

        started = time.perf_counter()
        one(-1)  # cold: the registry's tag view and the parent job are fetched once, then reused
        first = time.perf_counter() - started
        backend.seconds = 0.0
        started = time.perf_counter()
        for i in range(count):
            one(i)
        elapsed = time.perf_counter() - started
        children = sum(1 for j in fake.state.jobs.values() if j.get("ParentID") == "bench-fast")
    return {"submissions": count, "dispatched": children - 1, "seconds": round(elapsed, 3),
            "per_second": round(count / elapsed, 1), "first_submission_s": round(first, 3),
            "fake_nomad_dispatch_share": round(backend.seconds / elapsed, 2), "target_per_second": TARGET_PER_S,
            "meets_target": count / elapsed >= TARGET_PER_S}


class _TimedBackend:
    """Measures how much of the run is the (in-process) fake Nomad answering dispatches."""

    def __init__(self, inner: NomadBackend) -> None:
        self.inner, self.name, self.seconds = inner, inner.name, 0.0

    def dispatch(self, token: str, job: JobDescription, route: Route) -> str:
        started = time.perf_counter()
        try:
            return self.inner.dispatch(token, job, route)
        finally:
            self.seconds += time.perf_counter() - started

    def wait(self, job_id: str, job: JobDescription) -> Outcome:
        return self.inner.wait(job_id, job)


def local_overhead(work: Path, registry: RegistryClient, docker: DockerClient, auth: RegistryAuth, built: Built,
                   runs: int) -> dict[str, Any]:
    """Median wall time of a full local submission vs the same container run bare, interleaved in one loop.

    Two baselines, both the same image digest, command, limits (0.5 CPU, 64 MiB, no swap), user, read-only root,
    tmpfs, dropped capabilities, mounts and environment: `bare_engine` creates/starts/waits/removes it through the
    same engine API client (what the local backend itself does, minus resolve, ledger, hashing and provenance);
    `bare_docker_cli` is a `docker run --rm`, which adds the CLI's own start-up. The target is judged on the engine
    baseline, the stricter of the two.
    """
    service = submitter(work / "local", registry, LocalDockerBackend(docker, auth))
    source = study(work / "local-in", 1, 2, 3)
    times: dict[str, list[float]] = {"submit": [], "engine": [], "cli": []}
    for i in range(runs + 1):
        runners = {"submit": lambda out: service.submit(ExecutionRequest(
                       biomarker="bench", spec=built.version, input_path=source, output_path=out,
                       environment="bench")),
                   "engine": lambda out: docker.run_job(_bare_job(built, source, out)),
                   "cli": lambda out: _bare_cli(built, source, out)}
        for name, run in runners.items():
            out = work / f"{name}-out" / str(i)
            _writable(out)
            started = time.perf_counter()
            run(out)
            if i:  # the first round warms caches
                times[name].append(time.perf_counter() - started)
    median = {k: statistics.median(v) for k, v in times.items()}
    overhead = median["submit"] / median["engine"] - 1
    return {"runs": runs, "submit_median_s": round(median["submit"], 3),
            "bare_engine_run_median_s": round(median["engine"], 3),
            "bare_docker_cli_run_median_s": round(median["cli"], 3),
            "overhead_vs_engine": round(overhead, 3),
            "overhead_vs_cli": round(median["submit"] / median["cli"] - 1, 3),
            "target_overhead": TARGET_OVERHEAD, "meets_target": overhead <= TARGET_OVERHEAD}


def _writable(out: Path) -> None:
    out.mkdir(parents=True)
    out.chmod(0o777)


def _env(built: Built) -> dict[str, str]:
    identity = contract.Identity("bench", built.version, "fast", built.reference, built.digest)
    return contract.environment(identity, execution_id="bare")  # as the local backend gives it


def _user() -> str:
    return "65534:65534" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"  # as the local backend chooses


def _bare_job(built: Built, source: Path, out: Path) -> ContainerJob:
    return ContainerJob(image=f"{built.image}@{built.digest}", command=("sh", "/app/run.sh"),
                        mounts=(Mount(source.resolve(), "/data/input", True),
                                Mount(out.resolve(), "/data/output", False)),
                        nano_cpus=LIMITS.nano_cpus(), memory_bytes=LIMITS.memory_bytes, user=_user(), timeout_s=60,
                        environment=_env(built))


def _bare_cli(built: Built, source: Path, out: Path) -> None:
    env = [arg for k, v in _env(built).items() for arg in ("-e", f"{k}={v}")]
    subprocess.run(["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=256m",  # noqa: S108
                    "--cpus", str(LIMITS.cpus()), "--memory", "64m", "--memory-swap", "64m", "--user", _user(),
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", *env,
                    "-v", f"{source.resolve()}:/data/input:ro", "-v", f"{out.resolve()}:/data/output:rw",
                    f"{built.image}@{built.digest}", "sh", "/app/run.sh"], check=True, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dispatches", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    busybox = static_busybox()
    if busybox is None:
        raise SystemExit("install Debian's busybox-static")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        handle = start_registry(work / "registry", username="bench")
        try:
            docker, auth = DockerClient(), RegistryAuth(handle.host, handle.username, handle.password)
            registry = RegistryClient(handle.url, handle.username, handle.password)
            built = build_biomarker(docker, busybox, work / "ctx", handle, auth, "bench", "1.0.0")
            result = {"dispatch": dispatch_rate(work, registry, built, args.dispatches),
                      "local_backend": local_overhead(work, registry, docker, auth, built, args.runs)}
        finally:
            handle.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
