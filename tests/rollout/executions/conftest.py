"""Real-engine fixtures for execution tests: three builds of a busybox biomarker with real digests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import NotFound, RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FixedManifests
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.submit import Submitter
from tests.support.executions_builders import MANIFEST, Built, build_biomarker, manifest

NAME = "alpha"


@dataclass(frozen=True)
class Builds:
    v1: Built  # reference numbers
    v1_1: Built  # a different build with identical numbers
    v2: Built  # numbers drift by a third: beyond every tolerance


@pytest.fixture(scope="session")
def builds(docker_client: DockerClient, busybox: Path, registry: RegistryHandle, registry_auth: RegistryAuth,
           tmp_path_factory: pytest.TempPathFactory) -> Builds:
    work = tmp_path_factory.mktemp("biomarkers")
    return Builds(
        build_biomarker(docker_client, busybox, work, registry, registry_auth, NAME, "1.0.0", factor=3),
        build_biomarker(docker_client, busybox, work, registry, registry_auth, NAME, "1.1.0", factor=3),
        build_biomarker(docker_client, busybox, work, registry, registry_auth, NAME, "2.0.0", factor=4),
    )


@dataclass
class World:
    ledger: Ledger
    store: SqliteReleaseStore
    registry: RegistryClient
    submitter: Submitter
    tmp: Path


def make_world(tmp: Path, docker_client: DockerClient, registry: RegistryHandle, auth: RegistryAuth,
               *, paired: bool = True) -> World:
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.sqlite'}")
    store = SqliteReleaseStore(tmp / "release-state.sqlite")
    client = RegistryClient(registry.url, registry.username, registry.password)
    submitter = Submitter(ledger=ledger, store=store, resolver=RegistryPinResolver(client),
                          manifests=FixedManifests(manifest(NAME)),
                          backend=LocalDockerBackend(docker_client, auth), shadow_root=tmp / "shadow", paired=paired)
    return World(ledger, store, client, submitter, tmp)


@pytest.fixture(autouse=True)
def undo_yanks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Yanks are registry records and the registry lives for the session: a test that yanks (a recall) leaves the
    shared builds as it found them, so a later test that pins that version is not refused."""
    yield
    if "registry" in request.fixturenames:  # tests without the registry neither yank nor need one started
        registry: RegistryHandle = request.getfixturevalue("registry")
        remove_yanks(RegistryClient(registry.url, registry.username, registry.password), f"biomarkers/{NAME}")


def remove_yanks(client: RegistryClient, repository: str) -> None:
    """Delete every yank record of `repository` (tests only: yanks are never undone in the product)."""
    try:
        tags = client.list_tags(repository)
    except NotFound:  # never pushed in this session: nothing to undo
        return
    for tag in tags:
        digest = client.head_manifest(repository, tag) if tag.endswith(".yank") else None
        if digest:
            client.delete_manifest(repository, digest)


@pytest.fixture
def world(tmp_path: Path, docker_client: DockerClient, registry: RegistryHandle, registry_auth: RegistryAuth,
          builds: Builds) -> World:
    return make_world(tmp_path, docker_client, registry, registry_auth)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: RegistryHandle) -> Path:
    """A fresh DELIVERY_HOME, the test registry in the environment, and an org folder holding the manifest."""
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DELIVERY_DATABASE_URL", raising=False)
    monkeypatch.delenv("NOMAD_ADDR", raising=False)  # rollouts (and a recall's rollback) on the embedded default
    monkeypatch.setenv("DELIVERY_REGISTRY", registry.host)
    monkeypatch.setenv("DELIVERY_REGISTRY_USER", registry.username)
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal())
    monkeypatch.setenv("DELIVERY_ACTOR", "dr-tester")
    (tmp_path / "org" / NAME).mkdir(parents=True)
    (tmp_path / "org" / NAME / "biomarker.yaml").write_text(MANIFEST.format(name=NAME))
    return tmp_path
