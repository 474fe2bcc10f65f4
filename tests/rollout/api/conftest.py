"""The API served by a real uvicorn on loopback, over the real Docker engine and registry with busybox biomarkers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.manifest.model import Biomarker
from delivery.manifest.validate import parse_manifest
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout.api.app import create_app
from rollout.api.auth import ROLES, TokenStore, add_token
from rollout.api.services import ApiConfig, FixedCatalog, Services, build_services
from rollout.executions.local_docker import LocalDockerBackend
from tests.rollout.executions.conftest import Builds, builds  # noqa: F401 (the session fixture, reused)
from tests.support.api_server import serve
from tests.support.executions_builders import MANIFEST, study

NAME = "alpha"
ENV = "hospital-a"
OTHER_ENV = "trial-site"
STEPS = """\
rollout:
  steps:
    - set_weight: 20
    - analysis: {gates: [success-rate], min_executions: 3}
    - set_weight: 50
    - promote: {}
  gates:"""


def rollout_manifest(name: str = NAME) -> Biomarker:
    """The busybox stand-in with a progressive rollout plan."""
    text = MANIFEST.format(name=name).replace("rollout:\n  gates:", STEPS)
    return parse_manifest(text.encode(), f"{name}/biomarker.yaml")


@dataclass
class Api:
    url: str
    services: Services
    tokens: dict[str, str]  # role (and "other-client") -> bearer token
    store: SqliteReleaseStore
    inputs: Path

    def client(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def study(self, name: str, *numbers: int) -> str:
        """A study under the input root; returns its root-relative reference."""
        study(self.inputs / name, *numbers)
        return name


def make_services(tmp: Path, docker_client: DockerClient, registry: RegistryHandle, auth: RegistryAuth,
                  **config: object) -> Services:
    tokens = tmp / "tokens.yaml"
    store = SqliteReleaseStore(tmp / "release-state.sqlite")
    return build_services(
        config=ApiConfig((tmp / "studies").resolve(), (tmp / "results").resolve(), (ENV, OTHER_ENV),
                         **config),  # type: ignore[arg-type]
        tokens=TokenStore(tokens), catalog=FixedCatalog(rollout_manifest()), store=store,
        registry=RegistryClient(registry.url, registry.username, registry.password),
        backend=LocalDockerBackend(docker_client, auth), database_url=f"sqlite:///{tmp / 'ledger.sqlite'}",
        shadow_root=tmp / "shadow")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, docker_client: DockerClient, registry: RegistryHandle,
        registry_auth: RegistryAuth, builds: Builds) -> Iterator[Api]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("api")
    (tmp / "studies").mkdir()
    services = make_services(tmp, docker_client, registry, registry_auth, max_body_bytes=16 * 1024)
    tokens = {role: add_token(services.tokens.path, role, role) for role in ROLES}
    tokens["other-client"] = add_token(services.tokens.path, "other-client", "execution-client")
    with serve(create_app(services)) as url:
        yield Api(url, services, tokens, services.store, services.config.input_root)  # type: ignore[arg-type]
        services.dispatcher.idle(60)
