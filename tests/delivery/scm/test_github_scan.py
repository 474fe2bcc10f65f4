"""The GitHub backend against a loopback GitHub: GraphQL and REST, pagination, ETags, rate limits, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.scm.model import ScanOptions
from tests.delivery.scm.conftest import make_backend
from tests.support.builders import manifest_text
from tests.support.fake_github import TOKEN, FakeClock, FakeGitHub

RATE_LIMITED = {"message": "API rate limit exceeded for user ID 1.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits"}
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
             "documentation_url": "https://docs.github.com/rest/overview/rate-limits#about-secondary-rate-limits"}


def _org(gh: FakeGitHub, repos: int = 250, biomarkers: int = 60) -> None:
    """`repos` repositories; every k-th one a biomarker; plus an archived, an invalid and a custom one."""
    step = repos // biomarkers
    for i in range(repos):
        name = f"repo-{i:04d}"
        manifest = manifest_text(name=f"name: bm-{i:04d}").encode() if i % step == 0 else None
        gh.add_repo(name, manifest)
    gh.add_repo("zz-archived", manifest_text().encode(), archived=True)
    gh.add_repo("zz-invalid", manifest_text(image="image: Not An Image").encode())
    custom = gh.add_repo("zz-custom", (manifest_text() + "pipeline: custom\n").encode(), default_branch="trunk")
    custom.files["Jenkinsfile"] = b"pipeline { }"


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_scan_finds_biomarkers_skips_archived_reports_invalid(gh: FakeGitHub, clock: FakeClock, api: str) -> None:
    _org(gh)
    result = make_backend(gh, clock, api=api).scan(ScanOptions())  # type: ignore[arg-type]
    names = [r.name for r in result.repositories]
    assert len(names) == 64 and "zz-archived" not in names and "zz-custom" in names
    assert result.invalid == ("zz-invalid",)
    assert any(p.startswith("zz-invalid/biomarker.yaml:6:") and "image" in p for p in result.problems)
    custom = next(r for r in result.repositories if r.name == "zz-custom")
    assert custom.has_jenkinsfile and custom.default_branch == "trunk" and custom.manifest.pipeline == "custom"
    assert result.complete and result.seen == 253


def test_graphql_scan_costs_one_request_per_hundred_repositories(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    make_backend(gh, clock).scan(ScanOptions())
    assert gh.requests() == 3 and gh.requests("POST", "/graphql") == 3


def test_rest_scan_follows_link_pagination_and_rescan_is_all_304(gh: FakeGitHub, clock: FakeClock,
                                                                  tmp_path: Path) -> None:
    _org(gh)
    cache = tmp_path / "etags.json"
    first = make_backend(gh, clock, api="rest", cache=cache).scan(ScanOptions())
    assert gh.requests("GET", "/organizations/9/repos?") == 2  # pages 2 and 3 came from the Link header
    charged = dict(gh.charged)
    backend = make_backend(gh, clock, api="rest", cache=cache)
    again = backend.scan(ScanOptions())
    assert [r.name for r in again.repositories] == [r.name for r in first.repositories]
    assert gh.charged == charged  # every conditional request answered 304: no rate limit spent
    # list pages, manifests, the custom Jenkinsfile: all 304
    assert backend.client.not_modified == backend.client.requests == 3 + 65 + 1


def test_rest_rescan_refetches_a_repository_after_a_push(gh: FakeGitHub, clock: FakeClock, tmp_path: Path) -> None:
    _org(gh, repos=10, biomarkers=5)
    cache = tmp_path / "etags.json"
    make_backend(gh, clock, api="rest", cache=cache).scan(ScanOptions())
    gh.repos["repo-0001"].files["biomarker.yaml"] = manifest_text(name="name: late").encode()
    gh.repos["repo-0001"].pushed_at = "2024-02-01T00:00:00Z"
    result = make_backend(gh, clock, api="rest", cache=cache).scan(ScanOptions())
    assert "repo-0001" in [r.name for r in result.repositories]


def test_topic_filter(gh: FakeGitHub, clock: FakeClock) -> None:
    gh.add_repo("tagged", manifest_text().encode(), topics=("biomarker",))
    gh.add_repo("untagged", manifest_text().encode())
    result = make_backend(gh, clock).scan(ScanOptions(topic="biomarker"))
    assert [r.name for r in result.repositories] == ["tagged"]


def test_primary_rate_limit_waits_for_reset_with_progress(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    gh.exhaust("graphql", reset_in=120)
    messages: list[str] = []
    result = make_backend(gh, clock, progress=messages).scan(ScanOptions())
    assert result.complete and len(result.repositories) == 64
    assert clock.slept and 120 <= sum(clock.slept) <= 125
    assert any("waiting 121 s" in m for m in messages)


def test_known_spent_budget_waits_before_sending(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    gh.limits["graphql"].remaining = 1
    gh.limits["graphql"].reset_at = clock.now() + 50
    result = make_backend(gh, clock).scan(ScanOptions())
    assert result.complete
    assert gh.requests() == 3  # the budget said 0 left: it waited instead of spending a request on a 403


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_honours_retry_after(gh: FakeGitHub, clock: FakeClock, status: int) -> None:
    _org(gh)
    gh.fail("POST", "/graphql", status, skip=1, headers={"Retry-After": "7"}, body=SECONDARY)
    result = make_backend(gh, clock).scan(ScanOptions())
    assert result.complete and clock.slept == [7.0]


def test_transient_5xx_is_retried_with_backoff(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    gh.fail("POST", "/graphql", 502, times=2, skip=1)
    result = make_backend(gh, clock).scan(ScanOptions())
    assert result.complete and clock.slept == [1.0, 2.0]


def test_persistent_5xx_mid_scan_gives_a_partial_result(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    gh.fail("POST", "/graphql", 500, times=10, skip=1)
    result = make_backend(gh, clock).scan(ScanOptions())
    assert not result.complete and "500" in result.errors[0]
    assert 0 < len(result.repositories) < 64  # page 1 is kept; nothing is invented


def test_rate_limit_longer_than_max_wait_is_partial(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh)
    gh.fail("POST", "/graphql", 403, skip=1, body=RATE_LIMITED, headers={
        "X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "5000", "X-RateLimit-Reset": str(int(clock.now()) + 3000)})
    result = make_backend(gh, clock, max_wait=60).scan(ScanOptions())
    assert result.rate_limited and not result.complete and clock.slept == []


def test_rest_contents_failure_on_one_repo_keeps_scanning(gh: FakeGitHub, clock: FakeClock) -> None:
    _org(gh, repos=20, biomarkers=4)
    gh.fail("GET", "/repos/acme/repo-0005/contents/", 503, times=10)
    result = make_backend(gh, clock, api="rest").scan(ScanOptions())
    assert "repo-0005" not in [r.name for r in result.repositories]
    assert "repo-0010" in [r.name for r in result.repositories]
    assert "repo-0005" in result.names()  # unknown is not gone: never pruned
    assert not result.complete and result.errors[0].startswith("repo-0005: ")


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_unknown_org_is_a_clear_error(gh: FakeGitHub, clock: FakeClock, api: str) -> None:
    backend = make_backend(gh, clock, api=api)  # type: ignore[arg-type]
    backend.org = "nope"
    result = backend.scan(ScanOptions())
    assert not result.complete and result.errors


@pytest.mark.parametrize("api", ["graphql", "rest"])
def test_scan_one_repository(gh: FakeGitHub, clock: FakeClock, api: str) -> None:
    _org(gh, repos=10, biomarkers=5)
    backend = make_backend(gh, clock, api=api)  # type: ignore[arg-type]
    assert [r.name for r in backend.scan_one("repo-0002").repositories] == ["repo-0002"]
    archived = backend.scan_one("zz-archived")
    missing = backend.scan_one("never-existed")
    assert archived.repositories == () and archived.complete
    assert missing.repositories == () and missing.complete


def test_cli_scan_against_github_never_prints_the_token(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _org(gh, repos=10, biomarkers=5)
    monkeypatch.setenv("GH_TEST_TOKEN", TOKEN)
    argv = ["scan", "--org", "acme", "--github-url", gh.url, "--token-env", "GH_TEST_TOKEN", "--json"]
    assert main([*argv, "--cache", str(tmp_path / "c.json")]) == 1  # zz-invalid
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)["repositories"]) == 6
    assert "zz-invalid/biomarker.yaml:6:" in captured.err
    assert TOKEN not in captured.out + captured.err


def test_cli_bad_token_is_a_clear_error(gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GH_TEST_TOKEN", "wrong-token-value")
    assert main(["scan", "--org", "acme", "--github-url", gh.url, "--token-env", "GH_TEST_TOKEN"]) == 1
    err = capsys.readouterr().err
    assert "401" in err and "partial" in err and "wrong-token-value" not in err
