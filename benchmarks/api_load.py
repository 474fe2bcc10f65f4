"""Load on the REST API: requests/s and p99 latency of GET /v1/executions/{id} and POST /v1/executions.

Two server processes (`rollout serve --workers 2`) on loopback, executions dispatched to the fake Nomad, pins
resolved against Debian's docker-registry. Baseline measured in the same run against the same server: GET /healthz
(no token, no database), so the ratios show what authentication, the ledger and dispatch cost.

Usage: python benchmarks/api_load.py [--posts N] [--gets N] [--concurrency N]
Needs Debian's docker-registry (the same real component as the tests). Loopback only; bounded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from delivery.localenv import start_registry
from delivery.registry import RegistryClient
from rollout.api.auth import add_token
from rollout.nomad import NomadClient, NomadSettings
from tests.support.api_server import free_port, wait_ready
from tests.support.executions_builders import MANIFEST, study
from tests.support.fake_nomad import FakeNomad
from tests.support.oci import push_image

NAME = "bench"


def measure(url: str, concurrency: int, count: int, request: Callable[[httpx.Client, int], httpx.Response]
            ) -> dict[str, Any]:
    """`count` requests from `concurrency` keep-alive clients; throughput, p50/p99 latency, non-2xx count."""
    latencies: list[float] = []
    failures: list[int] = []
    lock = threading.Lock()
    counter = iter(range(count))

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in counter:
                started = time.perf_counter()
                status = request(client, i).status_code
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if status >= 300:
                        failures.append(status)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"requests": len(ordered), "errors": len(failures), "per_second": round(len(ordered) / wall, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2)}


def setup(work: Path, fake: FakeNomad) -> tuple[dict[str, str], Path]:
    """Registry with one release, Nomad parent job fixed to its digest, org folder, tokens, a study."""
    registry = start_registry(work / "registry", username="bench")
    client = RegistryClient(registry.url, registry.username, registry.password)
    digest = push_image(client, f"biomarkers/{NAME}", "1.0.0").digest
    image = f"{registry.host}/biomarkers/{NAME}@{digest}"
    task = {"Name": "main", "Driver": "docker", "Config": {"image": image}, "Resources": {"CPU": 500, "MemoryMB": 64}}
    NomadClient(NomadSettings(address=fake.address)).register(
        {"ID": f"{NAME}-fast", "Name": f"{NAME}-fast", "Type": "batch", "Datacenters": ["*"],
         "TaskGroups": [{"Name": "fast", "Count": 1, "Tasks": [task]}],
         "ParameterizedJob": {"Payload": "forbidden", "MetaRequired": ["study", "output", "execution_id"],
                              "MetaOptional": ["cohort"]},
         "Meta": {"digest": digest}}, enforce_index=0)
    fake.batch_outcome[image] = "complete"
    (work / "org" / NAME).mkdir(parents=True)
    (work / "org" / NAME / "biomarker.yaml").write_text(MANIFEST.format(name=NAME), encoding="utf-8")
    study(work / "studies" / "s1", 1, 2, 3)
    env = {**os.environ, "DELIVERY_HOME": str(work / "home"), "DELIVERY_REGISTRY": registry.host,
           "DELIVERY_REGISTRY_USER": registry.username, "DELIVERY_REGISTRY_PASSWORD": registry.password.reveal(),
           "NOMAD_ADDR": fake.address, "NO_PROXY": "127.0.0.1,localhost",
           "DELIVERY_DATABASE_URL": f"sqlite:///{work / 'ledger.sqlite'}"}
    env["BENCH_TOKEN"] = add_token(work / "tokens.yaml", "bench-client", "execution-client")
    env["BENCH_REGISTRY_PID"] = str(registry.process.pid)
    return env, work / "tokens.yaml"


def run(posts: int, gets: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, FakeNomad() as fake:
        work = Path(tmp)
        env, tokens = setup(work, fake)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "rollout.cli", "serve", "--port", str(port), "--workers", "2", "--tokens",
             str(tokens), "--org", str(work / "org"), "--backend", "nomad", "--input-root", str(work / "studies"),
             "--output-root", str(work / "results"), "--env", "bench"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return _load(f"http://127.0.0.1:{port}", env["BENCH_TOKEN"], posts, gets, concurrency)
        finally:
            server.terminate()
            server.wait(30)
            subprocess.run(["kill", env["BENCH_REGISTRY_PID"]], check=False)


def _load(url: str, token: str, posts: int, gets: int, concurrency: int) -> dict[str, Any]:
    wait_ready(url, timeout_s=60)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"biomarker": NAME, "pin": "1.0.0", "input": "s1"}
    ids: list[str] = []

    def post(client: httpx.Client, _: int) -> httpx.Response:
        response = client.post("/v1/executions", json=body, headers=auth)
        if response.status_code == 202:
            ids.append(response.json()["id"])
        return response

    baseline = measure(url, concurrency, gets, lambda c, _: c.get("/healthz"))
    submitted = measure(url, concurrency, posts, post)
    read = measure(url, concurrency, gets, lambda c, i: c.get(f"/v1/executions/{ids[i % len(ids)]}", headers=auth))
    return {"servers": 2, "concurrency": concurrency, "backend": "fake nomad", "baseline_get_healthz": baseline,
            "post_executions": submitted, "get_execution": read,
            "ratio_get_execution_vs_healthz_per_second": round(read["per_second"] / baseline["per_second"], 3),
            "ratio_post_executions_vs_healthz_per_second": round(submitted["per_second"] / baseline["per_second"], 3),
            "load_average": os.getloadavg()[0], "cores": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(run(args.posts, args.gets, args.concurrency), indent=2))


if __name__ == "__main__":
    main()
