"""The scan gate with the real trivy, and the GPU test stage's request and its failure without a GPU runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.ci import context as ci_context
from delivery.ci.record import RunRecord
from delivery.ci.stages import StageEnv, confined_container
from delivery.cli import main
from delivery.config import registry_settings
from delivery.docker import DockerClient, create_kwargs
from delivery.errors import ConfigError
from delivery.localenv import RegistryHandle
from delivery.manifest import load_manifest
from delivery.trivy import find_binary
from tests.support.ci_repo import make_repo
from tests.support.real import missing

FAKE_AWS_KEY = "AKIA" + "Z7Q3" * 4  # assembled here so this file itself is not a finding


@pytest.fixture
def trivy() -> Path:
    try:
        return find_binary()
    except ConfigError as e:
        missing("trivy", e.render())


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
