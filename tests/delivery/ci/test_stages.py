"""The stages on the real engine and registry: build, test, push policy, credentials, mid-stream failure, attest."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.config import registry_settings
from delivery.docker import DockerClient
from delivery.localenv import RegistryHandle, start_registry
from delivery.provenance import ProvenanceError, attestation_tag, store_attestation, verify_image
from tests.support.ci_repo import commit, make_repo


def _record(repo: Path) -> dict:
    return json.loads((repo / ".delivery" / "run.json").read_text())


def _stage(repo: Path, *argv: str) -> int:
    return main(["ci", argv[0], str(repo), *argv[1:]])


def test_tiny_image_builds_with_oci_labels_and_its_tests_pass(
    ci_env: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path, image_name: str
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v1.2.3")
    assert _stage(repo, "build", "--network", "none") == 0
    image = _record(repo)["image"]
    labels = docker_client.image_labels(image["id"])
    assert labels["org.opencontainers.image.version"] == "1.2.3"
    assert labels["org.opencontainers.image.revision"] == _record(repo)["context"]["commit"]
    assert labels["org.opencontainers.image.title"] == "alpha"
    assert {"org.opencontainers.image.source", "org.opencontainers.image.created"} <= labels.keys()
    assert not any("delivery-build-ca" in layer for layer in docker_client.sdk.images.get(image["id"]).history()
                   if isinstance(layer, str))
    assert _stage(repo, "test") == 0
    suite = ET.parse(repo / ".delivery" / "junit-test.xml").getroot()
    assert suite.get("failures") == "0"
    assert _record(repo)["stages"]["test"]["status"] == "passed"


def test_failing_test_fails_the_stage_with_junit_failure(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name,
                     test_command='["sh", "-c", "echo checking; echo broken-metric >&2; exit 4"]')
    assert _stage(repo, "build", "--network", "none") == 0
    assert _stage(repo, "test") == 1
    assert "exited with 4" in capsys.readouterr().err
    failure = ET.parse(repo / ".delivery" / "junit-test.xml").getroot().find("testcase/failure")
    assert failure is not None and "broken-metric" in (failure.text or "")
    assert _record(repo)["stages"]["test"]["status"] == "failed"


def test_tests_run_without_network_on_a_read_only_root(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name,
                     test_command='["sh", "-c", "touch /etc/x 2>/dev/null && exit 7; '
                                  'ip link 2>/dev/null | grep -q eth && exit 8; touch /tmp/ok"]')
    assert _stage(repo, "build", "--network", "none") == 0
    assert _stage(repo, "test") == 0


def test_release_tag_push_is_verified_and_another_image_on_it_is_refused(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v0.3.0")
    assert _stage(repo, "build", "--network", "none") == 0
    assert _stage(repo, "push") == 0
    pushed = _record(repo)["push"]
    client = registry_settings().client()
    assert pushed["tag"] == "0.3.0"
    assert client.head_manifest(image_name, "0.3.0") == pushed["digest"]
    assert client.list_tags(image_name) == ["0.3.0"]  # never `latest`
    assert _stage(repo, "push") == 0  # the same image again: a no-op
    assert "no-op" in capsys.readouterr().out
    (repo / "changed.txt").write_text("another image\n")
    (repo / "Dockerfile").write_text((repo / "Dockerfile").read_text().replace("CMD", "COPY changed.txt /\nCMD"))
    commit(repo, "change")
    from tests.support.ci_repo import git

    git(repo, "tag", "-f", "v0.3.0")
    assert _stage(repo, "build", "--network", "none") == 0
    assert _stage(repo, "push") == 1
    assert "refusing to push" in capsys.readouterr().err
    assert client.head_manifest(image_name, "0.3.0") == pushed["digest"]


def test_default_branch_pushes_a_sha_tag(ci_env: RegistryHandle, busybox: Path, tmp_path: Path,
                                        image_name: str) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, files={"unique.txt": image_name * 500},
                     extra_dockerfile="COPY unique.txt /\n")
    assert _stage(repo, "build", "--network", "none") == 0
    assert _stage(repo, "push") == 0
    pushed = _record(repo)["push"]
    assert pushed["tag"] == "sha-" + _record(repo)["context"]["commit"][:12]
    layers = registry_settings().client().get_manifest(image_name, pushed["digest"]).json()["layers"]
    # The unique last layer was sent (compressed size); busybox layers may be mounted from another repository.
    assert layers[-1]["size"] <= pushed["bytes_pushed"] <= sum(layer["size"] for layer in layers)


def test_wrong_password_gives_a_clear_error_without_the_password(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v1.0.0")
    assert _stage(repo, "build", "--network", "none") == 0
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", "wrong-password-123")
    assert _stage(repo, "push") == 1
    err = capsys.readouterr().err
    assert "401" in err and "password" in err
    assert "wrong-password-123" not in err


def test_push_rejected_mid_stream_fails_the_stage(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the engine answers 200 and reports the registry's refusal inside the stream."""
    read_only = start_registry(tmp_path / "ro", read_only=True)
    try:
        monkeypatch.setenv("DELIVERY_REGISTRY", read_only.host)
        monkeypatch.setenv("DELIVERY_REGISTRY_USER", read_only.username)
        monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", read_only.password.reveal())
        repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v1.0.0")
        assert _stage(repo, "build", "--network", "none") == 0
        assert _stage(repo, "push") == 1
        assert "rejected the push" in capsys.readouterr().err
        assert _record(repo)["stages"]["push"]["status"] == "failed"
        assert "push" not in _record(repo)
    finally:
        read_only.stop()


