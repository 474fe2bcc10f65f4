"""Submissions whose planning fails, over HTTP against a real uvicorn: precise statuses, the real reason, promptly."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.manifest.model import Biomarker
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout.api.app import create_app
from rollout.api.auth import TokenStore, add_token
from rollout.api.services import ApiConfig, FixedCatalog, build_services
from rollout.executions.local_docker import LocalDockerBackend
from tests.rollout.api.conftest import ENV, NAME, rollout_manifest
from tests.support.api_server import serve
from tests.support.executions_builders import study


class SlowPlanningCatalog(FixedCatalog):
    """The manifest catalog on a slow shared volume: the planning thread's read takes `delay_s`, and with
    `broken` set it fails the way a file system does (EIO), which is no DeliveryError."""

    def __init__(self, manifest: Biomarker) -> None:
        super().__init__(manifest)
        self.delay_s, self.broken = 0.0, False

    def manifest(self, biomarker: str) -> Biomarker:
        if threading.current_thread().name.startswith("execution-"):
            time.sleep(self.delay_s)
            if self.broken:
                raise OSError(5, "Input/output error")
        return super().manifest(biomarker)


@pytest.fixture
def served(tmp_path: Path, docker_client: DockerClient, registry: RegistryHandle,
           registry_auth: RegistryAuth) -> Iterator[tuple[str, SlowPlanningCatalog, httpx.Client]]:
    catalog = SlowPlanningCatalog(rollout_manifest())
    services = build_services(
        config=ApiConfig((tmp_path / "studies").resolve(), (tmp_path / "results").resolve(), (ENV,)),
        tokens=TokenStore(tmp_path / "tokens.yaml"), catalog=catalog,
        store=SqliteReleaseStore(tmp_path / "release-state.sqlite"),
        registry=RegistryClient(registry.url, registry.username, registry.password),
        backend=LocalDockerBackend(docker_client, registry_auth), database_url=f"sqlite:///{tmp_path / 'l.sqlite'}",
        shadow_root=tmp_path / "shadow")
    token = add_token(services.tokens.path, "client", "execution-client")
    study(services.config.input_root / "s1", 1, 2)
    with serve(create_app(services)) as url, httpx.Client(base_url=url, timeout=60,
                                                          headers={"Authorization": f"Bearer {token}"}) as client:
        yield url, catalog, client
        services.dispatcher.idle(30)


def _post(client: httpx.Client, pin: str, key: str | None = None, reference: str = "s1") -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/executions", json={"biomarker": NAME, "pin": pin, "input": reference}, headers=headers)


def test_a_server_failure_while_planning_is_a_500_problem_saying_so(served: tuple[str, SlowPlanningCatalog,
                                                                                 httpx.Client]) -> None:
    _, catalog, client = served
    catalog.broken = True
    answer = _post(client, "1.0.0")
    assert answer.status_code == 500
    assert "could not be planned" in answer.json()["error"] and "OSError" in answer.json()["error"]
    assert "Idempotency-Key" in answer.json()["hint"]


def test_an_input_name_the_file_system_cannot_hold_is_a_422_naming_the_input(
        served: tuple[str, SlowPlanningCatalog, httpx.Client]) -> None:
    _, _, client = served
    answer = _post(client, "1.0.0", reference="a" * 300)
    assert answer.status_code == 422 and answer.json()["field"] == "input"
    assert "cannot be looked up" in answer.json()["error"]


def test_requests_racing_on_one_key_all_get_the_planning_error_at_once(
        served: tuple[str, SlowPlanningCatalog, httpx.Client]) -> None:
    url, catalog, _ = served
    catalog.delay_s = 1.0  # both requests arrive while the first is still planning
    key, answers = uuid.uuid4().hex, []
    token = served[2].headers["Authorization"]

    def post() -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": token}) as client:
            answers.append(_post(client, "9.9.9", key))

    started = time.monotonic()
    racers = [threading.Thread(target=post) for _ in range(2)]
    for racer in racers:
        racer.start()
        time.sleep(0.2)
    for racer in racers:
        racer.join(30)
    assert time.monotonic() - started < 10
    assert [a.status_code for a in answers] == [422, 422]
    assert all("9.9.9" in a.json()["error"] for a in answers), [a.json() for a in answers]
