"""End to end, the cluster path hospitals use, with real containers: two tiny biomarkers go through `delivery ci run`
(signed, pushed to the real registry), a release manager promotes them and deploys what `candidate` holds, and the
Nomad simulation runs every allocation as a container on the local Docker engine (tests/support/nomad_docker.py) while
`rollout controller` replicas (separate processes, one elected leader) advance the rollouts.

Service: tinyweb 1.0.0 passes its HTTP check and becomes stable; 1.1.0's canary passes its check and the controller
promotes it; 2.0.0's canary fails its check, Nomad auto-reverts to 1.1.0 and the rollout ends RolledBack, even
though its leading controller is killed (SIGKILL, lock not released) while the canary runs and the other replica
takes over. Batch: tinybatch 2.0.0's canary receives its share of the studies
`rollout submit` dispatches, two concurrent executions each read only their own study and write only their own output,
the gates promote 2.0.0, provenance names the simulated node, and `rollout recall` lists what 2.0.0 produced.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from delivery import cli as delivery_cli
from delivery.docker import DockerClient
from delivery.localenv import RegistryHandle
from delivery.provenance import generate_keys
from rollout import cli as rollout_cli
from rollout.controller.leader import LOCK_PATH
from rollout.controller.loop import load_status
from rollout.controller.model import RolloutStatus
from rollout.executions.routing import choose_track, routing_of
from rollout.nomad_state import NomadReleaseStore
from tests.support.ci_repo import commit, git, make_repo
from tests.support.fake_nomad import FakeNomad, Node
from tests.support.nomad_docker import DockerDriver
from tests.support.nomad_world import client

pytestmark = pytest.mark.timeout(600)  # about 35 s on an idle machine

ENV = "hospital"
SPEED = 20.0  # Nomad durations run 20x faster: MinHealthyTime 10 s -> 0.5 s, HealthyDeadline 300 s -> 15 s
TTL = "2"  # the controllers' leader lock TTL, seconds
CONFIG_KEYS = ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL",
               "DELIVERY_CONFIG", "DELIVERY_RELEASE_STORE", "DELIVERY_BACKEND", "DELIVERY_PUBLIC_KEY",
               "DELIVERY_NOMAD_PULL_USER", "DELIVERY_NOMAD_PULL_PASSWORD", "DELIVERY_NOMAD_PULL_PASSWORD_FILE",
               "DELIVERY_SIGNING_KEY", "BUILD_URL", "JENKINS_URL", "TAG_NAME", "BRANCH_NAME", "GIT_COMMIT", "GIT_URL",
               "BUILD_TAG")

# The batch biomarker: reads its study's volume, reports it with its own version (slow enough to overlap another).
RUN_SH = """#!/bin/sh
set -e
sleep 3
printf '{"volume_ml": %s, "version": "%s"}\\n' "$(cat /data/input/volume.txt)" "$BIOMARKER_VERSION" \\
  > /data/output/report.json
"""
HEADER = """\
apiVersion: delivery/v1
kind: Biomarker
name: NAME
description: A tiny end-to-end biomarker.
owners: ["@imaging/e2e"]
image: PREFIX/NAME
build:
  dockerfile: Dockerfile
  context: .
test:
  command: ["sh", "-c", "test -x /bin/sh"]
"""
TINYBATCH = HEADER + """\
job_type: batch
variants:
  fast:
    command: ["sh", "/app/run.sh"]
    resources: {cpu_mhz: 200, memory_mb: 64}
    timeout: 2m
rollout:
  steps:
    - set_weight: 50
    - analysis: {gates: [success-rate, equivalence], min_executions: 2}
    - set_weight: 100
    - promote: {}
  gates:
    min_success_rate: 1.0
    equivalence:
      volume_ml: {relative: 0.01}
"""
TINYWEB = HEADER + """\
job_type: service
service: {port: 8080, health_path: /healthz}
variants:
  web:
    command: ["sh", "-c", 'exec httpd -f -p "$BIOMARKER_PORT" -h /www']
    resources: {cpu_mhz: 200, memory_mb: 64}
rollout:
  steps:
    - analysis: {gates: [health], min_executions: 1}
    - promote: {}
"""


# The test machine has no vulnerability DB: release builds and deploys fail closed unless a reason is given (audited).
UNSCANNED = ("--allow-unscanned", "--reason", "e2e test machine: no vulnerability DB, images are busybox only")
SCAN_IGNORE = """\
ignores:
  - id: DS-0002
    reason: the busybox test images set no USER; every backend runs them as the contract's unprivileged user
    expires: 2999-01-01
