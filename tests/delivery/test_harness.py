"""The harness itself: a real engine builds, a real registry with auth accepts and refuses pushes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from delivery.docker import DockerClient, DockerError, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.secrets import Secret
from tests.support.images import write_busybox_context


def _tiny_image(client: DockerClient, busybox: Path, tmp_path: Path, registry: RegistryHandle) -> tuple[str, str]:
    context = write_busybox_context(tmp_path / "ctx", busybox, extra_dockerfile=f"LABEL probe={uuid.uuid4().hex}\n")
    repository = f"{registry.host}/harness/tiny"
    tag = uuid.uuid4().hex[:10]
    client.build(context, f"{repository}:{tag}", network_mode="none")
    return repository, tag


def test_engine_builds_an_image_that_runs(docker_client: DockerClient, busybox_image: str) -> None:
    output = docker_client.sdk.containers.run(busybox_image, ["sh", "-c", "echo hello from $((6*7))"],
                                              network_disabled=True, remove=True)
    assert output.strip() == b"hello from 42"


def test_registry_demands_authentication(registry: RegistryHandle) -> None:
    response = requests.get(f"{registry.url}/v2/", timeout=5)
    assert response.status_code == 401
    assert "Basic" in response.headers["Www-Authenticate"]
    ok = requests.get(f"{registry.url}/v2/", auth=(registry.username, registry.password.reveal()), timeout=5)
    assert ok.status_code == 200


def test_push_with_credentials_lands_in_the_registry(
    docker_client: DockerClient, busybox: Path, tmp_path: Path, registry: RegistryHandle, registry_auth: RegistryAuth
) -> None:
    repository, tag = _tiny_image(docker_client, busybox, tmp_path, registry)
    result = docker_client.push(repository, tag, registry_auth)
    assert result.digest.startswith("sha256:")
    manifest = requests.get(
        f"{registry.url}/v2/harness/tiny/manifests/{tag}",
        auth=(registry.username, registry.password.reveal()),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}, timeout=5,
    )
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == result.digest


def test_push_with_wrong_password_fails_clearly_and_leaves_no_tag(
    docker_client: DockerClient, busybox: Path, tmp_path: Path, registry: RegistryHandle
) -> None:
    repository, tag = _tiny_image(docker_client, busybox, tmp_path, registry)
    wrong = RegistryAuth(registry.host, registry.username, Secret("not-the-password-" + uuid.uuid4().hex))
    with pytest.raises(DockerError) as caught:
        docker_client.push(repository, tag, wrong)
    assert "rejected" in caught.value.message
    assert wrong.password.reveal() not in caught.value.render()
    listed = requests.get(f"{registry.url}/v2/harness/tiny/tags/list",
                          auth=(registry.username, registry.password.reveal()), timeout=5)
    assert listed.status_code == 404 or tag not in (listed.json()["tags"] or [])


def test_failing_build_step_reports_the_log_tail(docker_client: DockerClient, busybox: Path, tmp_path: Path) -> None:
    context = write_busybox_context(tmp_path / "ctx", busybox, extra_dockerfile='RUN echo about-to-fail && exit 3\n')
    with pytest.raises(DockerError) as caught:
        docker_client.build(context, "delivery-test/failing:1", network_mode="none")
    assert "returned a non-zero code: 3" in caught.value.message
    assert "about-to-fail" in (caught.value.hint or "")
