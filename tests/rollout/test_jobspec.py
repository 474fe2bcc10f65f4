"""Nomad job JSON from manifests: digest-pinned image, no literal credentials, GPUs, node class, Meta."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery.errors import DeliveryError
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
    assert 'nomadVar "nomad/jobs/registry-auth"' in template["EmbeddedTmpl"] and template["Envvars"] is True


def test_gpu_devices_and_node_class_come_from_the_manifest() -> None:
    gpu_job = build_job(manifest(SERVICE, gpu=2), "web", release("quicklook", "1.0.0"))
    assert task(gpu_job)["Resources"] == {"CPU": 500, "MemoryMB": 128, "Devices": [{"Name": "nvidia/gpu", "Count": 2}]}
    assert gpu_job["Constraints"] == [{"LTarget": "${node.class}", "Operand": "=", "RTarget": "gpu"}]
    cpu_job = build_job(manifest(SERVICE, gpu=0), "web", release("quicklook", "1.0.0"),
                        cluster=ClusterSettings(cpu_node_class="cpu-large"))
    assert task(cpu_job)["Resources"]["Devices"] is None and cpu_job["Constraints"][0]["RTarget"] == "cpu-large"


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
    assert batch["ParameterizedJob"]["MetaRequired"] == ["study"] and group["RestartPolicy"]["Mode"] == "fail"
    service = build_job(manifest(SERVICE), "web", release("quicklook", "1.0.0"))
    update = service["TaskGroups"][0]["Update"]
    assert "ParameterizedJob" not in service and service["TaskGroups"][0]["Count"] == 2
    assert (update["Canary"], update["AutoRevert"], update["AutoPromote"]) == (1, True, False)


def test_the_spec_hash_changes_with_the_digest_only_when_the_spec_does() -> None:
    one = build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))
    assert one["Meta"][SPEC_HASH] == build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"))["Meta"][SPEC_HASH]
    assert one["Meta"][SPEC_HASH] != build_job(manifest(BATCH), "fast", release("alpha", "2.0.0"))["Meta"][SPEC_HASH]


def test_unknown_variant_and_unpinned_digest_are_refused() -> None:
    with pytest.raises(DeliveryError, match="no variant"):
        build_job(manifest(BATCH), "slow", release("alpha", "1.0.0"))
    with pytest.raises(DeliveryError, match="sha256:<64 hex>"):
        Release("alpha", "1.0.0", "latest", "registry.test/biomarkers/alpha")
    with pytest.raises(DeliveryError, match="characters"):
        build_job(manifest(BATCH), "fast", release("alpha", "1.0.0"),
                  cluster=ClusterSettings(registry_auth_variable='x" }}{{ env "HOME'))


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