"""


@dataclass
class World:
    """The hospital: its share (every node mounts it), the repositories, keys, the cluster and the shared ledger."""

    share: Path
    org: Path
    keys: tuple[Path, Path]
    registry: RegistryHandle
    prefix: str
    fake: FakeNomad
    capsys: pytest.CaptureFixture[str]
    digests: dict[tuple[str, str], str]

    def manifest(self, name: str) -> str:
        return str(self.org / name / "biomarker.yaml")

    def status(self, name: str) -> RolloutStatus | None:
        return load_status(NomadReleaseStore(client(self.fake.address)).read(ENV, name).state)

    def phase(self, name: str) -> str | None:
        s = self.status(name)
        return s.phase if s else None

    def nomad(self, path: str) -> Any:
        answer = requests.get(f"{self.fake.address}{path}", timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


def run(capsys: pytest.CaptureFixture[str], main: Callable[[list[str]], int], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in argv and out.strip() else out, err


def delivery(w: World, *argv: str) -> tuple[int, Any, str]:
    return run(w.capsys, delivery_cli.main, *argv)


def rollout(w: World, *argv: str) -> tuple[int, Any, str]:
    return run(w.capsys, rollout_cli.main, *argv)


def until(what: Callable[[], bool], seconds: float, why: str) -> float:
    """Seconds it took `what` to hold (fails with `why` after `seconds`)."""
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < seconds, f"timed out after {seconds:g}s: {why}"
        time.sleep(0.1)
    return time.monotonic() - start


# ---------------------------------------------------------------- building the biomarkers
def make_biomarker(w: World, busybox: Path, name: str, text: str, files: dict[str, str], extra: str) -> Path:
    repo = make_repo(w.org / name, busybox, image=f"{w.prefix}/{name}", files=files, extra_dockerfile=extra)
    (repo / "biomarker.yaml").write_text(text.replace("NAME", name).replace("PREFIX", w.prefix), encoding="utf-8")
    (repo / "scan-ignore.yaml").write_text(SCAN_IGNORE, encoding="utf-8")
    commit(repo, "the biomarker")
    return repo


def ci_run(w: World, repo: Path, version: str) -> str:
    """Tag the repository's HEAD `v<version>` and run every CI stage; returns the pushed digest."""
    git(repo, "tag", f"v{version}")
    code, summary, err = delivery(w, "ci", "run", str(repo), "--key", str(w.keys[0]), "--network", "none",
                                  "--gpu", "skip", *UNSCANNED, "--json")
    assert code == 0, err[-3000:]
    assert summary["push"]["tag"] == version
    digest = str(summary["push"]["digest"])
    w.digests[(repo.name, version)] = digest
    return digest


def build_all(w: World, busybox: Path) -> None:
    batch = make_biomarker(w, busybox, "tinybatch", TINYBATCH, {"app/run.sh": RUN_SH}, "COPY app /app\n")
    web = make_biomarker(w, busybox, "tinyweb", TINYWEB, {"www/healthz": "ok\n", "www/index.html": "tinyweb\n"},
                         "COPY www /www\n")
    for repo in (batch, web):
        ci_run(w, repo, "1.0.0")
    (web / "www" / "index.html").write_text("tinyweb 1.1.0\n", encoding="utf-8")  # a healthy change
    commit(web, "1.1.0")
    ci_run(w, web, "1.1.0")
    (batch / "app" / "NOTES").write_text("2.0.0: same numbers, new build\n", encoding="utf-8")
    commit(batch, "2.0.0")
    (web / "www" / "healthz").unlink()  # 2.0.0 forgot its health endpoint: its check answers 404
    commit(web, "2.0.0")
    for repo in (batch, web):
        ci_run(w, repo, "2.0.0")


# ---------------------------------------------------------------- the controller replicas
@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    stderr: Path

    def logs(self) -> list[dict[str, Any]]:
        lines = self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def start_replica(tmp: Path, name: str) -> Replica:
    err = tmp / f"controller-{name}.err"
    with (tmp / f"controller-{name}.out").open("wb") as out, err.open("wb") as errors:
        process = subprocess.Popen([sys.executable, "-m", "rollout.cli", "controller", "--ttl", TTL,
                                    "--interval", "0.5", "--json"], stdout=out, stderr=errors,
                                   cwd=Path(__file__).resolve().parents[2], env=dict(os.environ))
    return Replica(process, err)


