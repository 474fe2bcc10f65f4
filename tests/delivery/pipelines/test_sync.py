"""plan/apply/prune against a loopback Jenkins: only changed jobs are written, only owned orphans are pruned."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.errors import DeliveryError
from delivery.jenkins import JenkinsClient, JenkinsError
from delivery.pipelines import sync
from delivery.pipelines.render import RenderedJob, Settings, render_all, render_folder
from delivery.scm import ScanResult
from delivery.scm.local import LocalBackend
from delivery.scm.model import ScanOptions
from delivery.secrets import Secret
from tests.support.builders import manifest_text
from tests.support.fake_jenkins import TOKEN, USER, FakeJenkins, FakeJob

FOREIGN_XML = "<flow-definition><description>hand-made</description><disabled>false</disabled></flow-definition>"


@pytest.fixture
def jenkins() -> Iterator[FakeJenkins]:
    fake = FakeJenkins()
    yield fake
    fake.stop()


def _client(fake: FakeJenkins, token: str = TOKEN) -> JenkinsClient:
    return JenkinsClient(fake.url, USER, Secret(token), timeout=10)


def _org(tmp_path: Path, names: tuple[str, ...] = ("alpha", "beta", "gamma")) -> Path:
    org = tmp_path / "acme"
    for name in names:
        (org / name).mkdir(parents=True, exist_ok=True)
        (org / name / "biomarker.yaml").write_text(manifest_text(name=f"name: {name}"))
    return org


def _scan(org: Path) -> ScanResult:
    return LocalBackend(org).scan(ScanOptions())


def _jobs(scan: ScanResult) -> tuple[RenderedJob, ...]:
    return render_all(scan.repositories, Settings())


def _sync(fake: FakeJenkins, scan: ScanResult) -> sync.Plan:
    client = _client(fake)
    the_plan = sync.plan(client, render_folder("acme", Settings()), _jobs(scan))
    sync.apply(client, the_plan, lambda _m: None)
    return the_plan


def test_apply_creates_folder_and_jobs_then_nothing_changes(jenkins: FakeJenkins, tmp_path: Path) -> None:
    scan = _scan(_org(tmp_path))
    first = _sync(jenkins, scan)
    assert first.folder_missing and len(first.create) == 3
    assert sorted(jenkins.items) == ["acme", "acme/alpha", "acme/beta", "acme/gamma"]
    again = sync.plan(_client(jenkins), render_folder("acme", Settings()), _jobs(scan))
    assert (again.create, again.update, len(again.unchanged)) == ((), (), 3)


def test_one_changed_job_costs_at_most_five_requests(jenkins: FakeJenkins, tmp_path: Path) -> None:
    org = _org(tmp_path)
    _sync(jenkins, _scan(org))
    (org / "beta" / "biomarker.yaml").write_text(manifest_text(name="name: beta", description="description: New."))
    jenkins.http.reset_log()
    the_plan = _sync(jenkins, _scan(org))
    assert [j.full_name for j in the_plan.update] == ["acme/beta"]
    assert jenkins.requests() <= 5
    assert "New." in (jenkins.items["acme/beta"].description or "")


def test_plan_diffs_only_changed_jobs_against_live_config(jenkins: FakeJenkins, tmp_path: Path) -> None:
    org = _org(tmp_path)
    _sync(jenkins, _scan(org))
    (org / "beta" / "biomarker.yaml").write_text(manifest_text(name="name: beta", description="description: New."))
    client = _client(jenkins)
    jenkins.http.reset_log()
    text = sync.diff(client, sync.plan(client, render_folder("acme", Settings()), _jobs(_scan(org))))
    assert "--- jenkins/acme/beta/config.xml" in text and "+Biomarker beta: New." in text
    assert "acme/alpha" not in text
    assert jenkins.requests("GET", "config.xml") == 1


def test_jobs_we_do_not_own_are_never_touched(jenkins: FakeJenkins, tmp_path: Path) -> None:
    jenkins.items["acme"] = FakeJob("<com.cloudbees.hudson.plugins.folder.Folder/>")
    jenkins.items["acme/alpha"] = FakeJob(FOREIGN_XML)
    jenkins.items["acme/legacy"] = FakeJob(FOREIGN_XML)
    scan = _scan(_org(tmp_path))
    the_plan = _sync(jenkins, scan)
    assert the_plan.conflicts == ("acme/alpha",) and the_plan.orphans == ()
    assert jenkins.items["acme/alpha"].config_xml == FOREIGN_XML
    sync.prune(_client(jenkins), the_plan, scan, delete=True, progress=lambda _m: None)
    assert "acme/legacy" in jenkins.items


def test_prune_disables_owned_orphans_and_delete_deletes(jenkins: FakeJenkins, tmp_path: Path) -> None:
    org = _org(tmp_path)
    _sync(jenkins, _scan(org))
    (org / "gamma" / "biomarker.yaml").unlink()
    scan = _scan(org)
    client = _client(jenkins)
    the_plan = sync.plan(client, render_folder("acme", Settings()), _jobs(scan))
    assert sync.prune(client, the_plan, scan, delete=False, progress=lambda _m: None) == 1
    assert jenkins.items["acme/gamma"].disabled
    again = sync.plan(client, render_folder("acme", Settings()), _jobs(scan))
    assert sync.prune(client, again, scan, delete=True, progress=lambda _m: None) == 1
    assert "acme/gamma" not in jenkins.items and "acme/alpha" in jenkins.items


def test_a_disabled_job_whose_repository_returns_is_enabled_again(jenkins: FakeJenkins, tmp_path: Path) -> None:
    org = _org(tmp_path)
    _sync(jenkins, _scan(org))
    jenkins.items["acme/beta"].disabled = True
    the_plan = _sync(jenkins, _scan(org))
    assert [j.name for j in the_plan.update] == ["beta"] and not jenkins.items["acme/beta"].disabled


@pytest.mark.parametrize("broken", [
    {"errors": ("GitHub answered 502 for graphql",)}, {"rate_limited": True}, {"repositories": (), "invalid": ()},
])
def test_prune_refuses_after_a_partial_or_empty_scan(jenkins: FakeJenkins, tmp_path: Path,
                                                     broken: dict[str, object]) -> None:
    scan = _scan(_org(tmp_path))
    _sync(jenkins, scan)
    bad = dataclasses.replace(scan, **broken)  # type: ignore[arg-type]
    client = _client(jenkins)
    the_plan = sync.plan(client, render_folder("acme", Settings()), _jobs(bad))
    with pytest.raises(DeliveryError, match="refusing to prune"):
        sync.prune(client, the_plan, bad, delete=True, progress=lambda _m: None)
    assert len(jenkins.items) == 4 and not any(j.disabled for j in jenkins.items.values())


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/job/acme/api/json", 401), ("GET", "/job/acme/api/json", 403), ("GET", "/job/acme/api/json", 500),
    ("POST", "config.xml", 500), ("POST", "config.xml", 403),
])
def test_jenkins_failures_are_classified_by_status(jenkins: FakeJenkins, tmp_path: Path, method: str, path: str,
                                                  status: int) -> None:
    org = _org(tmp_path)
    _sync(jenkins, _scan(org))
    (org / "beta" / "biomarker.yaml").write_text(manifest_text(name="name: beta", description="description: New."))
    jenkins.fail(method, path, status)
    with pytest.raises(JenkinsError) as caught:
        _sync(jenkins, _scan(org))
    assert caught.value.status == status and caught.value.hint


def test_wrong_token_and_missing_job(jenkins: FakeJenkins) -> None:
    with pytest.raises(JenkinsError) as caught:
        _client(jenkins, token="wrong-token").folder_jobs("acme")
    assert caught.value.status == 401 and "wrong-token" not in caught.value.render()
    assert _client(jenkins).folder_jobs("nope") is None
    with pytest.raises(JenkinsError) as missing:
        _client(jenkins).job_config("acme/nope")
    assert missing.value.status == 404


def test_cli_plan_apply_prune(jenkins: FakeJenkins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    org = _org(tmp_path)
    monkeypatch.setenv("JENKINS_TEST_TOKEN", TOKEN)
    common = ["--org", f"local:{org}", "--jenkins-url", jenkins.url, "--jenkins-user", USER,
              "--jenkins-token-env", "JENKINS_TEST_TOKEN"]
    assert main(["pipelines", "plan", *common]) == 0
    out = capsys.readouterr()
    assert "+++ rendered/acme/alpha/config.xml" in out.out and "3 to create" in out.err
    assert main(["pipelines", "apply", *common]) == 0
    (org / "gamma" / "biomarker.yaml").unlink()
    assert main(["pipelines", "prune", *common]) == 0
    out = capsys.readouterr()
    assert "disabled 1 job" in out.out and TOKEN not in out.out + out.err
    assert jenkins.items["acme/gamma"].disabled
