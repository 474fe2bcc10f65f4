"""Nomad job JSON from manifests: digest-pinned image, no literal credentials, per-dispatch binds, service ports and
checks, GPUs, node class, Meta."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery.errors import DeliveryError
from delivery.manifest import load_manifest
from rollout.jobspec import SPEC_HASH, ClusterSettings, Release, build_job, job_id, spec_hash
from tests.support.nomad_world import BATCH, SERVICE, manifest, release

PASSWORD = "s3cr3t-Pa55w0rd!"  # what a leak would look like if it ever reached the spec


def task(job: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = job["TaskGroups"][0]["Tasks"][0]
    return result


def skeleton(value: Any) -> Any:
    """The spec's shape: keys and nesting, with every leaf replaced by its type."""
    if isinstance(value, dict):
        return {k: skeleton(v) for k, v in value.items()}
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return type(value).__name__


def test_image_is_pinned_by_digest_and_credentials_come_from_a_nomad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", PASSWORD)
    monkeypatch.setenv("NOMAD_TOKEN", PASSWORD)
    rel = release("quicklook", "1.1.0")
    job = build_job(manifest(SERVICE), "web", rel)
    config = task(job)["Config"]
    assert config["image"] == f"{rel.image}@{rel.digest}" and ":1.1.0" not in config["image"]
    assert config["auth"][0]["password"] == "${REGISTRY_PASSWORD}"
    text = json.dumps(job)
    assert PASSWORD not in text and "password\": \"" + PASSWORD not in text
    template = task(job)["Templates"][0]
    assert 'nomadVar "nomad/jobs/quicklook-web"' in template["EmbeddedTmpl"] and template["Envvars"] is True


def test_each_job_reads_the_credentials_its_workload_identity_may_read() -> None:
    """Nomad's implicit policy lets a job read `nomad/jobs/<its id>`; a shared path is unreadable under ACLs."""
    for track, ident in (("stable", "alpha-fast"), ("canary", "alpha-fast-canary")):
        job = build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"), track=track)  # type: ignore[arg-type]
        template = task(job)["Templates"][0]["EmbeddedTmpl"]
        assert re.findall(r'nomadVar "([^"]+)"', template) == [f"nomad/jobs/{ident}"] == [f"nomad/jobs/{job['ID']}"]


def test_gpu_devices_and_node_class_come_from_the_manifest() -> None:
    gpu_job = build_job(manifest(SERVICE, gpu=2), "web", release("quicklook", "1.0.0"))
    assert task(gpu_job)["Resources"] == {"CPU": 500, "MemoryMB": 128, "Devices": [{"Name": "nvidia/gpu", "Count": 2}]}
    assert gpu_job["Constraints"] == [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "gpu"}]
    cpu_job = build_job(manifest(SERVICE, gpu=0), "web", release("quicklook", "1.0.0"),
                        cluster=ClusterSettings(cpu_node_class="cpu-large"))
    assert "Devices" not in task(cpu_job)["Resources"] and cpu_job["Constraints"][0]["RTarget"] == "cpu-large"


def test_meta_records_biomarker_version_digest_and_attestation() -> None:
    rel = Release("alpha", "1.2.0", "sha256:" + "b" * 64, "registry.test/biomarkers/alpha", "sha256:" + "c" * 64)
    job = build_job(manifest(BATCH), "fast", rel, track="canary")
    meta = job["Meta"]
    assert {k: meta[k] for k in ("biomarker", "variant", "version", "digest", "attestation_digest", "track")} == {
        "biomarker": "alpha", "variant": "fast", "version": "1.2.0", "digest": rel.digest,
        "attestation_digest": rel.attestation_digest, "track": "canary"}
    assert meta[SPEC_HASH] == spec_hash(job) and job["ID"] == job_id("alpha", "fast", "canary") == "alpha-fast-canary"


def test_batch_is_a_parameterized_parent_without_update_and_service_has_an_update_block() -> None:
    batch = build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))
    group = batch["TaskGroups"][0]
    assert batch["Type"] == "batch" and "Update" not in batch and "Update" not in group
    assert batch["ParameterizedJob"]["MetaRequired"] == ["study", "output", "execution_id"]
    assert group["RestartPolicy"]["Mode"] == "fail"
    service = build_job(manifest(SERVICE), "web", release("quicklook", "1.0.0"))
    update = service["TaskGroups"][0]["Update"]
    assert "ParameterizedJob" not in service and service["TaskGroups"][0]["Count"] == 2
    assert (update["Canary"], update["AutoRevert"], update["AutoPromote"]) == (1, True, False)
    assert update["HealthCheck"] == "checks"  # Nomad's own checks decide a canary's health, not "it started"


def interpolate(value: Any, meta: dict[str, str]) -> Any:
    """What Nomad does to a dispatched child's task: `${NOMAD_META_<key>}` becomes the dispatch's meta value."""
    if isinstance(value, dict):
        return {k: interpolate(v, meta) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, meta) for v in value]
    if isinstance(value, str):
        return re.sub(r"\$\{NOMAD_META_(\w+)\}", lambda m: meta[m.group(1)], value)
    return value