def expires(items: dict[str, str]) -> float:
    return datetime.fromisoformat(items["expires_at"]).timestamp() if items.get("expires_at") else 0.0


def leader_pid(w: World) -> int | None:
    lock = w.fake.read_variable(LOCK_PATH)
    if lock is None or not lock["Items"].get("holder") or expires(lock["Items"]) < time.time():
        return None
    return int(str(lock["Items"]["holder"]).split("-")[-2])


def kill_leader(w: World, replicas: list[Replica]) -> Replica:
    """SIGKILL the leading controller (its lock stays until the TTL runs out); returns the replica that takes over."""
    alive = [r for r in replicas if r.process.poll() is None]
    until(lambda: leader_pid(w) in {r.process.pid for r in alive}, 10, "a replica holds the lock")
    killed = next(r for r in alive if r.process.pid == leader_pid(w))
    killed.process.send_signal(signal.SIGKILL)
    killed.process.wait(10)
    others = {r.process.pid: r for r in alive if r is not killed}
    took = until(lambda: leader_pid(w) in others, 30, "another replica takes the lock")
    assert took < 4 * float(TTL) + 2, f"handover took {took:.1f}s"
    survivor = others[leader_pid(w) or 0]
    assert any(log.get("leader") == "acquired" for log in survivor.logs())
    return survivor


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def world(docker_client: DockerClient, registry: RegistryHandle, busybox: Path, trivy: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[World]:
    for key in CONFIG_KEYS:  # set then delete: the teardown also removes what a config file filled in
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    share = tmp_path / "share"  # the cluster's shared POSIX data root, mounted at the same path on every node
    share.mkdir()
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / f"{ENV}.yaml").write_text(json.dumps({
        "apiVersion": "delivery/v1", "kind": "Environment", "name": ENV, "registry": registry.host,
        "repository_prefix": prefix, "nomad": {"address": "http://127.0.0.1:4646"}, "channels": ["candidate", "stable"],
        "required_gates": ["attestation", "tests"]}), encoding="utf-8")
    keys = generate_keys(tmp_path / "keys")
    for key, value in (("DELIVERY_HOME", str(tmp_path / "home")), ("DELIVERY_ENVIRONMENTS", str(tmp_path / "envs")),
                       ("DELIVERY_REGISTRY", registry.host), ("DELIVERY_REGISTRY_USER", registry.username),
                       ("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal()), ("DELIVERY_ACTOR", "rm"),
                       ("DELIVERY_ENV", ENV), ("DELIVERY_PUBLIC_KEY", str(keys[1]))):
        monkeypatch.setenv(key, value)
    nodes = [Node(str(uuid.uuid4()), f"cpu-{i}", "cpu", 0) for i in (1, 2)]
    driver = DockerDriver(docker_client, host_roots=[share], work_root=tmp_path / "clients", speed=SPEED)
    with FakeNomad(nodes=nodes, driver=driver) as fake:
        w = World(share, tmp_path / "org", keys, registry, prefix, fake, capsys, {})
        build_all(w, busybox)
        monkeypatch.setenv("NOMAD_ADDR", fake.address)  # cluster mode for every command from here on
        monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'shared-ledger.sqlite'}")
        yield w


@pytest.fixture
def replicas(world: World, tmp_path: Path) -> Iterator[list[Replica]]:
    started = [start_replica(tmp_path, name) for name in ("a", "b")]
    yield started
    for r in started:
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGTERM)
    for r in started:
        try:
            r.process.wait(15)
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait(5)


# ---------------------------------------------------------------- the release manager's steps
def release(w: World, name: str, version: str) -> None:
    """Promote `version` to candidate, deploy what candidate holds."""
    code, _, err = delivery(w, "promote", name, version, "--to", ENV, "--channel", "candidate",
                           "--public-key", str(w.keys[1]))
    assert code == 0, err
    code, status, err = rollout(w, "deploy", name, "--manifest", w.manifest(name), "--channel", "candidate",
                             *UNSCANNED, "--json")
    assert code in (0, 3), err
    assert status["candidate"]["version"] == version
    assert status["candidate"]["digest"] == w.digests[(name, version)]


def job_image(w: World, job_id: str) -> str:
    return str(w.nomad(f"/v1/job/{job_id}")["TaskGroups"][0]["Tasks"][0]["Config"]["image"])


