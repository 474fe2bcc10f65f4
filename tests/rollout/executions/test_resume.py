"""Resuming runs whose collector died, on the real engine: each outcome recorded once, vanished runs `lost`."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.manifest.validate import parse_manifest
from rollout.cli import main
from rollout.executions.ledger import Ledger
from rollout.executions.manifests import FixedManifests
from rollout.executions.model import ExecutionRecord, ExecutionRequest
from rollout.executions.resume import resume
from rollout.executions.sandbox import file_sha256
from rollout.executions.submit import Submitter
from tests.rollout.executions.conftest import NAME, Builds, World, make_world
from tests.support.executions_builders import MANIFEST, study

OUTCOMES = {"succeeded", "failed", "timed_out", "dispatch_failed", "lost"}
# A variant that is still running when the test "kills" its collector (the submit returns once it is dispatched).
SLOW = """variants:
  slow:
    command: ["sh", "-c", "sleep 2; sh /app/run.sh"]
    resources: {cpu_mhz: 500, memory_mb: 64}
    timeout: 1m
"""


def slow_submitter(world: World) -> Submitter:
    """The world's submitter, with a manifest that also has the slow variant."""
    text = MANIFEST.format(name=NAME).replace("variants:\n", SLOW, 1)
    manifests = FixedManifests(parse_manifest(text.encode(), f"{NAME}/biomarker.yaml"))
    return Submitter(ledger=world.ledger, store=world.store, resolver=world.submitter._resolver,
                     manifests=manifests, backend=world.submitter.backend,
                     shadow_root=world.tmp / "shadow")


def orphan(world: World, submitter: Submitter, variant: str = "fast") -> ExecutionRequest:
    """Dispatch a run and never collect it: what a server that dies mid-run leaves behind."""
    out = world.tmp / "out" / uuid.uuid4().hex[:8]
    req = ExecutionRequest(biomarker=NAME, spec="1.0.0", input_path=study(world.tmp / "in", 10, 20),
                           output_path=out, variant=variant, environment="hospital-a", request_id=str(out))
    submitter.run(req, wait=False)
    return req


def outcomes(ledger: Ledger, execution_id: str) -> list[str]:
    return [e.kind for e in ledger.get(execution_id).events if e.kind in OUTCOMES]


def only(world: World) -> str:
    return world.ledger.executions()[0].id


def test_a_run_whose_collector_died_is_collected_once_by_resume(world: World, builds: Builds,
                                                                docker_client: DockerClient) -> None:
    slow = slow_submitter(world)
    req = orphan(world, slow, "slow")
    running = world.ledger.get(only(world))
    assert running.status == "dispatched"  # recorded when the container started, not when it ended
    assert docker_client.find_job_container(running.id) is not None
    done = resume(slow)
    assert [(r.execution_id, r.status, r.action) for r in done] == [(running.id, "succeeded", "collected")]
    provenance = json.loads((req.output_path / "provenance.json").read_text())
    assert provenance["status"] == "succeeded" and provenance["digest"] == builds.v1.digest
    assert {o["path"]: o["sha256"] for o in provenance["outputs"]}["report.json"] == file_sha256(
        req.output_path / "report.json")
    assert resume(slow) == []  # nothing left to collect
    assert outcomes(world.ledger, running.id) == ["succeeded"]
    assert docker_client.find_job_container(running.id) is None  # removed once its outcome was recorded


def test_two_concurrent_resumes_record_one_outcome(world: World, builds: Builds, tmp_path: Path,
                                                   docker_client: DockerClient, registry: RegistryHandle,
                                                   registry_auth: RegistryAuth) -> None:
    orphan(world, world.submitter)
    other = make_world(tmp_path, docker_client, registry, registry_auth)  # a second server copy, same ledger
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda s=s: results.append([f"{r.status} {r.action}" for r in resume(s)]))
               for s in (world.submitter, other.submitter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [["succeeded collected"], ["succeeded collected"]]
    assert outcomes(world.ledger, only(world)) == ["succeeded"]


def test_a_resume_racing_the_live_collector_adds_no_second_outcome(world: World, builds: Builds) -> None:
    orphan(world, world.submitter)
    live = threading.Thread(target=world.submitter.wait, args=(only(world),))
    live.start()
    resume(world.submitter)
    live.join(60)
    assert outcomes(world.ledger, only(world)) == ["succeeded"]


def test_a_vanished_container_is_recorded_lost(world: World, builds: Builds, docker_client: DockerClient) -> None:
    slow = slow_submitter(world)
    orphan(world, slow, "slow")
    container = docker_client.find_job_container(only(world))
    assert container is not None
    docker_client.remove_job(container.container_id)  # pruned by someone while no server watched it
    done = resume(slow)
    assert [r.action for r in done] == ["collected"]
    execution = world.ledger.get(only(world))
    assert execution.status == "lost" and execution.finished
    assert "no longer exists" in execution.latest("reason")
    assert resume(slow) == [] and outcomes(world.ledger, execution.id) == ["lost"]


def test_a_submission_that_never_started_is_lost_only_after_the_grace_period(world: World, builds: Builds) -> None:
    record = ExecutionRecord(
        id=str(uuid.uuid4()), created_at=datetime.now(UTC), actor="tests", biomarker=NAME, variant="fast",
        environment="hospital-a", input_identity="sha256:00", pin_requested=f"{NAME}@1.0.0", version="1.0.0",
        digest=builds.v1.digest, reference=builds.v1.reference, resolution_rule="exact", route="stable",
        backend="docker", output_path=str(world.tmp / "never"), input_path=str(world.tmp / "in"))
    world.ledger.record(record, ("submitted", {}))
    assert [r.action for r in resume(world.submitter)] == ["just submitted: left to the server starting it"]
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert [r.status for r in resume(world.submitter, clock=lambda: later)] == ["lost"]
    assert outcomes(world.ledger, record.id) == ["lost"]


def test_resume_through_the_cli(home: Path, builds: Builds, capsys: pytest.CaptureFixture[str],
                                docker_client: DockerClient) -> None:
    assert main(["submit", f"{NAME}@1.0.0", "--input", str(study(home / "in", 4)), "--out", str(home / "out"),
                 "--org", str(home / "org"), "--json"]) == 0
    capsys.readouterr()
    assert main(["executions", "resume", "--json", "--org", str(home / "org")]) == 0
    assert json.loads(capsys.readouterr().out) == []  # a submit that waited left nothing behind


def test_an_outcome_is_recorded_at_most_once(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    record = ExecutionRecord(
        id="e1", created_at=datetime.now(UTC), actor="tests", biomarker=NAME, variant="fast", environment="local",
        input_identity="sha256:00", pin_requested=f"{NAME}@1.0.0", version="1.0.0", digest="sha256:" + "0" * 64,
        reference="r", resolution_rule="exact", route="stable", backend="docker", output_path="/o", input_path="/i")
    ledger.record(record)
    assert ledger.record_outcome("e1", "succeeded", {"exit_code": 0}) is True
    assert ledger.record_outcome("e1", "failed", {"exit_code": 1}) is False
    assert outcomes(ledger, "e1") == ["succeeded"]
