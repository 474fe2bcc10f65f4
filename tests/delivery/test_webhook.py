"""Webhooks over real HTTP: signatures, replays, bad bodies, and single-repository syncs into a loopback Jenkins."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.jenkins import JenkinsClient
from delivery.pipelines.render import Settings
from delivery.pipelines.sync import sync_repository
from delivery.scm.local import LocalBackend
from delivery.secrets import Secret
from delivery.webhook import WebhookHandler, serve, signature_ok
from tests.delivery.scm.conftest import make_backend
from tests.support.builders import manifest_text
from tests.support.fake_github import FakeClock, FakeGitHub
from tests.support.fake_jenkins import TOKEN, USER, FakeJenkins

SECRET = "It's a Secret to Everybody"


class Hook:
    """A running webhook server wired to a local org and a fake Jenkins."""

    def __init__(self, org: Path, jenkins: FakeJenkins, backend: object | None = None) -> None:
        self.org, self.jenkins = org, jenkins
        scm = backend or LocalBackend(org)
        client = JenkinsClient(jenkins.url, USER, Secret(TOKEN), timeout=10)
        sync = lambda name: sync_repository(scm, client, Settings(), name, lambda _m: None)  # type: ignore[arg-type]  # noqa: E731
        self.handler = WebhookHandler(Secret(SECRET), sync, max_body=64 * 1024)
        self.server = serve(self.handler, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def post(self, event: str, payload: object, *, delivery: str | None = None, signature: str | None = None,
             raw: bytes | None = None) -> tuple[int, str]:
        body = raw if raw is not None else json.dumps(payload).encode()
        sig = signature or "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sig, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins()
    yield fake
    fake.stop()


@pytest.fixture
def hook(tmp_path: Path, jenkins: FakeJenkins) -> Iterator[Hook]:
    org = tmp_path / "acme"
    for name in ("alpha", "beta"):
        (org / name).mkdir(parents=True)
        (org / name / "biomarker.yaml").write_text(manifest_text(name=f"name: {name}"))
    running = Hook(org, jenkins)
    yield running
    running.server.shutdown()
    running.server.server_close()


def _push(name: str) -> dict[str, object]:
    return {"ref": "refs/heads/main", "repository": {"name": name, "full_name": f"acme/{name}"}}


def test_signature_matches_githubs_published_test_vector() -> None:
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_ok(Secret(SECRET), b"Hello, World!", header)
    assert not signature_ok(Secret(SECRET), b"Hello, World?", header)
    assert not signature_ok(Secret(SECRET), b"Hello, World!", None)


def test_push_creates_that_job_only_and_a_replay_is_ignored(hook: Hook) -> None:
    assert hook.post("push", _push("alpha"), delivery="d-1")[0] == 200
    assert sorted(hook.jenkins.items) == ["acme", "acme/alpha"]
    before = hook.jenkins.requests()
    status, text = hook.post("push", _push("alpha"), delivery="d-1")
    assert status == 200 and "already handled" in text and hook.jenkins.requests() == before


def test_bad_signature_is_401_and_does_nothing(hook: Hook) -> None:
    assert hook.post("push", _push("alpha"), signature="sha256=" + "0" * 64)[0] == 401
    assert hook.post("push", _push("alpha"), signature="garbage")[0] == 401
    assert hook.jenkins.items == {}


def test_oversized_and_malformed_bodies_are_400_and_the_server_lives_on(hook: Hook) -> None:
    assert hook.post("push", None, raw=b"x" * (65 * 1024))[0] == 400
    assert hook.post("push", None, raw=b"{not json")[0] == 400
    assert hook.post("push", {"repository": "not an object"})[0] == 400
    assert hook.post("push", [1, 2])[0] == 400
    assert hook.post("ping", {"zen": "Keep it logically awesome."})[0] == 200
    assert hook.post("issues", {"repository": {"name": "alpha"}})[0] == 202
    assert hook.post("push", _push("beta"))[0] == 200


def test_archived_or_removed_repository_disables_its_job(hook: Hook) -> None:
    hook.post("push", _push("beta"))
    (hook.org / "beta" / "biomarker.yaml").unlink()
    status, _ = hook.post("repository", {"action": "archived", "repository": {"name": "beta"}})
    assert status == 200 and hook.jenkins.items["acme/beta"].disabled


def test_renamed_repository_disables_old_job_and_creates_new(hook: Hook) -> None:
    hook.post("push", _push("beta"))
    (hook.org / "beta").rename(hook.org / "gamma")
    payload = {"action": "renamed", "changes": {"repository": {"name": {"from": "beta"}}},
               "repository": {"name": "gamma"}}
    assert hook.post("repository", payload)[0] == 200
    assert hook.jenkins.items["acme/beta"].disabled and "acme/gamma" in hook.jenkins.items


def test_jenkins_failure_is_502_and_the_delivery_can_be_retried(hook: Hook) -> None:
    hook.jenkins.fail("GET", "/job/acme/api/json", 500)
    assert hook.post("push", _push("alpha"), delivery="d-9")[0] == 502
    assert hook.post("push", _push("alpha"), delivery="d-9")[0] == 200
    assert "acme/alpha" in hook.jenkins.items


def test_tag_create_event_rescans_that_repository_on_github(tmp_path: Path, jenkins: FakeJenkins) -> None:
    clock = FakeClock()
    gh = FakeGitHub("acme", clock=clock)
    try:
        for i in range(30):
            gh.add_repo(f"repo-{i}", manifest_text(name=f"name: bm-{i}").encode() if i == 7 else None)
        running = Hook(tmp_path, jenkins, make_backend(gh, clock))
        payload = {"ref": "v1.2.3", "ref_type": "tag", "repository": {"name": "repo-7", "full_name": "acme/repo-7"}}
        assert running.post("create", payload)[0] == 200
        assert "acme/repo-7" in jenkins.items and gh.requests() == 1
        running.server.shutdown()
        running.server.server_close()
    finally:
        gh.stop()