def image_of(w: World, name: str, version: str) -> str:
    return f"{w.registry.host}/{w.prefix}/{name}@{w.digests[(name, version)]}"


def running_allocs(w: World, job_id: str) -> list[dict[str, Any]]:
    return [a for a in w.nomad(f"/v1/job/{job_id}/allocations")
            if a["ClientStatus"] == "running" and a["DesiredStatus"] == "run"]


def health_answers(w: World, alloc_id: str) -> int:
    """What GET /healthz answers on an allocation's http port (the address its Nomad service registration names)."""
    alloc = w.nomad(f"/v1/allocation/{alloc_id}")
    port = next(p["Value"] for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == "http")
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
    except requests.ConnectionError:
        return 0  # not listening (yet)


# ---------------------------------------------------------------- the service track
def service_path(w: World, replicas: list[Replica]) -> None:
    release(w, "tinyweb", "1.0.0")
    until(lambda: w.phase("tinyweb") == "Succeeded", 90, "tinyweb 1.0.0 becomes stable")
    job = "tinyweb-web"
    assert job_image(w, job) == image_of(w, "tinyweb", "1.0.0")
    deployments = w.nomad(f"/v1/job/{job}/deployments")
    assert [d["Status"] for d in deployments] == ["successful"]
    stable = running_allocs(w, job)
    assert stable and all(health_answers(w, a["ID"]) == 200 for a in stable)
    assert all(a["DeploymentStatus"]["Healthy"] for a in stable)

    release(w, "tinyweb", "1.1.0")  # a healthy canary: its http check passes, the controller promotes it
    until(lambda: w.phase("tinyweb") == "Succeeded" and w.status("tinyweb").candidate.version == "1.1.0", 90,
          "the 1.1.0 canary is promoted")
    canary_deployment = w.nomad(f"/v1/job/{job}/deployment")
    assert canary_deployment["Status"] == "successful" and canary_deployment["JobVersion"] == 1
    group = canary_deployment["TaskGroups"]["web"]
    assert (group["DesiredCanaries"], group["Promoted"]) == (1, True)
    assert job_image(w, job) == image_of(w, "tinyweb", "1.1.0")
    until(lambda: bool(running_allocs(w, job)) and all(health_answers(w, a["ID"]) == 200
                                                       for a in running_allocs(w, job)), 60, "1.1.0 serves")

    release(w, "tinyweb", "2.0.0")
    until(lambda: any(a["DeploymentStatus"] and a["DeploymentStatus"].get("Canary") for a in running_allocs(w, job)),
          60, "the 2.0.0 canary runs")
    canary = next(a for a in running_allocs(w, job) if a["DeploymentStatus"].get("Canary"))
    until(lambda: health_answers(w, canary["ID"]) == 404, 30, "the canary's httpd answers")

    running = w.status("tinyweb")
    assert running is not None and not running.terminal and running.candidate.version == "2.0.0"
    kill_leader(w, replicas)  # mid-rollout, while Nomad judges the canary

    until(lambda: w.phase("tinyweb") in ("RolledBack", "Failed", "Succeeded", "Aborted"), 120,
          "the failing canary ends")
    code, status, err = rollout(w, "status", "tinyweb", "--json")
    assert code == 1 and status["phase"] == "RolledBack", (status, err)  # exit 1: rolled back
    assert job_image(w, job) == image_of(w, "tinyweb", "1.1.0")  # Nomad's auto-revert: back on 1.1.0's spec
    deployments = w.nomad(f"/v1/job/{job}/deployments")
    assert any(d["Status"] == "failed" and "rolling back to job version" in d["StatusDescription"]
               for d in deployments)
    until(lambda: bool(running_allocs(w, job)) and all(health_answers(w, a["ID"]) == 200
                                                       for a in running_allocs(w, job)), 60, "1.1.0 serves again")
    versions = sorted(w.nomad(f"/v1/job/{job}/versions")["Versions"], key=lambda v: v["Version"])
    assert [v["TaskGroups"][0]["Tasks"][0]["Config"]["image"] for v in versions] == [
        image_of(w, "tinyweb", v) for v in ("1.0.0", "1.1.0", "2.0.0", "1.1.0")]  # nothing registered twice


