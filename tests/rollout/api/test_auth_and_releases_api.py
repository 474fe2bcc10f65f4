"""Every route, every role: 401 without a token, 403 for the wrong role; release managers' routes act on state."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from delivery.audit import AuditEvent
from rollout.api.asgi import render_openapi
from rollout.api.auth import ROLES, read_tokens
from rollout.controller import operations
from rollout.jobspec import Release
from rollout.scheduler import LocalScheduler
from tests.rollout.api.conftest import ENV, NAME, Api, rollout_manifest
from tests.rollout.executions.conftest import Builds
from tests.support.executions_builders import set_channels

OPENAPI = Path("manifests/openapi.json")
EVERYONE = set(ROLES)
READERS = {"release-manager", "developer", "auditor"}
FAKE_ID = "00000000-0000-4000-8000-000000000000"
# (method, path, body, roles allowed)
ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("POST", "/v1/executions", {"biomarker": NAME, "pin": "1.0.0", "input": "nope"}, {"execution-client",
                                                                                       "developer"}),
    ("GET", "/v1/executions", None, READERS),
    ("GET", f"/v1/executions/{FAKE_ID}", None, EVERYONE),
    ("GET", f"/v1/executions/{FAKE_ID}/results", None, EVERYONE),
    ("GET", "/v1/biomarkers", None, EVERYONE),
    ("GET", f"/v1/biomarkers/{NAME}/versions", None, EVERYONE),
    ("POST", "/v1/resolve", {"biomarker": NAME, "pin": "1.0.0"}, EVERYONE),
    ("POST", f"/v1/biomarkers/{NAME}/freezes", {"reason": "role probe", "environment": "trial-site"},
     {"release-manager"}),
    ("DELETE", f"/v1/biomarkers/{NAME}/freezes/nosuch", None, {"release-manager"}),
    ("GET", f"/v1/rollouts/{NAME}", None, READERS),
    ("POST", f"/v1/rollouts/{NAME}/pause", {"reason": "probe", "environment": "trial-site"}, {"release-manager"}),
    ("GET", "/v1/recalls", None, {"auditor", "release-manager"}),
    ("GET", "/v1/status", None, READERS),
]


def call(api: Api, role: str | None, method: str, path: str, body: dict[str, Any] | None) -> Any:
    with api.client(role) as client:
        return client.request(method, path, json=body)


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_route_needs_a_token_and_the_right_role(api: Api, builds: Builds, method: str, path: str,
                                                      body: dict[str, Any] | None, allowed: set[str]) -> None:
    anonymous = call(api, None, method, path, body)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    with api.client(None) as client:
        forged = client.request(method, path, json=body, headers={"Authorization": "Bearer bdt_not-a-real-token"})
    assert forged.status_code == 401
    for role in ROLES:
        got = call(api, role, method, path, body)
        if role in allowed:
            assert got.status_code not in (401, 403), (role, got.text)
        else:
            assert got.status_code == 403, (role, got.text)
            assert role in got.json()["error"]


def test_health_and_readiness_need_no_token(api: Api) -> None:
    with api.client(None) as client:
        assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
        ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"tokens": "ok", "ledger": "ok",
                                                                   "release-store": "ok", "registry": "ok"}


def test_tokens_are_stored_only_as_hashes(api: Api) -> None:
    stored = api.services.tokens.path.read_text()
    assert all(token not in stored for token in api.tokens.values())
    assert {t.role for t in read_tokens(api.services.tokens.path).tokens} == set(ROLES)
    assert api.services.tokens.path.stat().st_mode & 0o077 == 0


def test_versions_show_channels_yanks_and_freezes(api: Api, builds: Builds) -> None:
    set_channels(api.store, ENV, NAME, stable=builds.v1, candidate=builds.v2)
    with api.client("release-manager") as manager:
        frozen = manager.post(f"/v1/biomarkers/{NAME}/freezes",
                              json={"reason": "trial NCT-1 fixes the version", "version": "1.0.0", "hours": 2})
        versions = manager.get(f"/v1/biomarkers/{NAME}/versions").json()
        resolved = manager.post("/v1/resolve", json={"biomarker": NAME, "pin": "candidate"}).json()
        lifted = manager.delete(f"/v1/biomarkers/{NAME}/freezes/{frozen.json()['id']}",
                                params={"environment": ENV})
        after = manager.post("/v1/resolve", json={"biomarker": NAME, "pin": "candidate"}).json()
    by_version = {v["version"]: v for v in versions["versions"]}
    assert frozen.status_code == 201 and frozen.json()["owner"] == "api:release-manager"
    assert list(by_version) == ["2.0.0", "1.1.0", "1.0.0"]
    assert by_version["1.0.0"]["channels"] == [f"{ENV}/stable"] and by_version["1.0.0"]["frozen_by"]
    assert by_version["2.0.0"]["channels"] == [f"{ENV}/candidate"] and by_version["2.0.0"]["digest"] == builds.v2.digest
    assert [f["reason"] for f in versions["freezes"] if f["active"] and f["environment"] == ENV] == [
        "trial NCT-1 fixes the version"]
    assert resolved["version"] == "1.0.0" and "freeze" in resolved["rule"]  # the freeze wins over the channel
    assert lifted.status_code == 204 and after["version"] == "2.0.0"
    audited = {(e.action, e.actor) for e in api.services.audit.events(subject_prefix=f"{ENV}/{NAME}")}
    assert {("freeze", "api:release-manager"), ("unfreeze", "api:release-manager")} <= audited
    assert not [action for action, _ in audited if action.startswith("api-")]  # one event per act, the caller's


def test_unknown_pins_and_biomarkers_are_precise(api: Api, builds: Builds) -> None:
    with api.client("developer") as client:
        missing = client.post("/v1/resolve", json={"biomarker": NAME, "pin": "^7"})
        unknown = client.get("/v1/biomarkers/nosuch/versions")
    assert missing.status_code == 422 and "satisfies ^7" in missing.json()["error"]
    assert unknown.status_code == 404 and "no biomarker nosuch" in unknown.json()["error"]


def test_a_release_manager_rolls_back_a_rollout_through_the_existing_operation(api: Api, builds: Builds,
                                                                              tmp_path: Path) -> None:
    set_channels(api.store, "trial-site", NAME, freezes=())  # the role probes' freezes would block a new rollout
    release = Release(NAME, builds.v2.version, builds.v2.digest, builds.v2.image)
    operations.start_rollout(store=api.store, scheduler=LocalScheduler(tmp_path / "sched.json"),
                             manifest=rollout_manifest(), variant="fast", release=release, environment="trial-site",
                             now=datetime.now(UTC))
    with api.client("execution-client") as client:
        refused = client.post(f"/v1/rollouts/{NAME}/rollback", json={"environment": "trial-site"})
    with api.client("release-manager") as manager:
        done = manager.post(f"/v1/rollouts/{NAME}/rollback", json={"environment": "trial-site", "reason": "QC drift"})
        shown = manager.get(f"/v1/rollouts/{NAME}", params={"environment": "trial-site"}).json()
    assert refused.status_code == 403
    assert done.status_code == 202 and done.json()["rollout"]["abort_reason"] == "QC drift"
    assert shown["rollout"]["history"][-1]["action"] == "rollback"
    assert shown["rollout"]["history"][-1]["actor"] == "api:release-manager"
    audited = api.services.audit.events(subject_prefix=f"trial-site/{NAME}", action="rollout-rollback")
    assert [(e.actor, e.reason) for e in audited] == [("api:release-manager", "QC drift")]


def test_auditors_read_recalls(api: Api) -> None:
    api.services.audit.append(AuditEvent("recall", f"{NAME}@0.9.0", "wrong lung mask", actor="qa"))
    with api.client("auditor") as auditor:
        recalls = auditor.get("/v1/recalls").json()["recalls"]
    assert [r["reason"] for r in recalls if r["subject"] == f"{NAME}@0.9.0"] == ["wrong lung mask"]


def test_access_logs_are_json_without_secrets_or_input_references(api: Api, builds: Builds,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    reference = api.study("patient-doe-john", 5)
    with caplog.at_level(logging.INFO, logger="rollout.api.access"), api.client("execution-client") as client:
        client.post("/v1/executions", json={"biomarker": NAME, "pin": "9.9.9", "input": reference},
                    headers={"X-Request-Id": "req-123"})
        client.get("/v1/executions/secret?q=patient-doe-john")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "rollout.api.access"]
    text = caplog.text
    assert any(e["route"] == "/v1/executions" and e["caller"] == "execution-client" and e["status"] == 422
               and e["request_id"] == "req-123" for e in lines)
    assert "patient-doe-john" not in text and api.tokens["execution-client"] not in text


def test_the_committed_openapi_document_is_current() -> None:
    assert OPENAPI.read_text(encoding="utf-8") == render_openapi(), (
        "regenerate: rollout serve --write-openapi manifests/openapi.json")
