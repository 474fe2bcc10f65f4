"""The fake Nomad running allocations as real containers (tests/support/nomad_docker.py) by docker driver rules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from rollout.jobspec import Release, build_job
from tests.support.executions_builders import build_biomarker, manifest, study
from tests.support.fake_nomad import FakeNomad, Json, Node
from tests.support.images import write_busybox_context
from tests.support.nomad_docker import DockerDriver, JobPolicy, interpolate, may_read, render_template

MS = 1_000_000
# Reads every *.txt of its study, writes what it read (and who it is) to its output folder.
RUN_SH = r"""#!/bin/sh
set -e
cat /data/input/*.txt > /data/output/seen.txt
echo "$BIOMARKER_EXECUTION_ID on $NODE_CLASS" > /data/output/who.txt
if touch /data/input/tampered 2>/dev/null; then echo writable; else echo read-only; fi > /data/output/input.txt
"""


@pytest.fixture(scope="module")
def image(docker_client: DockerClient, busybox: Path, registry: RegistryHandle, registry_auth: RegistryAuth,
          tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox image with /app/run.sh and an httpd root whose /health answers, pushed as `REGISTRY/REPO@DIGEST`."""
    context = write_busybox_context(tmp_path_factory.mktemp("img"), busybox,
                                    files={"app/run.sh": RUN_SH, "www/health": "ok\n"},
                                    extra_dockerfile=f"COPY app /app\nCOPY www /www\nLABEL probe={uuid.uuid4().hex}\n")
    repository = f"{registry.host}/fake-nomad/bio"
    docker_client.build(context, f"{repository}:1", network_mode="none")
    pushed = docker_client.push(repository, "1", registry_auth)
    return f"{repository}@{pushed.digest}"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "share"
    root.mkdir()
    return root


@pytest.fixture
def driver(docker_client: DockerClient, data: Path, tmp_path: Path) -> DockerDriver:
    return DockerDriver(docker_client, host_roots=[data], work_root=tmp_path / "clients")


@pytest.fixture
def fake(driver: DockerDriver, registry: RegistryHandle) -> Iterator[FakeNomad]:
    with FakeNomad(driver=driver) as f:
        yield f


def put(fake: FakeNomad, path: str, body: Json) -> Json:
    answer = requests.put(f"{fake.address}{path}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def get(fake: FakeNomad, path: str) -> Any:
    answer = requests.get(f"{fake.address}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def credentials(fake: FakeNomad, job_id: str, registry: RegistryHandle, password: str | None = None) -> None:
    put(fake, f"/v1/var/nomad/jobs/{job_id}",
        {"Items": {"username": registry.username, "password": password or registry.password.reveal()}})


def auth_task(image: str, registry: RegistryHandle, variable: str, **config: Any) -> Json:
    """A docker task whose registry credentials come from the Variable `variable` through a template."""
    template = (f'{{{{ with nomadVar "{variable}" }}}}REGISTRY_USERNAME={{{{ .username }}}}\n'
                "REGISTRY_PASSWORD={{ .password }}\n{{ end }}")
    return {"Name": "main", "Driver": "docker",
            "Config": {"image": image, "auth": [{"username": "${REGISTRY_USERNAME}", "password": "${REGISTRY_PASSWORD}",
                                                 "server_address": registry.host}], **config},
            "Templates": [{"EmbeddedTmpl": template, "DestPath": "secrets/registry.env", "Envvars": True,
                           "ChangeMode": "restart"}],
            "Resources": {"CPU": 200, "MemoryMB": 64}}


def batch_parent(image: str, registry: RegistryHandle) -> Json:
    mounts = [{"type": "bind", "source": "${NOMAD_META_study}", "target": "/data/input", "readonly": True},
              {"type": "bind", "source": "${NOMAD_META_output}", "target": "/data/output", "readonly": False}]
    task = auth_task(image, registry, "nomad/jobs/bio-fast", command="sh", args=["/app/run.sh"], mount=mounts)
    task["Env"] = {"BIOMARKER_EXECUTION_ID": "${NOMAD_META_execution_id}", "NODE_CLASS": "${node.class}"}
    return {"ID": "bio-fast", "Type": "batch",
            "Constraints": [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "cpu"}],
            "ParameterizedJob": {"Payload": "forbidden", "MetaRequired": ["study", "output", "execution_id"]},
            "TaskGroups": [{"Name": "fast", "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                            "ReschedulePolicy": {"Attempts": 0, "Unlimited": False}, "Tasks": [task]}]}


def plain_batch(image: str, registry: RegistryHandle, script: str) -> Json:
    """A batch job (not parameterized) running `sh -c script`, with credentials from nomad/jobs/bio-fast."""
    job = batch_parent(image, registry)
    job.pop("ParameterizedJob")
    task = job["TaskGroups"][0]["Tasks"][0]
    task.update(Env={}, Config={**task["Config"], "command": "sh", "args": ["-c", script], "mount": []})
    return job


def service_job(image: str, registry: RegistryHandle, *, health: str = "/health", release: str = "1",
                network: bool = True) -> Json:
    task = auth_task(image, registry, "nomad/jobs/bio-svc", command="httpd",
                     args=["-f", "-p", "127.0.0.1:${NOMAD_PORT_http}", "-h", "/www"], ports=["http"])
    group: Json = {"Name": "svc", "Count": 1, "Tasks": [task],
                   "Update": {"MaxParallel": 1, "Canary": 1, "AutoRevert": True, "HealthCheck": "checks",
                              "MinHealthyTime": 300 * MS, "HealthyDeadline": 2000 * MS,
                              "ProgressDeadline": 20000 * MS}}
    if network:
        group["Networks"] = [{"Mode": "host", "DynamicPorts": [{"Label": "http", "To": 8080}]}]
        group["Services"] = [{"Name": "bio-svc", "PortLabel": "http", "Provider": "nomad",
                              "Checks": [{"Name": "http", "Type": "http", "Path": health, "PortLabel": "http",
                                          "Interval": 200 * MS, "Timeout": 1000 * MS}]}]
    return {"ID": "bio-svc", "Type": "service", "Meta": {"release": release}, "TaskGroups": [group]}


def allocs(fake: FakeNomad, job_id: str) -> list[Json]:
    return [a for a in fake.state.allocs.values() if a["JobID"] == job_id]


def events(alloc: Json, task: str = "main") -> list[str]:
    return [f"{e['Type']}: {e['DisplayMessage']}" for e in alloc["TaskStates"][task]["Events"]]


def test_two_dispatches_each_read_only_their_own_study_and_write_only_their_own_output(
        fake: FakeNomad, image: str, registry: RegistryHandle, data: Path) -> None:
    credentials(fake, "bio-fast", registry)
    put(fake, "/v1/jobs", {"Job": batch_parent(image, registry)})
    children = {}
    for name in ("a", "b"):
        (data / name / "in").mkdir(parents=True)
        (data / name / "out").mkdir()
        (data / name / "in" / "study.txt").write_text(f"patient-{name}\n")
        meta = {"study": str(data / name / "in"), "output": str(data / name / "out"), "execution_id": f"x-{name}"}
        children[name] = put(fake, "/v1/job/bio-fast/dispatch", {"Meta": meta})["DispatchedJobID"]
    assert fake.wait_until(lambda: all(a["ClientStatus"] == "complete" for c in children.values()
                                       for a in allocs(fake, c)) and len(fake.state.allocs) == 2, 60)
    for name in ("a", "b"):
        assert (data / name / "out" / "seen.txt").read_text() == f"patient-{name}\n"
        assert (data / name / "out" / "who.txt").read_text() == f"x-{name} on cpu\n"
        assert (data / name / "out" / "input.txt").read_text() == "read-only\n"
        assert sorted(p.name for p in (data / name / "in").iterdir()) == ["study.txt"]
    alloc = get(fake, f"/v1/job/{children['a']}/allocations")[0]
    assert alloc["NodeName"].startswith("cpu-") and events(alloc)[-1] == "Terminated: Exit Code: 0"


def test_a_healthy_service_canary_is_promoted_and_the_deployment_succeeds(
        fake: FakeNomad, image: str, registry: RegistryHandle) -> None:
    credentials(fake, "bio-svc", registry)
    put(fake, "/v1/jobs", {"Job": service_job(image, registry)})
    assert fake.wait_until(lambda: fake.job_versions("bio-svc") and fake.state.jobs["default\x00bio-svc"]["Stable"], 30)
    first = get(fake, f"/v1/allocation/{allocs(fake, 'bio-svc')[0]['ID']}")
    port = first["AllocatedResources"]["Shared"]["Ports"][0]["Value"]
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).text == "ok\n"
    put(fake, "/v1/jobs", {"Job": service_job(image, registry, release="2")})
    dep = max(fake.state.deployments.values(), key=lambda d: d["CreateIndex"])
    assert fake.wait_until(lambda: fake._healthy_canaries(dep, "svc") == 1, 30)
    put(fake, f"/v1/deployment/promote/{dep['ID']}", {"DeploymentID": dep["ID"], "All": True})
    assert fake.wait_until(lambda: dep["Status"] == "successful", 30), dep["StatusDescription"]
    assert fake.job_versions("bio-svc") == [0, 1] and fake.state.jobs["default\x00bio-svc"]["Stable"]


def test_a_failing_check_makes_the_canary_unhealthy_and_the_job_auto_reverts(
        fake: FakeNomad, image: str, registry: RegistryHandle) -> None:
    credentials(fake, "bio-svc", registry)
    put(fake, "/v1/jobs", {"Job": service_job(image, registry)})
    assert fake.wait_until(lambda: fake.state.jobs["default\x00bio-svc"]["Stable"], 30)
    put(fake, "/v1/jobs", {"Job": service_job(image, registry, health="/missing", release="2")})
    assert fake.wait_until(lambda: fake.job_versions("bio-svc") == [0, 1, 2], 30)
    failed = next(d for d in fake.state.deployments.values() if d["JobVersion"] == 1)
    assert failed["Status"] == "failed"
    assert failed["StatusDescription"].endswith("rolling back to job version 0")
    canary = next(a for a in allocs(fake, "bio-svc") if a["JobVersion"] == 1)
    assert canary["DeploymentStatus"]["Healthy"] is False
    assert fake.state.jobs["default\x00bio-svc"]["Meta"] == {"release": "1"}


def test_a_ports_label_without_a_group_network_fails_with_the_drivers_text(
        fake: FakeNomad, image: str, registry: RegistryHandle) -> None:
    fake.conformance = False  # a job Nomad's own rules call invalid, on purpose
    credentials(fake, "bio-svc", registry)
    put(fake, "/v1/jobs", {"Job": service_job(image, registry, network=False)})
    assert fake.wait_until(lambda: allocs(fake, "bio-svc") and allocs(fake, "bio-svc")[0]["ClientStatus"] == "failed",
                           30)
    assert 'Port "http" not found, check network block' in events(allocs(fake, "bio-svc")[0])[-1]


def test_a_template_reading_another_jobs_variable_gets_no_credentials(
        fake: FakeNomad, driver: DockerDriver, image: str, registry: RegistryHandle, data: Path) -> None:
    fake.conformance = False  # its static check refuses this job at registration
    credentials(fake, "registry-auth", registry)
    parent = batch_parent(image, registry)
    parent["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = \
        parent["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"].replace("bio-fast", "registry-auth")
    put(fake, "/v1/jobs", {"Job": parent})
    (data / "in").mkdir()
    (data / "out").mkdir()
    (data / "in" / "study.txt").write_text("42\n")
    child = put(fake, "/v1/job/bio-fast/dispatch", {"Meta": {"study": str(data / "in"), "output": str(data / "out"),
                                                              "execution_id": "x"}})["DispatchedJobID"]
    missing = "Template: Missing: nomad.var.block(nomad/jobs/registry-auth@default.global)"
    assert fake.wait_until(lambda: any(missing in events(a) for a in allocs(fake, child)), 30)
    alloc = allocs(fake, child)[0]
    secrets = driver.alloc_dir(alloc["ID"]) / "main" / "secrets"
    assert alloc["ClientStatus"] == "pending" and not (secrets / "registry.env").exists()
    driver.grant("bio-fast", ["nomad/jobs/registry-auth"])
    assert fake.wait_until(lambda: allocs(fake, child)[0]["ClientStatus"] == "complete", 30)


def test_wrong_registry_credentials_fail_the_allocation_with_a_driver_failure(
        fake: FakeNomad, image: str, registry: RegistryHandle, data: Path) -> None:
    credentials(fake, "bio-fast", registry, password="not-the-password")
    by_tag = image.split("@")[0] + ":1"  # an engine serves a digest it pulled once without asking the registry again
    put(fake, "/v1/jobs", {"Job": batch_parent(by_tag, registry)})
    child = put(fake, "/v1/job/bio-fast/dispatch", {"Meta": {"study": str(data), "output": str(data),
                                                              "execution_id": "x"}})["DispatchedJobID"]
    assert fake.wait_until(lambda: allocs(fake, child) and allocs(fake, child)[0]["ClientStatus"] == "failed", 30)
    last = events(allocs(fake, child)[0])[-1]
    assert last.startswith(f"Driver Failure: Failed to pull `{by_tag}`: unauthorized")
    assert "not-the-password" not in last


def test_a_bind_mount_outside_the_clients_allowed_roots_is_refused(
        fake: FakeNomad, image: str, registry: RegistryHandle, tmp_path: Path) -> None:
    credentials(fake, "bio-fast", registry)
    put(fake, "/v1/jobs", {"Job": batch_parent(image, registry)})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    child = put(fake, "/v1/job/bio-fast/dispatch", {"Meta": {"study": str(elsewhere), "output": str(elsewhere),
                                                              "execution_id": "x"}})["DispatchedJobID"]
    assert fake.wait_until(lambda: allocs(fake, child) and allocs(fake, child)[0]["ClientStatus"] == "failed", 30)
    assert f'cannot mount host path "{elsewhere}"' in events(allocs(fake, child)[0])[-1]


def test_a_container_killed_from_outside_is_restarted_per_the_restart_policy(
        fake: FakeNomad, driver: DockerDriver, image: str, registry: RegistryHandle,
        docker_client: DockerClient) -> None:
    credentials(fake, "bio-svc", registry)
    job = service_job(image, registry)
    job["TaskGroups"][0].update(Update={"MaxParallel": 0}, RestartPolicy={"Attempts": 2, "Delay": 100 * MS,
                                                                          "Interval": 60_000 * MS, "Mode": "fail"})
    put(fake, "/v1/jobs", {"Job": job})
    assert fake.wait_until(lambda: allocs(fake, "bio-svc") and allocs(fake, "bio-svc")[0]["ClientStatus"] == "running",
                           30)
    alloc_id = allocs(fake, "bio-svc")[0]["ID"]
    first = driver.container_id(alloc_id)
    host = docker_client.sdk.api.inspect_container(first)["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["NetworkMode"]) == (100_000_000, 64 * 2**20, "host")
    docker_client.sdk.containers.get(first).kill()
    assert fake.wait_until(lambda: fake.state.allocs[alloc_id]["TaskStates"]["main"]["Restarts"] == 1
                           and fake.state.allocs[alloc_id]["ClientStatus"] == "running", 30)
    assert driver.container_id(alloc_id) not in (None, first)
    restarted = get(fake, f"/v1/allocation/{alloc_id}")["TaskStates"]["main"]
    assert "Terminated: Exit Code: 137" in events({"TaskStates": {"main": restarted}})
    assert restarted["LastRestart"].endswith("Z") and restarted["State"] == "running"


def test_a_gpu_job_waits_for_a_gpu_node_and_then_asks_the_engine_for_the_device(
        docker_client: DockerClient, image: str, registry: RegistryHandle, tmp_path: Path) -> None:
    driver = DockerDriver(docker_client, work_root=tmp_path / "clients")
    with FakeNomad(driver=driver, nodes=[Node("n1", "cpu-1", "cpu", 0)]) as fake:
        credentials(fake, "bio-fast", registry)
        job = plain_batch(image, registry, "true")
        job["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"] = [{"Name": "nvidia/gpu", "Count": 1}]
        job["Constraints"] = None
        registered = put(fake, "/v1/jobs", {"Job": job})
        ev = fake.state.evals[registered["EvalID"]]
        assert ev["FailedTGAllocs"]["fast"]["DimensionExhausted"] == {"devices: nvidia/gpu": 1}
        assert ev["BlockedEval"] and not allocs(fake, "bio-fast")
        mine = {"label": f"fake-nomad.session={driver.session}"}
        assert docker_client.sdk.containers.list(all=True, filters=mine) == []
        gpu_node = fake.add_node("gpu", 1)
        assert fake.wait_until(lambda: bool(allocs(fake, "bio-fast")) and allocs(fake, "bio-fast")[0]["ClientStatus"]
                               in ("complete", "failed"), 30)
        alloc = allocs(fake, "bio-fast")[0]
        assert alloc["NodeID"] == gpu_node
        # This engine has no NVIDIA runtime: the device request is refused with the engine's text (or, on a GPU
        # engine, the task runs).
        assert alloc["ClientStatus"] == "complete" or "could not select device driver" in events(alloc)[-1]


def test_a_failing_batch_run_is_rescheduled_once_per_its_policy_with_the_exit_code_in_its_events(
        fake: FakeNomad, image: str, registry: RegistryHandle) -> None:
    credentials(fake, "bio-fast", registry)
    job = plain_batch(image, registry, "exit 3")
    job["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 1, "Interval": 60_000 * MS, "Delay": 100 * MS,
                                                "Unlimited": False}
    put(fake, "/v1/jobs", {"Job": job})
    assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, "bio-fast")] == ["failed", "failed"], 30)
    first, second = sorted(allocs(fake, "bio-fast"), key=lambda a: a["CreateIndex"])
    assert events(first)[-2:] == ["Terminated: Exit Code: 3", "Not Restarting: Policy allows no restarts"]
    assert (second["PreviousAllocation"], first["NextAllocation"]) == (first["ID"], second["ID"])
    assert first["DesiredDescription"] == "alloc was rescheduled because it failed"
    tracker = get(fake, f"/v1/allocation/{second['ID']}")["RescheduleTracker"]
    assert [e["PrevAllocID"] for e in tracker["Events"]] == [first["ID"]]
    assert not fake.wait_until(lambda: len(allocs(fake, "bio-fast")) > 2, 1.0)


def test_stopping_the_fake_removes_every_container_it_started(
        docker_client: DockerClient, image: str, registry: RegistryHandle, tmp_path: Path) -> None:
    driver = DockerDriver(docker_client, work_root=tmp_path / "clients")
    mine = {"label": f"fake-nomad.session={driver.session}"}
    with FakeNomad(driver=driver) as fake:
        credentials(fake, "bio-svc", registry)
        job = service_job(image, registry)
        job["TaskGroups"][0].update(Update={"MaxParallel": 0}, Count=2)
        put(fake, "/v1/jobs", {"Job": job})
        assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, "bio-svc")] == ["running"] * 2, 30)
        assert len(docker_client.sdk.containers.list(filters=mine)) == 2
    assert docker_client.sdk.containers.list(all=True, filters=mine) == []


def test_the_projects_own_batch_job_runs_a_dispatch_on_its_own_study(
        fake: FakeNomad, docker_client: DockerClient, busybox: Path, registry: RegistryHandle,
        registry_auth: RegistryAuth, data: Path, tmp_path: Path) -> None:
    built = build_biomarker(docker_client, busybox, tmp_path, registry, registry_auth, "alpha", "1.0.0", factor=3)
    job = build_job(manifest("alpha"), "fast", Release("alpha", built.version, built.digest, built.image))
    credentials(fake, job["ID"], registry)
    put(fake, "/v1/jobs", {"Job": job})
    meta = {"study": str(study(data / "s1", 4, 10)), "output": str(data / "o1"), "execution_id": "e1"}
    (data / "o1").mkdir(mode=0o777)  # as the Nomad backend leaves it: writable for the contract's user
    (data / "o1").chmod(0o777)
    child = put(fake, f"/v1/job/{job['ID']}/dispatch", {"Meta": meta})["DispatchedJobID"]
    assert fake.wait_until(lambda: bool(allocs(fake, child))
                           and allocs(fake, child)[0]["ClientStatus"] in ("complete", "failed"), 60)
    assert allocs(fake, child)[0]["ClientStatus"] == "complete", events(allocs(fake, child)[0])
    assert (data / "o1" / "volume.txt").read_text() == "42\n"
    assert (data / "o1" / "volume.txt").stat().st_uid == 65534  # the contract's unprivileged user, not root


def test_a_failed_run_of_the_projects_batch_job_is_neither_restarted_nor_rescheduled(
        fake: FakeNomad, docker_client: DockerClient, busybox: Path, registry: RegistryHandle,
        registry_auth: RegistryAuth, data: Path, tmp_path: Path) -> None:
    """A re-run would write into an output folder whose execution the ledger already recorded as failed."""
    built = build_biomarker(docker_client, busybox, tmp_path, registry, registry_auth, "alpha", "1.0.0", factor=3)
    job = build_job(manifest("alpha"), "fast", Release("alpha", built.version, built.digest, built.image))
    credentials(fake, job["ID"], registry)
    put(fake, "/v1/jobs", {"Job": job})
    (data / "o1").write_text("a file where the output folder should be\n")  # the run cannot write its report
    meta = {"study": str(study(data / "s1", 4)), "output": str(data / "o1"), "execution_id": "e1"}
    child = put(fake, f"/v1/job/{job['ID']}/dispatch", {"Meta": meta})["DispatchedJobID"]
    assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, child)] == ["failed"], 60)
    assert not fake.wait_until(lambda: len(allocs(fake, child)) > 1, 7.0)  # Nomad's default batch delay is 5 s


def test_stopping_an_allocation_stops_its_container_and_the_service_moves_to_the_replacement(
        fake: FakeNomad, driver: DockerDriver, image: str, registry: RegistryHandle,
        docker_client: DockerClient) -> None:
    credentials(fake, "bio-svc", registry)
    job = service_job(image, registry)
    job["TaskGroups"][0]["Update"] = {"MaxParallel": 0}
    job["TaskGroups"][0]["Tasks"][0]["KillTimeout"] = 1000 * MS  # httpd as PID 1 ignores SIGTERM
    put(fake, "/v1/jobs", {"Job": job})
    assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, "bio-svc")] == ["running"], 30)
    old = allocs(fake, "bio-svc")[0]
    container = driver.container_id(old["ID"])
    [registration] = get(fake, f"/v1/allocation/{old['ID']}/services")
    assert (registration["ServiceName"], registration["Address"]) == ("bio-svc", "127.0.0.1")
    answer = requests.post(f"{fake.address}/v1/allocation/{old['ID']}/stop", timeout=10)
    assert answer.status_code == 200 and answer.json()["EvalID"]
    assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, "bio-svc")] == ["complete", "running"], 30)
    assert fake.wait_until(lambda: not docker_client.sdk.containers.list(all=True, filters={"id": container}), 15)
    new = allocs(fake, "bio-svc")[1]
    assert new["PreviousAllocation"] == old["ID"]
    assert get(fake, f"/v1/allocation/{old['ID']}/services") == []
    [moved] = get(fake, f"/v1/allocation/{new['ID']}/services")
    assert requests.get(f"http://127.0.0.1:{moved['Port']}/health", timeout=5).text == "ok\n"


def test_only_the_projects_template_form_renders_and_anything_else_fails_the_task(
        fake: FakeNomad, image: str, registry: RegistryHandle) -> None:
    items = {"nomad/jobs/j": {"username": "u", "password": "p"}}
    text, missing = render_template('a{{ with nomadVar "nomad/jobs/j" }}U={{ .username }} X={{ .nope }}{{ end }}b',
                                    items.get)
    assert (text, missing) == ("aU=u X=<no value>b", [])
    assert render_template('{{ with nomadVar "nomad/jobs/k" }}{{ .username }}{{ end }}', items.get) == \
        ("", ["nomad/jobs/k"])
    for bad in ('{{ env "HOME" }}', '{{ with nomadVar "nomad/jobs/j" }}', "{{ .username }}", "{{- end -}}",
                '{{ range nomadVarList "nomad" }}{{ end }}'):
        with pytest.raises(ValueError, match=r"unsupported|unexpected EOF"):
            render_template(bad, items.get)
    job = plain_batch(image, registry, "true")
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = '{{ env "HOME" }}'
    put(fake, "/v1/jobs", {"Job": job})
    assert fake.wait_until(lambda: [a["ClientStatus"] for a in allocs(fake, "bio-fast")] == ["failed"], 30)
    assert events(allocs(fake, "bio-fast")[0])[-1] == \
        'Task hook failed: Template failed: unsupported template action {{ env "HOME" }}'


def test_workload_identity_reads_its_own_paths_a_dispatched_child_its_parents_and_granted_globs() -> None:
    child = ("default", "bio-fast", "fast", "main")  # a dispatched child's identity names its parent
    assert all(may_read(p, "default", child, []) for p in
               ("nomad/jobs", "nomad/jobs/bio-fast", "nomad/jobs/bio-fast/fast", "nomad/jobs/bio-fast/fast/main"))
    assert not may_read("nomad/jobs/registry-auth", "default", child, [])
    assert not may_read("nomad/jobs/bio-fast", "imaging", child, [])  # another namespace
    assert not may_read("nomad/jobs/bio-fast/other-group", "default", child, [])
    grant = JobPolicy("bio-fast", ("shared/registry/*",), group="fast")
    assert may_read("shared/registry/pull", "default", child, [grant])
    assert not may_read("shared/registry/pull", "default", ("default", "bio-slow", "fast", "main"), [grant])


def test_interpolation_reads_meta_ports_and_the_nodes_attributes_and_keeps_unknown_names() -> None:
    env = {"NOMAD_META_study": "/share/s1", "NOMAD_PORT_http": "31000", "node.class": "gpu",
           "attr.kernel.name": "linux", "meta.rack": "r1"}
    config = {"args": ["${NOMAD_META_study}", "${NOMAD_PORT_http}", "${attr.kernel.name}/${meta.rack}"],
              "mount": [{"source": "${NOMAD_META_output}"}], "labels": {"class": "${node.class}"}}
    assert interpolate(config, env) == {"args": ["/share/s1", "31000", "linux/r1"],
                                        "mount": [{"source": "${NOMAD_META_output}"}], "labels": {"class": "gpu"}}