# ---------------------------------------------------------------- the batch track
def studies_by_route(w: World, wanted: list[str]) -> list[str]:
    """Series UIDs the running rollout routes to the tracks in `wanted` (e.g. candidate, stable, candidate)."""
    routing = routing_of(NomadReleaseStore(client(w.fake.address)).read(ENV, "tinybatch").state)
    assert routing.active and routing.weight == 50
    uids = [f"1.2.826.0.1.3680043.9.{i}" for i in range(200)]
    tracks = {uid: choose_track(routing, f"dicom-series:{uid}") for uid in uids}
    picked: list[str] = []
    for track in wanted:
        picked.append(next(u for u in uids if tracks[u] == track and u not in picked))
    return picked


def make_study(w: World, name: str, volume: str) -> None:
    study = w.share / "studies" / name
    study.mkdir(parents=True)
    (study / "volume.txt").write_text(volume + "\n", encoding="utf-8")


def submit(w: World, name: str, uid: str, *flags: str) -> dict[str, Any]:
    code, answer, err = rollout(w, "submit", "tinybatch@stable", "--input", str(w.share / "studies" / name),
                                "--out", str(w.share / "results" / name), "--series-uid", uid,
                                "--org", str(w.org), "--backend", "nomad", "--json", *flags)
    assert code == 0, "\n".join([*task_events(w, answer), err])
    return dict(answer)


def task_events(w: World, answer: dict[str, Any]) -> list[str]:
    """What Nomad says happened to the tasks of a submission's executions (for failure messages)."""
    runs = [answer.get(k) for k in ("execution", "shadow")]
    jobs = [r["backend_job_id"] for r in runs if r and r.get("backend_job_id")]
    allocs = [a for job in jobs for a in w.nomad(f"/v1/job/{job}/allocations")]
    return [f"{a['JobID']}: {e['Type']}: {e['DisplayMessage']}" for a in allocs
            for e in a["TaskStates"]["main"]["Events"]]


def collect(w: World, execution_id: str) -> dict[str, Any]:
    code, answer, err = rollout(w, "executions", "wait", execution_id, "--org", str(w.org), "--json")
    assert code == 0, "\n".join([*task_events(w, answer), err])
    return dict(answer)


def child_alloc(w: World, job_id: str) -> dict[str, Any]:
    allocs = w.nomad(f"/v1/job/{job_id}/allocations")
    assert len(allocs) == 1, allocs
    return dict(allocs[0])


def ran(w: World, execution: dict[str, Any]) -> tuple[datetime, datetime]:
    """When the execution's container ran, as Nomad's task state says."""
    state = child_alloc(w, execution["backend_job_id"])["TaskStates"]["main"]
    return datetime.fromisoformat(state["StartedAt"]), datetime.fromisoformat(state["FinishedAt"])


VOLUMES = {"a": "101.5", "b": "202.25", "c": "303.75"}


def batch_path(w: World, replicas: list[Replica]) -> dict[str, dict[str, Any]]:
    """tinybatch 1.0.0 stable, 2.0.0 rolled out over three studies; returns each study's submission."""
    release(w, "tinybatch", "1.0.0")
    until(lambda: w.phase("tinybatch") == "Succeeded", 60, "tinybatch 1.0.0 becomes stable")
    release(w, "tinybatch", "2.0.0")
    until(lambda: (s := w.status("tinybatch")) is not None and s.weight == 50, 60, "the canary gets 50%")
    kill_leader(w, replicas)  # again mid-rollout: the analysis step waits for executions
    assert job_image(w, "tinybatch-fast-canary") == image_of(w, "tinybatch", "2.0.0")
    assert job_image(w, "tinybatch-fast") == image_of(w, "tinybatch", "1.0.0")

    uids = dict(zip(VOLUMES, studies_by_route(w, ["candidate", "stable", "candidate"]), strict=True))
    for name, volume in VOLUMES.items():
        make_study(w, name, volume)
    # Two concurrent executions on different studies: both dispatched, then both collected.
    dispatched = {name: submit(w, name, uids[name])["execution"] for name in ("a", "b")}
    assert {d["status"] for d in dispatched.values()} == {"dispatched"}
    done = {name: collect(w, dispatched[name]["id"]) for name in ("a", "b")}
    (a_start, a_end), (b_start, b_end) = ran(w, done["a"]["execution"]), ran(w, done["b"]["execution"])
    assert a_start < b_end and b_start < a_end, "the two executions ran at the same time"
    done["c"] = submit(w, "c", uids["c"], "--wait")
    return done


