"""Tests of the fake Nomad itself against reference/nomad-api.md §10 (the fake lives in tests/support/)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import nomad
import pytest
import requests
from nomad.api import exceptions as nexc

from delivery.release.state import ConflictError, ReleaseState
from rollout.nomad_state import NomadReleaseStore
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import client


def service(image: str = "img:1", count: int = 2, canary: int = 1) -> dict[str, Any]:
    return {"ID": "web", "Type": "service", "TaskGroups": [{"Name": "api", "Count": count,
            "Update": {"Canary": canary, "AutoRevert": True, "MaxParallel": 1},
            "Tasks": [{"Name": "main", "Driver": "docker", "Config": {"image": image}}]}]}


def param() -> dict[str, Any]:
    return {"ID": "batch", "Type": "batch", "ParameterizedJob": {"MetaRequired": ["study"]},
            "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "b:1"}}]}]}


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


@pytest.fixture
def api(fake: FakeNomad) -> nomad.Nomad:
    return nomad.Nomad(address=fake.address)


def test_wrong_method_is_405_and_errors_are_plain_text(fake: FakeNomad) -> None:
    r = requests.post(f"{fake.address}/v1/job/x/versions", json={}, timeout=5)
    assert (r.status_code, r.text, r.headers["Content-Type"]) == (405, "Invalid method", "text/plain; charset=utf-8")
    r = requests.get(f"{fake.address}/v1/job/nope", timeout=5)
    assert (r.status_code, r.text) == (404, "job not found")
    r = requests.put(f"{fake.address}/v1/jobs", data=b"", timeout=5)
    assert (r.status_code, r.text) == (400, "Request body is empty")


def test_case_insensitive_keys_and_type_errors(fake: FakeNomad) -> None:
    fake.conformance = False  # deliberately not PascalCase: Nomad matches wrapper keys case-insensitively
    r = requests.put(f"{fake.address}/v1/jobs", json={"job": service()}, timeout=5)
    assert r.status_code == 200
    r = requests.put(f"{fake.address}/v1/jobs", json={"Job": service(), "EnforceIndex": "yes"}, timeout=5)
    assert r.status_code == 400 and r.text.startswith("json: cannot unmarshal")


def test_version_only_on_spec_change_and_enforce_index(api: nomad.Nomad, fake: FakeNomad) -> None:
    first = api.job.register_job("web", {"Job": service(), "EnforceIndex": True, "JobModifyIndex": 0})
    again = api.job.register_job("web", {"Job": service()})
    assert fake.job_versions("web") == [0] and again["EvalID"]  # unchanged: eval only
    with pytest.raises(nexc.BaseNomadException) as caught:
        api.job.register_job("web", {"Job": service("img:2"), "EnforceIndex": True, "JobModifyIndex": 0})
    assert caught.value.nomad_resp.status_code == 500
    assert caught.value.nomad_resp.text == "Enforcing job modify index 0: job already exists"
    api.job.register_job("web", {"Job": service("img:2"), "EnforceIndex": True,
                                 "JobModifyIndex": first["JobModifyIndex"]})
    assert fake.job_versions("web") == [0, 1]


def test_batch_rejects_update_block_with_multierror_500(api: nomad.Nomad) -> None:
    job = {**param(), "Update": {"MaxParallel": 1}}
    with pytest.raises(nexc.BaseNomadException) as caught:
        api.job.register_job("batch", {"Job": job})
    assert caught.value.nomad_resp.status_code == 500
    assert 'Job type "batch" does not allow update block' in caught.value.nomad_resp.text


def test_revert_makes_a_new_unstable_version_and_stable_returns_index(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service()})
    api.job.register_job("web", {"Job": service("img:2", canary=0)})
    api.job.revert_job("web", 0, None)
    versions = api.job.get_versions("web")["Versions"]
    assert (versions[0]["Version"], versions[0]["Stable"]) == (2, False)
    with pytest.raises(nexc.BaseNomadException) as caught:
        api.job.revert_job("web", 2, None)
    assert caught.value.nomad_resp.text == "can't revert to current version"
    assert set(api.job.stable_job("web", 2, True)) == {"Index"}


def test_canary_only_on_destructive_change_and_auto_revert(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service()})
    first = api.job.get_deployment("web")
    assert first["TaskGroups"]["api"]["DesiredCanaries"] == 0 and first["Status"] == "successful"
    fake.image_health["img:bad"] = False
    api.job.register_job("web", {"Job": service("img:bad")})
    deps = sorted(api.job.get_deployments("web"), key=lambda d: d["CreateIndex"])
    assert deps[1]["StatusDescription"] == "Failed due to unhealthy allocations - rolling back to job version 0"
    assert deps[2]["JobVersion"] == 2 and deps[2]["Status"] == "successful"


def test_promote_needs_deployment_id_and_healthy_canaries(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service()})
    fake.default_health = None
    api.job.register_job("web", {"Job": service("img:2")})
    dep = api.job.get_deployment("web")
    r = requests.post(f"{fake.address}/v1/deployment/promote/{dep['ID']}", json={"All": True}, timeout=5)
    assert (r.status_code, r.text) == (400, "DeploymentID must be specified")
    with pytest.raises(nexc.BaseNomadException) as caught:
        api.deployment.promote_deployment_all(dep["ID"])
    assert 'Task group "api" has 0/1 healthy allocations' in caught.value.nomad_resp.text


def test_no_capacity_blocks_eval_and_deployment_has_no_deadline(api: nomad.Nomad, fake: FakeNomad) -> None:
    job = service(count=2, canary=0)
    job["TaskGroups"][0]["Tasks"][0]["Resources"] = {"Devices": [{"Name": "nvidia/gpu", "Count": 1}]}
    out = api.job.register_job("web", {"Job": job})
    ev = api.evaluation.get_evaluation(out["EvalID"])
    assert ev["FailedTGAllocs"]["api"]["DimensionExhausted"] and ev["BlockedEval"]
    assert api.job.get_summary("web")["Summary"]["api"]["Queued"] == 1
    fake.add_node("cpu", gpus=0)  # wrong class: still blocked
    fake.add_node("", gpus=1)
    assert api.job.get_deployment("web")["Status"] == "successful"


def test_dispatch_idempotency_token_returns_the_same_child(fake: FakeNomad, api: nomad.Nomad) -> None:
    out = api.job.register_job("batch", {"Job": param()})
    assert out["EvalID"] == ""
    c = client(fake.address)
    one = c.dispatch("batch", meta={"study": "s1"}, idempotency_token="tok-1")
    two = c.dispatch("batch", meta={"study": "s1"}, idempotency_token="tok-1")
    assert one.job_id == two.job_id and one.job_id.startswith("batch/dispatch-")
    r = requests.get(f"{fake.address}/v1/job/{one.job_id}", timeout=5)
    assert r.status_code == 200 and r.json()["ParentID"] == "batch"
    r = requests.post(f"{fake.address}/v1/job/batch/dispatch", json={"Meta": {}}, timeout=5)
    assert (r.status_code, r.text) == (500, "Dispatch did not provide required meta keys: ['study']")


def test_blocking_query_waits_for_a_change(fake: FakeNomad, api: nomad.Nomad) -> None:
    api.job.register_job("web", {"Job": service()})
    r = requests.get(f"{fake.address}/v1/job/web", timeout=5)
    index = int(r.headers["X-Nomad-Index"])
    threading.Timer(0.3, lambda: api.job.register_job("web", {"Job": service("img:9")})).start()
    start = time.monotonic()
    r = requests.get(f"{fake.address}/v1/job/web", params={"index": index, "wait": "10s"}, timeout=15)
    assert 0.25 < time.monotonic() - start < 5 and int(r.headers["X-Nomad-Index"]) > index
    r = requests.get(f"{fake.address}/v1/job/web", params={"index": "x"}, timeout=5)
    assert (r.status_code, r.text) == (400, "Invalid index")


def test_acl_tokens(fake: FakeNomad) -> None:
    fake.tokens = {"reader": frozenset({"read-job"})}
    assert requests.get(f"{fake.address}/v1/jobs", timeout=5).text == "Permission denied"
    r = requests.get(f"{fake.address}/v1/jobs", headers={"X-Nomad-Token": "nope"}, timeout=5)
    assert (r.status_code, r.text) == (403, "ACL token not found")
    r = requests.put(f"{fake.address}/v1/jobs", json={"Job": service()}, headers={"X-Nomad-Token": "reader"}, timeout=5)
    assert (r.status_code, r.text) == (403, "Permission denied")


def test_variables_cas_and_release_store(fake: FakeNomad) -> None:
    store = NomadReleaseStore(client(fake.address))
    empty = store.read("prod", "alpha")
    assert empty.index == 0
    index = store.write(ReleaseState(environment="prod", biomarker="alpha"), 0)
    with pytest.raises(ConflictError):
        store.write(ReleaseState(environment="prod", biomarker="alpha"), 0)
    assert store.read("prod", "alpha").index == index and store.biomarkers("prod") == ["alpha"]
    r = requests.put(f"{fake.address}/v1/var/x", params={"cas": 5}, json={"Items": {"a": "b"}}, timeout=5)
    assert r.status_code == 409


def test_a_variable_lands_in_the_namespace_its_body_names(fake: FakeNomad) -> None:
    r = requests.put(f"{fake.address}/v1/var/nomad/jobs/web", json={"Namespace": "imaging", "Items": {"k": "v"}},
                     timeout=5)
    assert r.status_code == 200 and r.json()["Namespace"] == "imaging"
    assert requests.get(f"{fake.address}/v1/var/nomad/jobs/web", timeout=5).status_code == 404
    read = requests.get(f"{fake.address}/v1/var/nomad/jobs/web", params={"namespace": "imaging"}, timeout=5).json()
    assert read["Items"] == {"k": "v"} and read["Namespace"] == "imaging"
    assert set(read) == {"Namespace", "Path", "Items", "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime"}
    assert requests.get(f"{fake.address}/v1/vars", timeout=5).json() == []
    listed = requests.get(f"{fake.address}/v1/vars", params={"namespace": "*"}, timeout=5).json()
    assert [(v["Namespace"], v["Path"]) for v in listed] == [("imaging", "nomad/jobs/web")]


@pytest.mark.parametrize("via", ["client-report", "allocation-health-endpoint"])
def test_blocking_read_of_a_jobs_deployment_wakes_when_an_allocation_turns_healthy(fake: FakeNomad, api: nomad.Nomad,
                                                                                   via: str) -> None:
    api.job.register_job("web", {"Job": service()})
    fake.default_health = None
    api.job.register_job("web", {"Job": service("img:2")})
    c = client(fake.address)
    seen = c.latest_deployment("web")
    assert seen.value is not None and seen.value.groups[0].healthy == 0
    dep_id = seen.value.id
    canary = next(a for a in fake.allocs_of("web") if a["DeploymentStatus"]["Canary"])

    def report() -> None:
        if via == "client-report":
            fake.set_alloc_health(canary["ID"], True)
        else:
            requests.post(f"{fake.address}/v1/deployment/allocation-health/{dep_id}",
                          json={"DeploymentID": dep_id, "HealthyAllocationIDs": [canary["ID"]]}, timeout=5)

    threading.Timer(0.2, report).start()
    start = time.monotonic()
    woke = c.latest_deployment("web", index=seen.index, wait=20.0)
    assert time.monotonic() - start < 5, "the blocking query slept through the health change"
    assert woke.index > seen.index and woke.value is not None and woke.value.groups[0].healthy == 1


def test_versions_keep_the_newest_six_and_the_newest_stable(api: nomad.Nomad, fake: FakeNomad) -> None:
    job = param()
    api.job.register_job("batch", {"Job": job})
    api.job.stable_job("batch", 0, True)  # batch versions are never stable on their own
    for n in range(1, 8):
        job["Meta"] = {"n": str(n)}
        api.job.register_job("batch", {"Job": job})
    assert fake.job_versions("batch") == [0, 3, 4, 5, 6, 7]
    listed = api.job.get_versions("batch")["Versions"]
    assert [v["Version"] for v in listed] == [7, 6, 5, 4, 3, 0] and listed[-1]["Stable"]


def test_drain_migrates_allocations_with_links_and_no_new_version(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service(canary=0)})
    before = fake.allocs_of("web")
    drained = before[0]
    fake.drain_node(drained["NodeID"])
    old = api.allocation.get_allocation(drained["ID"])
    assert (old["DesiredStatus"], old["ClientStatus"]) == ("stop", "complete")
    after = fake.allocs_of("web")
    replacement = next(a for a in after if a["PreviousAllocation"] == drained["ID"])
    assert old["NextAllocation"] == replacement["ID"] and replacement["NodeID"] != drained["NodeID"]
    assert len(after) == 2 and fake.job_versions("web") == [0] and replacement["JobVersion"] == 0
    assert len(api.job.get_deployments("web")) == 1  # a migration is not a deployment


def test_preserve_counts_keeps_running_counts_but_still_makes_a_version(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service(count=2, canary=0)})
    api.job.register_job("web", {"Job": service(count=5, canary=0), "PreserveCounts": True})
    assert fake.job_versions("web") == [0, 1]  # the Count-only change is detected before counts are preserved
    assert api.job.get_job("web")["TaskGroups"][0]["Count"] == 2 and len(fake.allocs_of("web")) == 2
    api.job.register_job("web", {"Job": service("img:2", count=5, canary=0), "PreserveCounts": True})
    assert api.job.get_job("web")["TaskGroups"][0]["Count"] == 2
    api.job.register_job("web", {"Job": service("img:2", count=3, canary=0)})
    assert api.job.get_job("web")["TaskGroups"][0]["Count"] == 3 and len(fake.allocs_of("web")) == 3


def test_a_paused_deployment_never_fails_its_progress_deadline(api: nomad.Nomad, fake: FakeNomad) -> None:
    api.job.register_job("web", {"Job": service()})
    fake.default_health = None
    api.job.register_job("web", {"Job": service("img:2")})
    dep = api.job.get_deployment("web")
    api.deployment.pause_deployment(dep["ID"], True)
    fake.advance(3 * 3600)  # far past the 10-minute progress deadline
    assert api.deployment.get_deployment(dep["ID"])["Status"] == "paused"
    api.deployment.pause_deployment(dep["ID"], False)
    resumed = api.deployment.get_deployment(dep["ID"])
    assert resumed["Status"] == "running" and resumed["TaskGroups"]["api"]["RequireProgressBy"] > "2026-01-05T12"
    fake.advance(11 * 60)
    assert api.deployment.get_deployment(dep["ID"])["Status"] == "failed"
