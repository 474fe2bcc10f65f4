"""The scan gate with the real trivy, and the GPU test stage's request and its failure without a GPU runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.ci import context as ci_context
from delivery.ci.record import RunRecord
from delivery.ci.stages import StageEnv, confined_container
from delivery.cli import main
from delivery.config import registry_settings
from delivery.docker import DockerClient, create_kwargs
from delivery.localenv import RegistryHandle
from delivery.manifest import load_manifest
from delivery.paths import default_database_url
from delivery.provenance import verify_image
from tests.support.ci_repo import make_repo

FAKE_AWS_KEY = "AKIA" + "Z7Q3" * 4  # assembled here so this file itself is not a finding


def _record(repo: Path) -> dict:
    return json.loads((repo / ".delivery" / "run.json").read_text())


def test_a_secret_planted_in_the_image_closes_the_scan_gate(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name,
                     files={"deploy.sh": f"#!/bin/sh\nexport AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"},
                     extra_dockerfile="COPY deploy.sh /app/deploy.sh\nUSER 1000\nHEALTHCHECK NONE\n")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    assert main(["ci", "scan", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "scan gate closed" in err and "aws-access-key-id" in err, err
    assert "vulnerabilities NOT scanned" in err  # no DB offline: said, never passed silently
    scan = _record(repo)["stages"]["scan"]
    assert scan["status"] == "failed" and "aws-access-key-id" in scan["details"]["blocking_ids"]
    assert json.loads((repo / ".delivery" / "sbom.cdx.json").read_text())["bomFormat"] == "CycloneDX"


def test_an_unexpired_ignore_with_a_reason_opens_the_gate_and_an_expired_one_does_not(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name,
                     files={"deploy.sh": f"export AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"},
                     extra_dockerfile="COPY deploy.sh /app/deploy.sh\nUSER 1000\nHEALTHCHECK NONE\n")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    ignore = repo / "scan-ignore.yaml"
    ignore.write_text("ignores:\n  - id: aws-access-key-id\n    reason: fake key used by the tests only\n"
                      "    expires: 2999-01-01\n")
    assert main(["ci", "scan", str(repo), "--no-require-vuln-db"]) == 0  # offline: no vulnerability DB
    assert "ignored  aws-access-key-id until 2999-01-01" in capsys.readouterr().out
    ignore.write_text(ignore.read_text().replace("2999-01-01", "2001-01-01"))
    assert main(["ci", "scan", str(repo)]) == 1
    assert "EXPIRED ignore aws-access-key-id" in capsys.readouterr().err


def test_gpu_test_requests_an_nvidia_device(ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path,
                                            tmp_path: Path, image_name: str) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, gpu_command='["sh", "-c", "echo gpu"]')
    env = StageEnv(repo, RunRecord.open(tmp_path / "w"), docker_client, load_manifest(repo / "biomarker.yaml"),
                   ci_context.detect(repo), registry_settings)
    gpu = create_kwargs(confined_container(env, "img", ("true",), tmp_path, gpu=True))
    (request,) = gpu["device_requests"]
    assert request["Capabilities"] == [["gpu"]] and request["Count"] >= 1
    cpu = create_kwargs(confined_container(env, "img", ("true",), tmp_path, gpu=False))
    assert cpu["device_requests"] is None
    assert cpu["network_mode"] == "none" and cpu["read_only"] is True and cpu["mem_limit"] == 128 * 2**20


def _engine_has_gpu_runtime(client: DockerClient) -> bool:
    return "nvidia" in (client.sdk.info().get("Runtimes") or {})


@pytest.mark.gpu
def test_gpu_test_fails_naming_the_missing_runtime_unless_allowed(
    ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, gpu_command='["sh", "-c", "echo on-gpu"]')
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    code = main(["ci", "test", str(repo), "--gpu"])
    if code == 0:  # an agent with NVIDIA's runtime: the GPU command really ran
        assert _record(repo)["stages"]["gpu-test"]["status"] == "passed"
        return
    assert code == 1
    assert "no GPU runtime" in capsys.readouterr().err
    assert main(["ci", "test", str(repo), "--gpu", "--allow-no-gpu"]) == 0
    assert _record(repo)["stages"]["gpu-test"]["status"] == "skipped"


GPU_COMMAND = '["sh", "-c", "echo on-gpu"]'


def test_a_release_builds_gpu_test_that_cannot_run_fails_closed_unless_a_reason_overrides_it(
    ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, gpu_command=GPU_COMMAND, tag="v1.0.0")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    if _engine_has_gpu_runtime(docker_client):  # a GPU agent: the GPU test really runs, nothing to override
        assert main(["ci", "test", str(repo), "--gpu"]) == 0
        return
    capsys.readouterr()
    assert main(["ci", "test", str(repo), "--gpu", "--allow-no-gpu"]) == 1  # a release build needs a reason
    assert "release build: the GPU test did not run" in capsys.readouterr().err
    monkeypatch.setenv("DELIVERY_ACTOR", "release-manager")
    assert main(["ci", "test", str(repo), "--gpu", "--allow-no-gpu", "--reason", "INC-9: GPU agents down"]) == 0
    stage = _record(repo)["stages"]["gpu-test"]
    assert stage["status"] == "skipped" and "ALLOWED by release-manager: INC-9: GPU agents down" in stage["summary"]
    assert stage["details"]["override"] == {"reason": "INC-9: GPU agents down", "actor": "release-manager"}
    (event,) = AuditLog(default_database_url()).events(action="allow-no-gpu")
    assert (event.subject, event.reason, event.actor) == (
        f"{load_manifest(repo / 'biomarker.yaml').name}@1.0.0", "INC-9: GPU agents down", "release-manager")


def test_ci_run_on_a_release_tag_fails_at_a_skipped_gpu_test_and_attests_the_override(
    ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path, image_name: str,
    keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, gpu_command=GPU_COMMAND, tag="v1.0.0")
    run = ["ci", "run", str(repo), "--network", "none", "--key", str(keys[0]), "--gpu", "skip", "--json",
           "--severity", "CRITICAL"]  # busybox runs as root (a HIGH misconfiguration); not what this test is about
    assert main(run) == 1
    assert "release build: the GPU test did not run (--gpu skip)" in capsys.readouterr().err
    assert main([*run, "--allow-unscanned", "--reason", "offline test agent: no DB, no GPU"]) == 0
    digest = json.loads(capsys.readouterr().out)["push"]["digest"]
    verified = verify_image(registry_settings().client(), image_name, digest, keys[1])
    (gpu,) = [b for b in verified.statement["predicate"]["runDetails"]["byproducts"] if b["name"] == "gpu-test"]
    assert verified.gpu_test == "skipped"
    assert gpu["annotations"]["override"]["reason"] == "offline test agent: no DB, no GPU"


def test_a_branch_build_without_a_gpu_runtime_skips_its_gpu_test_and_says_so(
    ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path, image_name: str,
    keys: tuple[Path, Path]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, gpu_command=GPU_COMMAND)
    assert main(["ci", "run", str(repo), "--network", "none", "--key", str(keys[0]), "--no-require-vuln-db",
                 "--severity", "CRITICAL"]) == 0
    stage = _record(repo)["stages"]["gpu-test"]
    if _engine_has_gpu_runtime(docker_client):
        assert stage["status"] == "passed"
    else:
        assert stage["status"] == "skipped" and stage["summary"].startswith("GPU test NOT run (no GPU runtime")


def test_a_scan_without_an_override_needs_no_audit_database_on_a_cluster_configured_agent(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trail is opened only to write an override; a cluster-configured agent without the ledger URL still scans."""
    repo = make_repo(tmp_path / "repo", busybox, image=image_name)
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:9")  # cluster mode, and no DELIVERY_DATABASE_URL
    monkeypatch.delenv("DELIVERY_DATABASE_URL", raising=False)
    assert main(["ci", "scan", str(repo), "--no-require-vuln-db", "--severity", "CRITICAL"]) == 0
    assert _record(repo)["stages"]["scan"]["status"] == "passed"
