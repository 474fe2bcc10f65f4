"""Triggers on the real engine: folder studies run once when stable, signed webhooks, failures kept for retry."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from delivery.secrets import Secret
from rollout.cli import main
from rollout.executions.triggers.events import TriggerLog
from rollout.executions.triggers.rules import TriggerFile, load_rules
from rollout.executions.triggers.runner import TriggerRunner, retry_failed
from rollout.executions.triggers.webhook import SIGNATURE, TIMESTAMP, sign
from tests.rollout.executions.conftest import NAME, Builds, World
from tests.support.executions_builders import set_channels, study

KEY = "k3y-for-the-pacs-hook-0123456789"


def _rules(tmp: Path, *rules: str) -> TriggerFile:
    path = tmp / "triggers.yaml"
    path.write_text("apiVersion: delivery/v1\nkind: Triggers\nlisten: 127.0.0.1:0\nrules:\n" + "".join(rules))
    return load_rules(path)


def _folder_rule(tmp: Path, submit: str = f"{NAME}@1.0.0", env: str = "ward") -> str:
    return (f"  - name: inbox\n    on: file_created\n    folder: {tmp / 'inbox'}\n    poll_seconds: 0.1\n"
            f"    submit: {submit}\n    output: {tmp / 'results'}\n    environment: {env}\n")


def _runner(world: World, rules: TriggerFile) -> TriggerRunner:
    return TriggerRunner(rules, world.submitter, TriggerLog(world.ledger.url))


def test_rules_file_problems_are_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: delivery/v1\nkind: Triggers\nrules:\n"
                   "  - name: inbox\n    on: file_created\n    folder: /in\n    submit: alpha@stable\n"
                   "    output: /out\n    poll_seconds: 0\n"
                   "  - name: hook\n    on: webhook\n    inputs: /in\n    secret_env: KEY\n    submit: alpha\n"
                   "    output: /out\n  - name: x\n    on: cron\n")
    assert main(["triggers", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:9:19: rules[0].poll_seconds" in err  # poll interval is bounded
    assert f"{bad}:14:13: rules[1].submit: 'alpha' is not NAME@SPEC" in err
    assert f"{bad}:16:5: rules[2]: `on` must be file_created or webhook" in err
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: delivery/v1\nkind: Triggers\nrules:\n" + _folder_rule(tmp_path))
    assert main(["triggers", "check", str(good)]) == 0
    assert "1 rule(s), valid" in capsys.readouterr().out


def test_a_study_in_a_watched_folder_runs_once_when_stable(world: World, builds: Builds) -> None:
    runner = _runner(world, _rules(world.tmp, _folder_rule(world.tmp)))
    (world.tmp / "inbox").mkdir()
    (world.tmp / "inbox" / ".copying").write_text("1\n")  # hidden names are never studies
    entry = study(world.tmp / "inbox" / "study-1", 2, 3)
    assert runner.scan_folders() == 0  # first sight: not yet known to be stable
    (entry / "more.txt").write_text("4\n")  # still being copied
    assert runner.scan_folders() == 0
    assert runner.scan_folders() == 1  # unchanged over two polls
    assert runner.drain() == 1
    [event] = runner.events.events()
    assert event.status == "submitted" and event.execution_id is not None
    execution = world.ledger.get(event.execution_id)
    assert execution.succeeded and execution.record.digest == builds.v1.digest
    report = json.loads((world.tmp / "results" / "study-1" / "report.json").read_text())
    assert report["volume_ml"] == (2 + 3 + 4) * 3
    assert runner.scan_folders() == 0
    restarted = _runner(world, _rules(world.tmp, _folder_rule(world.tmp)))
    assert restarted.scan_folders() + restarted.scan_folders() == 0  # the log remembers across restarts


def test_a_study_with_a_link_out_is_refused_and_the_other_studies_still_run(
        world: World, builds: Builds, caplog: pytest.LogCaptureFixture) -> None:
    runner = _runner(world, _rules(world.tmp, _folder_rule(world.tmp)))
    (world.tmp / "inbox").mkdir()
    leaky = study(world.tmp / "inbox" / "study-0", 1)
    (leaky / "leak").symlink_to("/etc/hostname")  # would read a file of the server's, not of the study
    study(world.tmp / "inbox" / "study-1", 2, 3)
    assert runner.scan_folders() + runner.scan_folders() == 1  # the good study is queued; the poll did not crash
    assert runner.scan_folders() == 0
    assert runner.drain() == 1
    [event] = runner.events.events()
    assert event.key.startswith("study-1@") and event.status == "submitted"
    refused = [r.getMessage() for r in caplog.records if "study-0 refused" in r.getMessage()]
    assert len(refused) == 1 and "leak" in refused[0]  # said once, not at every poll


def test_a_failed_submission_stays_recorded_and_retry_runs_it(world: World, builds: Builds) -> None:
    runner = _runner(world, _rules(world.tmp, _folder_rule(world.tmp, submit=f"{NAME}@stable", env="icu")))
    study(world.tmp / "inbox" / "s", 1)
    runner.run_once()  # no stable channel in icu yet: the pin cannot resolve
    [failed] = runner.events.events()
    assert failed.status == "failed" and "stable" in failed.reason
    assert world.ledger.executions() == []
    set_channels(world.store, "icu", NAME, stable=builds.v1)
    [retried] = retry_failed(world.submitter, runner.events)
    assert retried.status == "submitted" and retried.attempts == 2
    assert world.ledger.get(str(retried.execution_id)).record.version == "1.0.0"
    assert retry_failed(world.submitter, runner.events) == []  # nothing left to retry


@pytest.fixture
def hook(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TriggerRunner, str]]:
    monkeypatch.setenv("PACS_HOOK_KEY", KEY)
    (world.tmp / "studies" / "a").mkdir(parents=True)
    rule = (f"  - name: pacs\n    on: webhook\n    inputs: {world.tmp / 'studies'}\n    secret_env: PACS_HOOK_KEY\n"
            f"    submit: {NAME}@1.0.0\n    output: {world.tmp / 'results'}\n    max_body_bytes: 1024\n")
    runner = _runner(world, _rules(world.tmp, rule))
    server = runner.serve_webhooks()
    assert server is not None
    yield runner, f"http://127.0.0.1:{server.server_address[1]}/hooks/pacs"
    server.shutdown()
    server.server_close()


def _post(url: str, body: bytes, *, key: str = KEY, age: int = 0, signature: str | None = None) -> tuple[int, str]:
    stamp = str(int(time.time()) - age)
    headers = {TIMESTAMP: stamp, SIGNATURE: signature or sign(Secret(key), stamp, body),
               "Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_signed_webhook_submits_its_study(world: World, builds: Builds, hook: tuple[TriggerRunner, str]) -> None:
    runner, url = hook
    study(world.tmp / "studies" / "a" / "ct-7", 5)
    body = json.dumps({"id": "delivery-7", "input": "a/ct-7", "series_uid": "1.2.840.7"}).encode()
    assert _post(url, body)[0] == 202
    assert runner.drain() == 1
    [event] = runner.events.events()
    execution = world.ledger.get(str(event.execution_id))
    assert execution.succeeded and execution.record.input_identity == "dicom-series:1.2.840.7"
    assert json.loads((world.tmp / "results" / "delivery-7" / "provenance.json").read_text())["digest"] == \
        builds.v1.digest
    assert _post(url, body)[0] == 409  # the same signed delivery again: a replay, refused
    assert runner.drain() == 0


def test_webhook_refusals_are_answers_not_crashes(world: World, hook: tuple[TriggerRunner, str]) -> None:
    runner, url = hook
    body = json.dumps({"id": "d1", "input": "a"}).encode()
    assert _post(url, body, key="someone-elses-key-000000000000")[0] == 401
    assert _post(url, body, signature="sha256=" + "0" * 64)[0] == 401
    assert _post(url, body, age=3600)[0] == 401  # a captured request replayed later
    assert _post(url, b"{not json")[0] == 400
    assert _post(url, json.dumps({"id": "d2", "input": "../../etc"}).encode())[0] == 400
    assert _post(url, json.dumps({"id": "d2b", "input": "."}).encode())[0] == 400  # the whole inbox is no study
    assert _post(url, json.dumps({"id": "d3", "input": "a", "extra": 1}).encode())[0] == 400
    assert _post(url, json.dumps({"id": "d4", "input": "a", "pad": "x" * 2000}).encode())[0] == 413
    assert _post(url.replace("/pacs", "/nope"), body)[0] == 404
    assert runner.events.events() == []  # nothing unauthenticated or malformed was recorded
    assert _post(url, body)[0] == 202  # still serving


def test_triggers_run_once_and_retry_through_the_cli(home: Path, builds: Builds,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rules = home / "triggers.yaml"
    rules.write_text("apiVersion: delivery/v1\nkind: Triggers\nrules:\n" +
                     _folder_rule(home, submit=f"{NAME}@stable", env="er"))
    study(home / "inbox" / "s1", 7)
    org = ["--org", str(home / "org")]
    assert main(["triggers", "run", str(rules), "--once", "--json", *org]) == 1
    assert [e["status"] for e in json.loads(capsys.readouterr().out)] == ["failed"]
    set_channels(SqliteReleaseStore(home / "home" / "release-state.sqlite"), "er", NAME, stable=builds.v1_1)
    assert main(["triggers", "retry", "--json", *org]) == 0
    [event] = json.loads(capsys.readouterr().out)
    assert event["status"] == "submitted" and event["attempts"] == 2
    assert main(["executions", "show", event["execution_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["digest"] == builds.v1_1.digest


def _raw_post(url: str, headers: dict[str, str], body: bytes) -> int | None:
    """POST with exactly these headers (latin-1 on the wire); the status, or None when no answer came back."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("POST", parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value.encode("latin-1"))
        connection.endheaders(body)
        return connection.getresponse().status
    except (ConnectionError, http.client.HTTPException):
        return None
    finally:
        connection.close()


@pytest.mark.parametrize("header, value", [("Content-Length", "\u00b9"), ("Content-Length", "9" * 5000),
                                           (TIMESTAMP, "\u00b9\u00b2"), (TIMESTAMP, "9" * 5000)])
def test_numbers_python_cannot_read_in_webhook_headers_are_refused_not_dropped(
        world: World, hook: tuple[TriggerRunner, str], header: str, value: str) -> None:
    runner, url = hook
    body = json.dumps({"id": "d5", "input": "a"}).encode()
    stamp = str(int(time.time()))
    headers = {"Content-Length": str(len(body)), TIMESTAMP: stamp, SIGNATURE: sign(Secret(KEY), stamp, body),
               header: value}
    assert _raw_post(url, headers, body) in (401, 411, 413)
    assert runner.events.events() == []