def check_batch_results(w: World, done: dict[str, dict[str, Any]]) -> None:
    """Each execution read only its own study and wrote only its own output; the canary got its share."""
    nodes = {n.id: n.name for n in w.fake.nodes.values()}
    for name, volume in VOLUMES.items():
        out = w.share / "results" / name
        assert sorted(p.name for p in out.iterdir()) == ["provenance.json", "report.json"]
        assert json.loads((out / "report.json").read_text()) == {"volume_ml": float(volume), "version": "1.0.0"}
        execution = done[name]["execution"]
        assert execution["status"] == "succeeded" and execution["route"] == "stable"
        provenance = json.loads((out / "provenance.json").read_text())
        alloc = child_alloc(w, execution["backend_job_id"])
        assert provenance["node"] == alloc["NodeID"] and nodes[alloc["NodeID"]] == alloc["NodeName"]
        shadow = done[name].get("shadow")
        assert (shadow is not None) == (name != "b")  # the canary got exactly the studies its weight routes to it
        if shadow is not None:
            assert shadow["version"] == "2.0.0" and shadow["status"] == "succeeded"
            shadow_out = Path(shadow["output_path"])
            assert shadow_out.parent == w.share / "results" / ".shadow"  # on the share, where the nodes can bind it
            assert json.loads((shadow_out / "report.json").read_text()) == {"volume_ml": float(volume),
                                                                            "version": "2.0.0"}
            assert sorted(p.name for p in shadow_out.iterdir()) == ["comparison.json", "provenance.json",
                                                                     "report.json"]
            assert child_alloc(w, shadow["backend_job_id"])["JobID"].startswith("tinybatch-fast-canary/dispatch-")


def promoted_by_gates(w: World) -> None:
    """The gates judged the canary's executions in the shared ledger and the controller promoted 2.0.0."""
    until(lambda: w.phase("tinybatch") in ("Succeeded", "RolledBack", "Failed", "Aborted"), 90, "the gates judge")
    code, status, err = rollout(w, "status", "tinybatch", "--json")
    assert code == 0 and status["phase"] == "Succeeded", err
    passed = {g["name"]: g["measured"] for g in status["gate_results"] if g["verdict"] == "pass"}
    assert passed["success-rate"]["executions"] == 2 and passed["equivalence"]["paired_runs"] == 2
    code, pin, err = delivery(w, "resolve", "tinybatch@stable", "--env", ENV, "--json")
    assert code == 0 and (pin["version"], pin["digest"]) == ("2.0.0", w.digests[("tinybatch", "2.0.0")]), err
    assert job_image(w, "tinybatch-fast") == image_of(w, "tinybatch", "2.0.0")


def recall_lists_the_results(w: World, done: dict[str, dict[str, Any]]) -> None:
    """`rollout recall` yanks 2.0.0, rolls it back on the cluster and lists every result it produced."""
    code, report, err = rollout(w, "recall", "tinybatch", "2.0.0", "--reason", "volume drift found in review",
                                "--org", str(w.org), "--json")
    assert code == 0 and report["problems"] == [], err
    listed = {e["id"]: e for e in report["executions"]}
    assert set(listed) == {done[name]["shadow"]["id"] for name in ("a", "c")}
    for name in ("a", "c"):
        entry = listed[done[name]["shadow"]["id"]]
        report_file = Path(entry["output_path"]) / "report.json"
        assert entry["input_identity"] == done[name]["shadow"]["input_identity"] and not entry["delivered"]
        assert [(o["path"], o["sha256"]) for o in entry["outputs"]] == [
            ("report.json", hashlib.sha256(report_file.read_bytes()).hexdigest())]
    assert any("rolled back tinybatch 2.0.0" in action for action in report["actions"])
    until(lambda: job_image(w, "tinybatch-fast") == image_of(w, "tinybatch", "1.0.0"), 30, "stable back on 1.0.0")


def test_cluster_path_from_ci_to_results_with_a_controller_killed_mid_rollout(
        world: World, replicas: list[Replica], tmp_path: Path) -> None:
    service_path(world, replicas)
    replicas.append(start_replica(tmp_path, "c"))  # a replacement replica; the next kill leaves two again
    done = batch_path(world, replicas)
    check_batch_results(world, done)
    promoted_by_gates(world)
    recall_lists_the_results(world, done)
    # Every job, request body and answer on the way validated against Nomad's OpenAPI document and rules.
    assert world.fake.conformance and world.fake.conformance_problems == []
