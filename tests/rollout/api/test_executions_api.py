"""Execution clients over HTTP against a real uvicorn: pinned submissions run on the real Docker engine."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.rollout.api.conftest import ENV, NAME, Api
from tests.rollout.executions.conftest import Builds
from tests.support.executions_builders import set_channels


def submit(client: httpx.Client, api: Api, pin: str, *numbers: int, key: str | None = None,
           **extra: Any) -> httpx.Response:
    reference = api.study(f"study-{'-'.join(map(str, numbers))}", *numbers)
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/executions", json={"biomarker": NAME, "pin": pin, "input": reference, **extra},
                       headers=headers)


def finished(client: httpx.Client, location: str, timeout_s: float = 90) -> dict[str, Any]:
    """Poll an execution until it succeeded or failed; returns every status seen on the way."""
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        doc = client.get(location).json()
        seen.append(doc["status"])
        if doc["status"] in ("succeeded", "failed"):
            return {**doc, "seen": seen}
        time.sleep(0.1)
    raise AssertionError(f"{location} still {seen[-1]} after {timeout_s}s")


def test_a_pinned_submission_runs_asynchronously_and_its_results_name_the_exact_build(api: Api,
                                                                                      builds: Builds) -> None:
    with api.client("execution-client") as client:
        accepted = submit(client, api, "1.0.0", 10, 20)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert accepted.headers["location"] == f"/v1/executions/{body['id']}"
        assert body["status"] in ("queued", "running")
        assert body["version"] == "1.0.0" and body["digest"] == builds.v1.digest
        done = finished(client, accepted.headers["location"])
        results = client.get(f"/v1/executions/{body['id']}/results").json()
    assert done["status"] == "succeeded" and done["route"] == "stable" and done["input"] == "study-10-20"
    assert done["dispatched_at"] is not None and done["finished_at"] >= done["dispatched_at"]
    assert results["report"]["volume_ml"] == 90 and results["report"]["image_digest"] == builds.v1.digest
    assert results["provenance"]["digest"] == builds.v1.digest
    assert results["provenance"]["reference"] == builds.v1.reference
    assert results["provenance"]["actor"] == "api:execution-client"


def test_results_of_a_running_execution_are_refused_until_it_ends(api: Api, builds: Builds) -> None:
    with api.client("execution-client") as client:
        accepted = submit(client, api, "1.1.0", 4, 5)
        early = client.get(f"/v1/executions/{accepted.json()['id']}/results")
        finished(client, accepted.headers["location"])
        late = client.get(f"/v1/executions/{accepted.json()['id']}/results")
    assert early.status_code in (200, 409)  # 200 only if the container already finished
    assert early.status_code == 200 or "no results yet" in early.json()["error"]
    assert late.status_code == 200 and late.json()["report"]["volume_ml"] == 27


def test_the_same_idempotency_key_and_body_is_the_same_execution(api: Api, builds: Builds) -> None:
    key = uuid.uuid4().hex
    with api.client("execution-client") as client:
        first = submit(client, api, "1.0.0", 1, 2, key=key)
        again = submit(client, api, "1.0.0", 1, 2, key=key)
        finished(client, first.headers["location"])
        after = submit(client, api, "1.0.0", 1, 2, key=key)
        other = submit(client, api, "2.0.0", 1, 2, key=key)
    assert first.status_code == again.status_code == after.status_code == 202
    assert first.json()["id"] == again.json()["id"] == after.json()["id"]
    execution = api.services.ledger.get(first.json()["id"])
    assert [e.kind for e in execution.events].count("succeeded") == 1
    assert other.status_code == 409 and other.json()["field"] == "pin"


def test_keys_are_per_client_so_two_clients_never_share_an_execution(api: Api, builds: Builds) -> None:
    key = uuid.uuid4().hex
    with api.client("execution-client") as mine, api.client("other-client") as theirs:
        a = submit(mine, api, "1.0.0", 3, key=key)
        b = submit(theirs, api, "1.0.0", 3, key=key)
        hidden = theirs.get(a.headers["location"])
        finished(mine, a.headers["location"])
        finished(theirs, b.headers["location"])
    assert a.json()["id"] != b.json()["id"]
    assert hidden.status_code == 404


def test_a_stable_submission_follows_the_channel(api: Api, builds: Builds) -> None:
    set_channels(api.store, ENV, NAME, stable=builds.v2)
    with api.client("developer") as client:
        done = finished(client, submit(client, api, "stable", 2, 2).headers["location"])
    assert done["version"] == "2.0.0" and done["digest"] == builds.v2.digest
    assert "channel stable" in done["rule"]


@pytest.mark.parametrize(("body", "status", "field", "words"), [
    ({"pin": "1.0.0", "input": "x"}, 422, "body.biomarker", "Field required"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "x", "colour": "red"}, 422, "body.colour", "Extra inputs"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "../../etc"}, 422, "input", "inside the input root"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "missing-study"}, 422, "input", "does not exist"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "/etc/passwd"}, 422, "body.input", "pattern"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "link-out"}, 422, "input", "inside the input root"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "study-7", "variant": "turbo"}, 422, "variant", "no variant"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "study-7", "environment": "mars"}, 422, "environment",
     "not served"),
    ({"biomarker": NAME, "pin": "9.9.9", "input": "study-7"}, 422, None, "has no version 9.9.9"),
    ({"biomarker": "nosuch", "pin": "1.0.0", "input": "study-7"}, 422, None, "no manifest"),
    ({"biomarker": NAME, "pin": "1.0.0", "input": "study-7", "series_uid": "not-a-uid"}, 422, "body.series_uid",
     "pattern"),
])
def test_bad_bodies_are_refused_naming_the_field(api: Api, body: dict[str, Any], status: int, field: str | None,
                                                 words: str) -> None:
    api.study("study-7", 7)
    link = api.inputs / "link-out"
    if not link.exists():
        link.symlink_to("/etc")
    with api.client("execution-client") as client:
        got = client.post("/v1/executions", json=body)
    assert got.status_code == status, got.text
    assert words in got.json()["error"]
    if field:
        assert got.json()["field"] == field


def test_malformed_json_is_a_400(api: Api) -> None:
    with api.client("execution-client") as client:
        got = client.post("/v1/executions", content=b'{"biomarker": ', headers={"Content-Type": "application/json"})
    assert got.status_code == 400 and "not valid JSON" in got.json()["error"]


def test_oversized_bodies_are_refused_declared_or_streamed(api: Api) -> None:
    big = json.dumps({"biomarker": NAME, "pin": "1.0.0", "input": "x" * 40_000}).encode()

    def chunks() -> Any:
        for i in range(0, len(big), 4096):
            yield big[i:i + 4096]

    with api.client("execution-client") as client:
        declared = client.post("/v1/executions", content=big, headers={"Content-Type": "application/json"})
        streamed = client.post("/v1/executions", content=chunks(), headers={"Content-Type": "application/json"})
    assert declared.status_code == 413 and "over 16384 bytes" in declared.json()["error"]
    assert streamed.status_code == 413


def test_the_ledger_is_listed_for_auditors(api: Api, builds: Builds) -> None:
    with api.client("execution-client") as client:
        done = finished(client, submit(client, api, "1.0.0", 8).headers["location"])
        later = finished(client, submit(client, api, "1.0.0", 9).headers["location"])
    with api.client("auditor") as auditor:
        listed = auditor.get("/v1/executions", params={"biomarker": NAME, "version": "1.0.0"}).json()
        latest = auditor.get("/v1/executions", params={"biomarker": NAME, "limit": 2}).json()
        one = auditor.get(f"/v1/executions/{done['id']}")
    assert done["id"] in [e["id"] for e in listed["executions"]]
    assert all(e["version"] == "1.0.0" for e in listed["executions"])
    assert [e["id"] for e in latest["executions"]] == [later["id"], done["id"]]  # the latest, newest first
    assert one.status_code == 200
