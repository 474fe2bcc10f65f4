"""Every job the project registers, every request it sends and every answer the fake gives, checked against Nomad's
own OpenAPI document (tests/support/nomad-openapi.yaml) plus the rules it cannot express (reference/nomad-api.md)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from delivery.manifest import Biomarker, parse_manifest
from rollout.jobspec import Track, build_job
from rollout.nomad import NomadError
from tests.support import nomad_openapi as oa
from tests.support import nomad_world as world
from tests.support.fake_nomad import FakeNomad

Json = dict[str, Any]
ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted(ROOT.glob("biomarkers/*/biomarker.yaml"))
GPU_BATCH = world.BATCH.replace("memory_mb: 128}", "memory_mb: 128, gpu: 1}")


def _from_file(path: Path) -> Callable[[], Biomarker]:
    return lambda: parse_manifest(path.read_bytes(), str(path))


def _builders() -> Iterator[tuple[str, Callable[[], Biomarker]]]:
    for path in MANIFESTS:
        yield str(path.relative_to(ROOT)), _from_file(path)
    yield "nomad_world.BATCH", lambda: world.manifest(world.BATCH)
    yield "nomad_world.SERVICE", lambda: world.manifest(world.SERVICE)
    yield "nomad_world.SERVICE gpu", lambda: world.manifest(world.SERVICE, gpu=1)
    yield "nomad_world.BATCH gpu", lambda: world.manifest(GPU_BATCH)


def _jobs() -> Iterator[Any]:
    for name, build in _builders():
        manifest = build()
        for variant in sorted(manifest.variants):
            for track in ("stable", "canary"):
                yield pytest.param(manifest, variant, track, id=f"{name}:{variant}:{track}")


def job(text: str = world.BATCH, *, gpu: int = 0, track: Track = "stable") -> Json:
    manifest = world.manifest(text, gpu=gpu)
    return build_job(manifest, next(iter(manifest.variants)), world.release(manifest.name, "1.2.3"), track=track)


def problems(spec: Json) -> list[str]:
    return oa.job_problems(spec) + oa.semantic_problems(spec)


@pytest.mark.parametrize(("manifest", "variant", "track"), list(_jobs()))
def test_every_job_the_project_builds_is_valid_nomad_job_json(manifest: Biomarker, variant: str,
                                                             track: Track) -> None:
    spec = build_job(manifest, variant, world.release(manifest.name, "1.2.3"), track=track)
    assert problems(spec) == []
    body = {"Job": spec, "EnforceIndex": True, "JobModifyIndex": 0}
    assert oa.request_problems("POST", f"/v1/job/{spec['ID']}", body) == []
    assert oa.request_problems("POST", f"/v1/job/{spec['ID']}/plan", {"Job": spec, "Diff": True}) == []


def test_the_gpu_variant_asks_for_a_gpu_device_and_still_validates() -> None:
    spec = job(world.SERVICE, gpu=1)
    assert spec["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"] == [{"Name": "nvidia/gpu", "Count": 1}]
    assert problems(spec) == []


def _mutated(text: str, change: Callable[[Json], None]) -> Json:
    spec = copy.deepcopy(job(text))
    change(spec)
    return spec


def _task(spec: Json) -> Json:
    task: Json = spec["TaskGroups"][0]["Tasks"][0]
    return task


def _group(spec: Json) -> Json:
    group: Json = spec["TaskGroups"][0]
    return group


BROKEN: list[Any] = [
    pytest.param(world.BATCH, lambda j: j.update(Taskgroups=j.pop("TaskGroups")), "'Taskgroups' was unexpected",
                 id="misspelled field"),
    pytest.param(world.BATCH, lambda j: _task(j).update(kill_timeout=5), "'kill_timeout' was unexpected",
                 id="snake_case field"),
    pytest.param(world.BATCH, lambda j: _task(j)["Resources"].update(CPU="500"), "Resources/CPU: \"500\"",
                 id="string CPU"),
    pytest.param(world.SERVICE, lambda j: _group(j).pop("Networks"), 'Port "http" not found, check network block',
                 id="ports label without network"),
    pytest.param(world.SERVICE, lambda j: [_group(j)["Services"][0].pop("PortLabel"),
                                           _group(j)["Services"][0]["Checks"][0].pop("PortLabel")],
                 "a http check needs a port", id="check without port"),
    pytest.param(world.SERVICE, lambda j: _group(j)["Services"][0].update(PortLabel="admin"),
                 "PortLabel 'admin' is not a port of the group network", id="service port not in network"),
    pytest.param(world.BATCH, lambda j: _group(j).update(Update={"MaxParallel": 1}),
                 "Job type 'batch' does not allow update block", id="update on batch"),
    pytest.param(world.BATCH, lambda j: j.update(Update={"Stagger": 1}),
                 "Job type 'batch' does not allow update block", id="job-level update on batch"),
    pytest.param(world.SERVICE, lambda j: j.update(ParameterizedJob={"Payload": "forbidden"}),
                 "only batch and sysbatch jobs may be ParameterizedJob", id="parameterized service"),
    pytest.param(world.BATCH, lambda j: _task(j)["Templates"][0].update(
        EmbeddedTmpl='{{ with nomadVar "nomad/jobs/registry-auth" }}{{ .password }}{{ end }}'),
                 "template reads nomadVar 'nomad/jobs/registry-auth'", id="nomadVar of another job"),
    pytest.param(world.BATCH, lambda j: j["ParameterizedJob"]["MetaRequired"].remove("execution_id"),
                 "${NOMAD_META_execution_id} is used but 'execution_id' is in no", id="meta var not declared"),
    pytest.param(world.BATCH, lambda j: _task(j).update(KillTimeout=30), "durations are nanoseconds",
                 id="duration in seconds"),
    pytest.param(world.BATCH, lambda j: _task(j)["Resources"].update(MemoryMB=5), "below Nomad's minimum of 10",
                 id="too little memory"),
    pytest.param(world.SERVICE, lambda j: _group(j)["Update"].update(Canary=0, AutoPromote=True),
                 "AutoPromote needs Canary > 0", id="auto-promote without canary"),
    pytest.param(world.SERVICE, lambda j: _group(j)["Update"].update(HealthCheck="consul"),
                 "HealthCheck must be one of", id="unknown health check mode"),
    pytest.param(world.SERVICE, lambda j: _group(j)["Update"].update(MinHealthyTime=400 * 10**9),
                 "MinHealthyTime must be below HealthyDeadline", id="min healthy past deadline"),
]


@pytest.mark.parametrize(("text", "change", "expected"), BROKEN)
def test_the_validator_catches_what_nomad_or_its_docker_driver_refuses(text: str, change: Callable[[Json], None],
                                                                        expected: str) -> None:
    assert problems(job(text)) == []
    found = problems(_mutated(text, change))
    assert any(expected in p for p in found), found


def test_opaque_maps_take_any_key_and_nomad_answers_may_be_null() -> None:
    spec = job()
    _task(spec)["Config"]["privileged_mode_whatever"] = [{"x": 1}]
    _task(spec)["Env"]["lower_case_name"] = "fine"
    spec["Meta"]["any.key"] = "fine"
    _group(spec)["Spreads"] = None
    assert problems(spec) == []


def test_a_dispatched_child_reads_its_parents_credentials() -> None:
    child = job() | {"ID": "alpha-fast/dispatch-1767603600-0123abcd", "ParentID": "alpha-fast", "Dispatched": True}
    assert oa.semantic_problems(child) == []


def test_an_explicit_policy_lets_a_job_read_another_variable() -> None:
    spec = _mutated(world.BATCH, lambda j: _task(j)["Templates"][0].update(
        EmbeddedTmpl='{{ with nomadVar "shared/registry" }}{{ .password }}{{ end }}'))
    assert oa.semantic_problems(spec)
    assert oa.semantic_problems(spec, readable=["shared/*"]) == []


def test_requests_match_the_documents_operations() -> None:
    assert oa.request_problems("POST", "/v1/job/a/dispatch", {"JobID": "a", "Meta": {"study": "/s"}}) == []
    assert oa.request_problems("PUT", "/v1/var/nomad/jobs/a", {"Path": "nomad/jobs/a", "Items": {"u": "v"}}) == []
    assert oa.request_problems("POST", "/v1/deployment/promote/d", {"DeploymentID": "d", "All": True}) == []
    assert "'Groupz' was unexpected" in oa.request_problems("POST", "/v1/deployment/promote/d",
                                                            {"DeploymentID": "d", "Groupz": ["a"]})[0]
    assert "no such operation" in oa.request_problems("POST", "/v1/job/a/versions", {})[0]


# ---------------------------------------------------------------- the fake's answers
@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def _get(fake: FakeNomad, path: str) -> Any:
    r = requests.get(f"{fake.address}{path}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def _answers_conform(fake: FakeNomad, paths: list[str]) -> None:
    for path in paths:
        assert oa.response_problems("GET", path, 200, _get(fake, path)) == [], path


def test_batch_jobs_dispatches_allocations_and_variables_conform(fake: FakeNomad) -> None:
    nomad = world.client(fake.address)
    spec = job()
    nomad.put_variable(f"nomad/jobs/{spec['ID']}", {"username": "u", "password": "p"}, cas=0)
    nomad.register(spec, enforce_index=0)
    meta = {"study": "/data/s1", "output": "/data/o1", "execution_id": "e1"}
    child = nomad.dispatch(spec["ID"], meta=meta, idempotency_token="t1").job_id
    nomad.mark_stable(spec["ID"], 0)
    assert nomad.allocations(child) and nomad.versions(spec["ID"])
    _answers_conform(fake, [f"/v1/job/{spec['ID']}", f"/v1/job/{spec['ID']}/versions", f"/v1/job/{child}",
                            f"/v1/job/{child}/allocations", f"/v1/job/{spec['ID']}/summary", "/v1/jobs",
                            f"/v1/var/nomad/jobs/{spec['ID']}", "/v1/vars?prefix=nomad/jobs"])
    assert fake.conformance_problems == []


def test_service_deployments_promotion_and_revert_conform(fake: FakeNomad) -> None:
    nomad = world.client(fake.address)
    first = job(world.SERVICE)
    nomad.register(first, enforce_index=0)
    second = copy.deepcopy(first)
    _task(second)["Config"]["image"] = _task(second)["Config"]["image"].replace("@sha256:1", "@sha256:2")
    second["Meta"]["version"] = "2"
    current = nomad.job(first["ID"]).value
    assert current is not None
    nomad.plan(second)
    nomad.register(second, enforce_index=current.job_modify_index)
    deployment = nomad.latest_deployment(first["ID"]).value
    assert deployment is not None
    nomad.promote(deployment.id)
    nomad.revert(first["ID"], 0, enforce_prior_version=nomad.versions(first["ID"])[0].version)
    nomad.deregister(first["ID"])
    _answers_conform(fake, [f"/v1/job/{first['ID']}/deployment", f"/v1/job/{first['ID']}/deployments",
                            f"/v1/deployment/{deployment.id}", f"/v1/deployment/allocations/{deployment.id}",
                            f"/v1/job/{first['ID']}/allocations", "/v1/deployments"])
    assert fake.conformance_problems == []


def test_a_misspelled_field_nomad_would_silently_ignore_fails_the_test_loudly(fake: FakeNomad) -> None:
    spec = job()
    _task(spec)["Enviroment"] = _task(spec).pop("Env")
    with pytest.raises(NomadError, match="'Enviroment' was unexpected"):
        world.client(fake.address, attempts=1).register(spec, enforce_index=0)
    assert any("'Enviroment' was unexpected" in p for p in fake.conformance_problems)
    with pytest.raises(AssertionError, match="Nomad's OpenAPI document"):
        fake.stop()


def test_a_job_nomads_docker_driver_would_fail_is_refused_by_the_fake_in_tests(fake: FakeNomad) -> None:
    spec = _mutated(world.SERVICE, lambda j: _group(j).pop("Networks"))
    with pytest.raises(NomadError, match='Port "http" not found'):
        world.client(fake.address, attempts=1).register(spec, enforce_index=0)
    assert fake.conformance_problems
    fake.conformance_problems.clear()


def test_pausing_resuming_and_failing_a_deployment_conform(fake: FakeNomad) -> None:
    nomad = world.client(fake.address)
    first = job(world.SERVICE)
    nomad.register(first, enforce_index=0)
    second = job(world.SERVICE) | {"Meta": {**first["Meta"], "version": "2"}}
    _task(second)["Env"]["BIOMARKER_VERSION"] = "2"
    view = nomad.job(first["ID"]).value
    assert view is not None
    nomad.register(second, enforce_index=view.job_modify_index)
    deployment = nomad.latest_deployment(first["ID"]).value
    assert deployment is not None and deployment.status == "running"
    nomad.pause(deployment.id, True)
    nomad.pause(deployment.id, False)
    nomad.fail(deployment.id)
    _answers_conform(fake, [f"/v1/deployment/{deployment.id}", f"/v1/job/{first['ID']}/versions"])
    assert fake.conformance_problems == []


def test_null_in_an_update_block_means_nomads_default() -> None:
    spec = job(world.SERVICE)
    _group(spec)["Update"].update(HealthCheck=None, Stagger=None)
    assert problems(spec) == []
