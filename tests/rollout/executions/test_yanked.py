"""Yanked means recalled: a submission that would run a yanked version is refused unless it overrides with a
reason, which the ledger and provenance.json keep; ranges keep skipping yanked versions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.docker import DockerClient, RegistryAuth
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from delivery.release.yank import yank_version
from rollout.cli import main
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FixedManifests
from rollout.executions.model import ExecutionRequest
from rollout.executions.pins import RegistryPinResolver, YankedVersion
from rollout.executions.submit import Submitter
from tests.support.executions_builders import MANIFEST, Built, build_biomarker, manifest, set_channels, study

RECALLED = "recalled"
WHY = "left-lung volume off by a third"


@dataclass(frozen=True)
class Versions:
    good: Built  # 1.0.0
    yanked: Built  # 1.1.0, yanked by qa-lead


@pytest.fixture(scope="module")
def versions(docker_client: DockerClient, busybox: Path, registry: RegistryHandle, registry_auth: RegistryAuth,
             tmp_path_factory: pytest.TempPathFactory) -> Versions:
    work = tmp_path_factory.mktemp("recalled")
    good, bad = (build_biomarker(docker_client, busybox, work, registry, registry_auth, RECALLED, v)
                 for v in ("1.0.0", "1.1.0"))
    client = RegistryClient(registry.url, registry.username, registry.password)
    yank_version(client, bad.repository, "1.1.0", WHY, "qa-lead", datetime.now(UTC))
    return Versions(good, bad)


def _submit(home: Path, spec: str, out: str, *extra: str) -> int:
    org = home / "org"
    (org / RECALLED).mkdir(parents=True, exist_ok=True)
    (org / RECALLED / "biomarker.yaml").write_text(MANIFEST.format(name=RECALLED))
    return main(["submit", f"{RECALLED}@{spec}", "--input", str(study(home / "in", 1, 2)), "--out",
                 str(home / out), "--org", str(org), *extra])


def test_submitting_a_yanked_version_is_refused_and_nothing_runs(
        home: Path, versions: Versions, capsys: pytest.CaptureFixture[str]) -> None:
    assert _submit(home, "1.1.0", "out") == 1
    err = capsys.readouterr().err
    assert "recalled 1.1.0 is yanked" in err and WHY in err and "qa-lead" in err and "--allow-yanked" in err
    assert main(["executions", "list", "--biomarker", RECALLED, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_an_override_needs_a_reason(home: Path, versions: Versions, capsys: pytest.CaptureFixture[str]) -> None:
    assert _submit(home, "1.1.0", "out", "--allow-yanked") == 2
    assert "--reason" in capsys.readouterr().err


def test_an_override_with_a_reason_runs_and_is_recorded_in_ledger_and_provenance(
        home: Path, versions: Versions, capsys: pytest.CaptureFixture[str]) -> None:
    assert _submit(home, "1.1.0", "out", "--allow-yanked", "--reason", "CAPA-12 re-run", "--json") == 0
    execution = json.loads(capsys.readouterr().out)["execution"]
    provenance = json.loads((home / "out" / "provenance.json").read_text())
    override = provenance["yank_override"]
    assert provenance["digest"] == versions.yanked.digest
    assert override["overridden_by"] == "dr-tester" and override["override_reason"] == "CAPA-12 re-run"
    assert override["yanked_by"] == "qa-lead" and override["yank_reason"] == WHY
    assert main(["executions", "show", execution["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["events"][0]["yank_override"] == override


def test_ranges_keep_skipping_the_yanked_version(home: Path, versions: Versions,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _submit(home, "^1", "out", "--json") == 0
    assert json.loads(capsys.readouterr().out)["execution"]["digest"] == versions.good.digest


def test_a_channel_left_on_a_yanked_version_is_refused_too(tmp_path: Path, docker_client: DockerClient,
                                                           registry: RegistryHandle, registry_auth: RegistryAuth,
                                                           versions: Versions) -> None:
    client = RegistryClient(registry.url, registry.username, registry.password)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    submitter = Submitter(ledger=Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}"), store=store,
                          resolver=RegistryPinResolver(client), manifests=FixedManifests(manifest(RECALLED)),
                          backend=LocalDockerBackend(docker_client, registry_auth), shadow_root=tmp_path / "shadow")
    set_channels(store, "site", RECALLED, stable=versions.yanked)
    request = ExecutionRequest(biomarker=RECALLED, spec="stable", input_path=study(tmp_path / "s", 1),
                               output_path=tmp_path / "o", environment="site")
    with pytest.raises(YankedVersion, match="is yanked"):
        submitter.submit(request)
    assert submitter.ledger.executions(biomarker=RECALLED) == []
