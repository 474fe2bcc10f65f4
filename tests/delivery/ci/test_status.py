"""GitHub commit statuses per stage: only inside a Jenkins build with a token; a refusal never fails the stage."""

from __future__ import annotations

import json

import pytest
import responses

from delivery.ci.status import GitHubStatus, NoStatus, github_repository
from delivery.commands.ci import status_sink

API = "https://github.example.test/api/v3"
SHA = "c0ffee" * 6 + "abcd"


@pytest.fixture
def jenkins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example.test/job/emphysema/42/")
    monkeypatch.setenv("GIT_URL", "https://github.example.test/biomarkers/emphysema.git")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_token_for_statuses")
    monkeypatch.setenv("GITHUB_API_URL", API)


def test_repository_names_from_clone_urls() -> None:
    assert github_repository("https://github.com/org/repo.git") == "org/repo"
    assert github_repository("git@github.com:org/my.repo.git") == "org/my.repo"
    assert github_repository("git+file:///tmp/repo") is None


def test_no_status_outside_jenkins_or_without_token(monkeypatch: pytest.MonkeyPatch, jenkins: None) -> None:
    assert isinstance(status_sink(), GitHubStatus)
    monkeypatch.delenv("GITHUB_TOKEN")
    assert isinstance(status_sink(), NoStatus)


@responses.activate
def test_stage_states_are_posted_with_a_link_to_the_build(jenkins: None) -> None:
    responses.add(responses.POST, f"{API}/repos/biomarkers/emphysema/statuses/{SHA}", status=201, json={"id": 1})
    status_sink().set_status(SHA, "delivery/test", "pending", "test running", "https://jenkins.example.test/42/")
    body = json.loads(responses.calls[0].request.body)
    assert body == {"state": "pending", "context": "delivery/test", "description": "test running",
                    "target_url": "https://jenkins.example.test/42/"}
    assert responses.calls[0].request.headers["Authorization"].endswith("ghs_token_for_statuses")


@responses.activate
def test_a_refused_status_warns_and_does_not_raise(jenkins: None, capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.POST, f"{API}/repos/biomarkers/emphysema/statuses/{SHA}", status=403,
                  json={"message": "Resource not accessible by integration"})
    status_sink().set_status(SHA, "delivery/scan", "failure", "gate closed", None)
    err = capsys.readouterr().err
    assert "delivery/scan=failure not set" in err and "ghs_token_for_statuses" not in err
