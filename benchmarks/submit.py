"""Benchmark submissions: pins resolved and dispatched per second against the fake Nomad, and the local backend's
overhead over a bare `docker run` of the same container, both measured in this run.

Usage: python benchmarks/submit.py [--dispatches N] [--runs N]
Needs a Docker engine, Debian's docker-registry and busybox-static (the same real components as the tests).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import start_registry
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout.executions.backend import Backend
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FixedManifests
from rollout.executions.model import ExecutionRequest
from rollout.executions.nomad import NomadBackend
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.routing import ReleaseStoreRouting
from rollout.executions.submit import Submitter
from rollout.nomad import NomadClient, NomadSettings
from tests.support.executions_builders import Built, build_biomarker, manifest, study
from tests.support.fake_nomad import FakeNomad
from tests.support.images import static_busybox

TARGET_PER_S = 100.0
TARGET_OVERHEAD = 0.10


def submitter(work: Path, registry: RegistryClient, backend: Backend) -> Submitter:
    store = SqliteReleaseStore(work / "rs.sqlite")
    return Submitter(ledger=Ledger(f"sqlite:///{work / 'ledger.sqlite'}"), store=store,
                     resolver=RegistryPinResolver(registry, store), routing=ReleaseStoreRouting(store),
                     manifests=FixedManifests(manifest("bench")), backend=backend, shadow_root=work / "shadow")


def dispatch_rate(work: Path, registry: RegistryClient, built: Built, count: int) -> dict[str, Any]:
    """Submissions (resolve + ledger + dispatch, no wait) per second against the fake Nomad."""
    with FakeNomad() as fake:
        client = NomadClient(NomadSettings(address=fake.address))
        task = {"Name": "main", "Driver": "docker", "Config": {"image": f"{built.image}@{built.digest}"},
                "Resources": {"CPU": 500, "MemoryMB": 64}}
        client.register({"ID": "bench-fast", "Name": "bench-fast", "Type": "batch", "Datacenters": ["*"],
                         "TaskGroups": [{"Name": "fast", "Count": 1, "Tasks": [task]}],
                         "ParameterizedJob": {"Payload": "forbidden", "MetaRequired": ["study"],
                                              "MetaOptional": ["execution_id", "output"]},
                         "Meta": {"digest": built.digest}}, enforce_index=0)
        service = submitter(work / "nomad", registry, NomadBackend(client))
        source = study(work / "nomad-in", 1, 2, 3)
        started = time.perf_counter()
        for i in range(count):
            service.submit(ExecutionRequest(biomarker="bench", spec=built.version, input_path=source,
                                            output_path=work / "nomad-out" / str(i), environment="bench"), wait=False)
        elapsed = time.perf_counter() - started
        children = sum(1 for j in fake.state.jobs.values() if j.get("ParentID") == "bench-fast")
    return {"submissions": count, "dispatched": children, "seconds": round(elapsed, 3),
            "per_second": round(count / elapsed, 1), "target_per_second": TARGET_PER_S,
            "meets_target": count / elapsed >= TARGET_PER_S}


def local_overhead(work: Path, registry: RegistryClient, docker: DockerClient, auth: RegistryAuth, built: Built,
                   runs: int) -> dict[str, Any]:
    """Median wall time of a full local submission vs a bare `docker run` with the same limits, interleaved."""
    service = submitter(work / "local", registry, LocalDockerBackend(docker, auth))
    source = study(work / "local-in", 1, 2, 3)
    ours, bare = [], []
    for i in range(runs + 1):
        out = work / "local-out" / str(i)
        started = time.perf_counter()
        service.submit(ExecutionRequest(biomarker="bench", spec=built.version, input_path=source, output_path=out,
                                        environment="bench"))
        mid = time.perf_counter()
        _bare_run(built, source, work / "bare-out" / str(i))
        done = time.perf_counter()
        if i:  # the first pair warms caches
            ours.append(mid - started)
            bare.append(done - mid)
    overhead = statistics.median(ours) / statistics.median(bare) - 1
    return {"runs": runs, "submit_median_s": round(statistics.median(ours), 3),
            "bare_docker_run_median_s": round(statistics.median(bare), 3), "overhead": round(overhead, 3),
            "target_overhead": TARGET_OVERHEAD, "meets_target": overhead <= TARGET_OVERHEAD}


def _bare_run(built: Built, source: Path, out: Path) -> None:
    out.mkdir(parents=True)
    out.chmod(0o777)
    subprocess.run(["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=256m",  # noqa: S108
                    "--cpus", "0.5", "--memory", "64m", "--memory-swap", "64m", "--user", "65534:65534",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "-e", "FACTOR=3",
                    "-v", f"{source}:/data/input:ro", "-v", f"{out}:/data/output:rw",
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
