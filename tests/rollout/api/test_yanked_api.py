"""The API refuses a submission that would run a yanked version with a precise problem; only a developer may
override it, with a reason the ledger keeps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.release.yank import yank_version
from tests.rollout.api.conftest import NAME, Api
from tests.rollout.executions.conftest import remove_yanks
from tests.support.executions_builders import build_biomarker

RECALLED = "1.0.1-recalled.1"  # a pre-release: no range of another test ever picks it


@pytest.fixture(scope="module")
def recalled(api: Api, docker_client: DockerClient, busybox: Path, registry: RegistryHandle,
             registry_auth: RegistryAuth, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A yanked build of the shared biomarker, removed again afterwards (the registry outlives this module)."""
    built = build_biomarker(docker_client, busybox, tmp_path_factory.mktemp("recalled"), registry, registry_auth,
                            NAME, RECALLED)
    client = RegistryClient(registry.url, registry.username, registry.password)
    yank_version(client, built.repository, RECALLED, "wrong calibration", "qa-lead", datetime.now(UTC))
    yield RECALLED
    remove_yanks(client, built.repository)
    client.delete_manifest(built.repository, built.digest)


def _body(api: Api, **extra: object) -> dict[str, object]:
    return {"biomarker": NAME, "pin": RECALLED, "input": api.study("s-yank", 1, 2), **extra}


def test_a_yanked_pin_is_a_precise_problem_not_a_202(api: Api, recalled: str) -> None:
    with api.client("execution-client") as client:
        answer = client.post("/v1/executions", json=_body(api))
    assert answer.status_code == 422, answer.text
    assert f"{NAME} {recalled} is yanked" in answer.json()["error"] and "wrong calibration" in answer.json()["error"]
    assert "allow_yanked" in answer.json()["hint"]


def test_only_a_developer_may_override_and_only_with_a_reason(api: Api, recalled: str) -> None:
    with api.client("execution-client") as client:
        refused = client.post("/v1/executions", json=_body(api, allow_yanked=True, reason="CAPA-12"))
    with api.client("developer") as client:
        unexplained = client.post("/v1/executions", json=_body(api, allow_yanked=True))
    assert refused.status_code == 403 and refused.json()["field"] == "allow_yanked"
    assert unexplained.status_code == 422 and unexplained.json()["field"] == "reason"


def test_a_developers_override_runs_and_the_ledger_keeps_who_and_why(api: Api, recalled: str) -> None:
    with api.client("developer") as client:
        answer = client.post("/v1/executions", json=_body(api, allow_yanked=True, reason="CAPA-12 re-run"))
    assert answer.status_code == 202, answer.text
    first = api.services.ledger.get(answer.json()["id"]).events[0]
    override = first.details["yank_override"]
    assert override["override_reason"] == "CAPA-12 re-run" and override["overridden_by"] == "api:developer"
    assert override["yanked_by"] == "qa-lead"