def test_attestation_verifies_and_fails_with_wrong_key_or_tampered_payload(
    ci_env: RegistryHandle, busybox: Path, tmp_path: Path, image_name: str, keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v2.0.0")
    for stage in (["build", "--network", "none"], ["test"], ["push"], ["attest", "--key", str(keys[0])]):
        assert _stage(repo, *stage) == 0, stage
    pushed = _record(repo)["push"]
    capsys.readouterr()
    assert main(["verify", f"{ci_env.host}/{image_name}:2.0.0", "--key", str(keys[1]), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["subject_digest"] == pushed["digest"]
    assert verified["commit"] == _record(repo)["context"]["commit"]
    assert verified["test_passed"] is True and verified["ref"] == "refs/tags/v2.0.0"
    assert verified["scan"]["status"] == "unscanned"  # no scan stage ran: never read as scanned
    assert verified["scan"]["reason"] == "the scan stage did not run"

    from delivery.provenance import generate_keys

    _, other_pub = generate_keys(tmp_path / "other")
    assert main(["verify", f"{image_name}:2.0.0", "--key", str(other_pub)]) == 1
    assert "not signed by key" in capsys.readouterr().err

    client = registry_settings().client()
    manifest = client.get_manifest(image_name, attestation_tag(pushed["digest"]))
    envelope = json.loads(client.get_blob(image_name, manifest.json()["layers"][0]["digest"]))
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["runDetails"]["byproducts"][0]["annotations"]["status"] = "passed-tampered"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    store_attestation(client, image_name, pushed["digest"], envelope)
    with pytest.raises(ProvenanceError, match="does not verify"):
        verify_image(client, image_name, pushed["digest"], keys[1])


def test_an_unscanned_release_is_attested_as_unscanned_with_its_override_and_verify_says_so(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str, keys: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIVY_CACHE_DIR", str(tmp_path / "trivy-cache"))  # offline: no vulnerability DB
    monkeypatch.setenv("DELIVERY_ACTOR", "release-manager")
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag="v3.0.0",
                     extra_dockerfile="USER 1000\nHEALTHCHECK NONE\n")
    for stage in (["build", "--network", "none"], ["test"],
                  ["scan", "--allow-unscanned", "--reason", "INC-9: DB mirror down"], ["push"],
                  ["attest", "--key", str(keys[0])]):
        assert _stage(repo, *stage) == 0, stage
    capsys.readouterr()
    assert main(["verify", f"{ci_env.host}/{image_name}:3.0.0", "--key", str(keys[1])]) == 0
    out = capsys.readouterr().out
    assert "scan passed" not in out
    assert "not scanned (no trivy vulnerability DB in" in out
    assert "allowed by release-manager: INC-9: DB mirror down" in out
    assert main(["verify", f"{image_name}:3.0.0", "--key", str(keys[1]), "--json"]) == 0
    scan = json.loads(capsys.readouterr().out)["scan"]
    assert scan["status"] == "unscanned"
    assert scan["override"] == {"reason": "INC-9: DB mirror down", "actor": "release-manager"}
