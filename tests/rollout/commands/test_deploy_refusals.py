"""A Nomad that refuses a job `rollout deploy` would register (its validation text, an ACL denial, a bad request)
ends the deploy with Nomad's own words and nothing written: no release state, no pull credentials, no job. A job
Nomad accepts but cannot place now (no node with the GPUs it asks for) is a warning, and the rollout starts. While a
controller service holds the leader lock, deploy records the rollout and leaves the registering to it."""

from __future__ import annotations

import pytest

from rollout.controller.leader import NomadLease
from tests.rollout.test_compose import CANARY, ENV, STABLE, World, cluster, delivery, deploy, fake, world
from tests.support.fake_nomad import FakeNomad, multierror
from tests.support.nomad_world import SERVICE, client

__all__ = ["cluster", "fake", "world"]  # fixtures used by name

INVALID = multierror("Task group fast validation failed: 1 error occurred:\n\t* Task quantify: "
                     "Resources.MemoryMB must be at least 10")
REFUSALS = [
    pytest.param(500, INVALID, "fix the manifest", id="invalid-job-500"),
    pytest.param(403, "Permission denied", "NOMAD_TOKEN needs submit-job", id="acl-403"),
    pytest.param(400, "Job ID does not match", "malformed", id="bad-request-400"),
]


@pytest.mark.parametrize(("status", "text", "hint"), REFUSALS)
def test_a_job_nomad_refuses_ends_the_deploy_with_its_text_and_nothing_written(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str], status: int, text: str,
        hint: str) -> None:
    world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    before = cluster.read_variable(f"delivery/release/{ENV}/alpha")
    writes = cluster.count("PUT", "/v1/var")
    cluster.inject("POST", r"^/v1/job/[^/]+/plan$", status=status, text=text, times=10)  # through every retry
    code, _, err = deploy(capsys, world, "--channel", "candidate")
    assert code == 1, err
    assert f"Nomad refuses job {CANARY}" in err and f"Nomad answered {status}" in err
    assert text.splitlines()[0] in err and hint.lower() in err.lower()
    assert cluster.count("PUT", "/v1/var") == writes  # neither credentials nor the rollout
    assert cluster.read_variable(f"delivery/release/{ENV}/alpha") == before
    assert [cluster.read_variable(f"nomad/jobs/{job}") for job in (STABLE, CANARY)] == [None, None]
    assert [client(cluster.address).job(job).value for job in (STABLE, CANARY)] == [None, None]


def test_a_job_no_node_can_place_now_is_a_warning_and_the_rollout_starts(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.manifest.write_text(SERVICE.replace("quicklook", "alpha").replace("GPU", "8"), encoding="utf-8")
    world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    code, status, err = deploy(capsys, world, "--channel", "candidate", "--json")
    assert code in (0, 3), err
    assert "warning: Nomad accepts job alpha-web but cannot place group(s)" in err
    assert status["candidate"]["version"] == "1.0.0"
    assert client(cluster.address).job("alpha-web").value is not None


def test_with_a_live_controller_deploy_records_the_rollout_and_leaves_registering_to_it(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    assert NomadLease(client(cluster.address), identity="replica-1").acquire()
    code, status, err = deploy(capsys, world, "--channel", "candidate", "--json")
    assert code == 0, err
    assert status["phase"] == "Progressing" and status["candidate"]["digest"] == digest
    assert "controller service (replica-1)" in err
    assert [client(cluster.address).job(job).value for job in (STABLE, CANARY)] == [None, None]