def test_each_dispatch_binds_only_its_own_study_read_only_and_its_own_output(tmp_path: Path) -> None:
    parent = task(build_job(manifest(BATCH), "fast", release("alpha", "1.0.0")))
    seen = []
    for n in (1, 2):
        meta = {"study": f"/shared/studies/{n}", "output": f"/shared/out/{n}", "execution_id": f"ex-{n}"}
        child = interpolate(parent, meta)
        binds = {m["target"]: (m["type"], m["source"], m["readonly"]) for m in child["Config"]["mount"]}
        assert binds == {"/data/input": ("bind", f"/shared/studies/{n}", True),
                         "/data/output": ("bind", f"/shared/out/{n}", False)}
        assert child["Env"]["BIOMARKER_EXECUTION_ID"] == f"ex-{n}"
        assert (child["Env"]["BIOMARKER_INPUT"], child["Env"]["BIOMARKER_OUTPUT"]) == ("/data/input", "/data/output")
        seen.append(binds)
    assert seen[0] != seen[1]


def test_no_execution_is_given_the_whole_data_volume() -> None:
    job = build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))
    assert "Volumes" not in job["TaskGroups"][0] and "VolumeMounts" not in task(job)
    sources = {m["source"] for m in task(job)["Config"]["mount"]}
    assert sources == {"${NOMAD_META_study}", "${NOMAD_META_output}"}


def test_a_service_has_a_port_for_its_docker_label_and_a_check_on_it() -> None:
    m = manifest(SERVICE.replace("service: {port: 8080}", "service: {port: 8080, health_path: /ready}"))
    job = build_job(m, "web", release("quicklook", "1.0.0"))
    group = job["TaskGroups"][0]
    ports = {p["Label"]: p for net in group["Networks"] for p in net["DynamicPorts"] + (net.get("ReservedPorts") or [])}
    assert task(job)["Config"]["ports"] and set(task(job)["Config"]["ports"]) <= set(ports)
    assert ports["http"]["To"] == 8080  # the port the manifest says the service listens on
    [service] = group["Services"]
    [check] = service["Checks"]
    assert service["PortLabel"] in ports and check["PortLabel"] in ports
    assert (check["Type"], check["Path"], service["Name"]) == ("http", "/ready", job["ID"])
    assert task(job)["Env"]["BIOMARKER_PORT"] == "${NOMAD_PORT_http}"
    assert "mount" not in task(job)["Config"] and "BIOMARKER_INPUT" not in task(job)["Env"]


def all_jobs() -> list[dict[str, Any]]:
    """Every job the project would register: each variant of every manifest under biomarkers/ and of the test
    builders, on both tracks, with and without a GPU."""
    manifests = [load_manifest(path) for path in (Path(__file__).parents[2] / "biomarkers").glob("*/biomarker.yaml")]
    manifests += [manifest(BATCH), manifest(SERVICE), manifest(SERVICE, gpu=1)]
    return [build_job(m, variant, release(m.name, "1.0.0"), track=track)  # type: ignore[arg-type]
            for m in manifests for variant in m.variants for track in ("stable", "canary")]


def test_every_manifest_builds_a_job_that_holds_together() -> None:
    jobs = all_jobs()
    assert len(jobs) >= 10 and {j["Meta"]["biomarker"] for j in jobs} >= {"emphysema", "alpha", "quicklook"}
    for job in jobs:
        group = job["TaskGroups"][0]
        labels = {p["Label"] for net in group.get("Networks") or [] for p in net["DynamicPorts"]}
        assert set(task(job)["Config"].get("ports") or []) <= labels, job["ID"]
        checks = [c for s in group.get("Services") or [] for c in s["Checks"]]
        assert all(c["PortLabel"] in labels for c in checks), job["ID"]
        assert (job["Type"] == "batch") == ("Update" not in group) == ("ParameterizedJob" in job), job["ID"]
        assert f'nomadVar "nomad/jobs/{job["ID"]}"' in task(job)["Templates"][0]["EmbeddedTmpl"]


def test_the_spec_hash_changes_with_the_digest_only_when_the_spec_does() -> None:
    one = build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))
    assert one["Meta"][SPEC_HASH] == build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))["Meta"][SPEC_HASH]
    assert one["Meta"][SPEC_HASH] != build_job(manifest(BATCH), "fast", release("alpha", "2.0.0"))["Meta"][SPEC_HASH]


def test_unknown_variant_and_unpinned_digest_are_refused() -> None:
    with pytest.raises(DeliveryError, match="no variant"):
        build_job(manifest(BATCH), "slow", release("alpha", "1.0.0"))
    with pytest.raises(DeliveryError, match="sha256:<64 hex>"):
        Release("alpha", "1.0.0", "latest", "registry.test/biomarkers/alpha")


hostile = st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.lists(hostile, min_size=3, max_size=3), version=hostile)
def test_hostile_manifest_strings_cannot_change_the_specs_structure(command: list[str], version: str) -> None:
    def job_with(args: list[str], ver: str) -> dict[str, Any]:
        m = manifest(BATCH)
        variant = m.variants["fast"].model_copy(update={"command": args})
        rel = Release("alpha", ver, "sha256:" + "d" * 64, "registry.test/biomarkers/alpha")
        return build_job(m.model_copy(update={"variants": {"fast": variant}}), "fast", rel)

    baseline, job = job_with(["quantify", "-v", "/data/input"], "1.0.0"), job_with(command, version)
    assert skeleton(json.loads(json.dumps(job))) == skeleton(baseline)  # survives serialisation unchanged
    assert task(job)["Config"]["command"] == command[0] and task(job)["Config"]["args"] == command[1:]
    assert job["Meta"]["version"] == version and task(job)["Env"]["BIOMARKER_VERSION"] == version
    assert task(job)["Templates"][0]["EmbeddedTmpl"] == task(baseline)["Templates"][0]["EmbeddedTmpl"]
