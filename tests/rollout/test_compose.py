"""One composition root, one truth: with a cluster configured every command (delivery promote/resolve, rollout
deploy/submit) and the API read and write the same release state in Nomad Variables and the same ledger; without one
everything stays in the embedded SQLite files. Driven through the CLIs against the fake Nomad and the real registry."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from delivery import cli as delivery_cli
from delivery.errors import ConfigError
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from rollout import cli as rollout_cli
from rollout.compose import compose
from rollout.nomad_state import NomadReleaseStore
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, client
from tests.support.oci import Keys, attest, make_keys, push_image

ENV = "prod"
STABLE, CANARY = "alpha-fast", "alpha-fast-canary"
CONFIG_KEYS = ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL",
               "DELIVERY_CONFIG", "DELIVERY_RELEASE_STORE", "DELIVERY_BACKEND", "DELIVERY_PUBLIC_KEY",
               "DELIVERY_NOMAD_PULL_USER", "DELIVERY_NOMAD_PULL_PASSWORD", "DELIVERY_NOMAD_PULL_PASSWORD_FILE",
               "DELIVERY_SHADOW_ROOT")


@dataclass(frozen=True)
class World:
    """A private home, an environment `prod` in the real registry under its own prefix, signing keys."""

    home: Path
    registry: RegistryClient
    prefix: str
    keys: Keys
    manifest: Path

    @property
    def repository(self) -> str:
        return f"{self.prefix}/alpha"

    def push(self, version: str, *, attested: bool = True) -> str:
        digest = push_image(self.registry, self.repository, version, seed=version).digest
        if attested:
            attest(self.registry, self.repository, digest, self.keys)
        return digest

    @property
    def sqlite(self) -> Path:
        return self.home / "release-state.sqlite"


@pytest.fixture
def world(registry: RegistryHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    for key in CONFIG_KEYS:  # set then delete: the teardown then also removes what a config file filled in
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    keys = make_keys(home / "keys")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / f"{ENV}.yaml").write_text(json.dumps({
        "apiVersion": "delivery/v1", "kind": "Environment", "name": ENV, "registry": registry.host,
        "repository_prefix": prefix, "nomad": {"address": "http://127.0.0.1:4646"}}), encoding="utf-8")
    for key, value in (("DELIVERY_HOME", str(home)), ("DELIVERY_ENVIRONMENTS", str(tmp_path / "envs")),
                       ("DELIVERY_REGISTRY", registry.host), ("DELIVERY_REGISTRY_USER", registry.username),
                       ("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal()), ("DELIVERY_ACTOR", "rm"),
                       ("DELIVERY_ENV", ENV)):
        monkeypatch.setenv(key, value)
    manifest = tmp_path / "biomarker.yaml"
    manifest.write_text(BATCH, encoding="utf-8")
    return World(home, RegistryClient(registry.url, registry.username, registry.password), prefix, keys, manifest)


@pytest.fixture
def fake(world: World) -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


@pytest.fixture
def cluster(fake: FakeNomad, world: World, monkeypatch: pytest.MonkeyPatch) -> FakeNomad:
    """Cluster mode: NOMAD_ADDR and the shared ledger (a file URL stands in for PostgreSQL)."""
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{world.home.parent / 'shared-ledger.sqlite'}")
    return fake


def run(capsys: pytest.CaptureFixture[str], main: Any, *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in argv and out.strip() else out, err


def delivery(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    return run(capsys, delivery_cli.main, *argv)


def rollout(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    return run(capsys, rollout_cli.main, *argv)


def deploy(capsys: pytest.CaptureFixture[str], world: World, *flags: str) -> tuple[int, Any, str]:
    return rollout(capsys, "deploy", "alpha", "--manifest", str(world.manifest), *flags)


def job_image(fake: FakeNomad, job_id: str = STABLE) -> str:
    job = client(fake.address).job(job_id).value
    assert job is not None, f"{job_id} was not registered"
    return str(json.loads(job.spec)["TaskGroups"][0]["Tasks"][0]["Config"]["image"])


def test_a_promotion_is_what_deploy_channel_resolve_and_the_api_see_on_the_cluster(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    variable = cluster.read_variable(f"delivery/release/{ENV}/alpha")
    assert variable is not None and digest in variable["Items"]["state"]
    code, answer, _ = delivery(capsys, "resolve", "alpha@candidate", "--env", ENV, "--json")
    assert code == 0 and answer["digest"] == digest

    code, status, err = deploy(capsys, world, "--channel", "candidate", "--json")
    assert code in (0, 3), err
    assert status["candidate"]["version"] == "1.0.0" and status["candidate"]["digest"] == digest
    assert job_image(cluster) == f"{world.registry.host}/{world.repository}@{digest}"  # the first version: stable
    pull = cluster.read_variable(f"nomad/jobs/{STABLE}")
    assert pull is not None and pull["Items"]["username"] == os.environ["DELIVERY_REGISTRY_USER"]
    assert compose().rollouts() == [(ENV, "alpha")]
    assert not world.sqlite.exists() and not (world.home / "ledger.sqlite").exists()


def test_deploy_version_finds_the_pinned_build_and_agrees_with_a_typed_digest(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    digest = world.push("1.1.0")
    assert delivery(capsys, "promote", "alpha", "1.1.0", "--to", ENV)[0] == 0
    code, _, err = deploy(capsys, world, "--version", "1.1.0", "--digest", "sha256:" + "e" * 64)
    assert code == 2 and "--digest" in err and digest in err
    assert client(cluster.address).job(STABLE).value is None
    code, status, err = deploy(capsys, world, "--version", "1.1.0", "--digest", digest, "--json")
    assert code in (0, 3), err
    assert status["candidate"]["digest"] == digest


def test_an_empty_channel_names_the_channel_and_how_to_fill_it_and_writes_nothing(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = deploy(capsys, world, "--channel", "candidate")
    assert code == 1 and "channel candidate of prod holds nothing for alpha" in err
    assert "delivery promote alpha VERSION --to prod --channel candidate" in err
    assert cluster.count("PUT", "/v1/var") == 0 and cluster.count("POST", "/v1/job") == 0


def test_a_digest_without_an_attestation_is_refused_before_anything_is_written(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.push("1.2.0", attested=False)
    forced = ("--force", "--reason", "hotfix INC-7, attestation pending")
    assert delivery(capsys, "promote", "alpha", "1.2.0", "--to", ENV, *forced)[0] == 0
    before = cluster.read_variable(f"delivery/release/{ENV}/alpha")
    writes = cluster.count("PUT", "/v1/var")
    code, _, err = deploy(capsys, world, "--channel", "candidate")
    assert code == 1 and "attestation" in err.lower()
    assert cluster.read_variable(f"delivery/release/{ENV}/alpha") == before
    assert cluster.count("PUT", "/v1/var") == writes and cluster.count("POST", "/v1/job") == 0
    assert [cluster.read_variable(f"nomad/jobs/{job}") for job in (STABLE, CANARY)] == [None, None]


def test_cluster_mode_without_a_shared_ledger_is_a_config_error_not_a_local_file(
        fake: FakeNomad, world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    world.push("1.0.0")
    for code, _, err in (delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV),
                         deploy(capsys, world, "--version", "1.0.0"),
                         rollout(capsys, "submit", "alpha@candidate", "--input", str(world.home),
                                 "--out", str(world.home / "out"))):
        assert code == 1 and "DELIVERY_DATABASE_URL is not set" in err
    assert fake.count("PUT", "/v1/var") == 0 and fake.count("POST", "/v1/job") == 0
    assert not (world.home / "ledger.sqlite").exists() and not world.sqlite.exists()


def test_submit_resolves_its_pin_from_the_cluster_state_and_dispatches_there(
        cluster: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    org = world.home.parent / "org" / "alpha"
    org.mkdir(parents=True)
    (org / "biomarker.yaml").write_text(BATCH, encoding="utf-8")
    study = world.home.parent / "study"
    study.mkdir()
    (study / "a.dcm").write_bytes(b"DICM")
    argv = ("submit", "alpha@candidate", "--input", str(study), "--out", str(world.home.parent / "out"),
            "--org", str(org.parent), "--json")
    code, _, err = rollout(capsys, *argv)
    assert code == 1 and "channel candidate of prod points at nothing" in err  # the cluster's state, still empty
    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    assert deploy(capsys, world, "--channel", "candidate")[0] in (0, 3)
    code, answer, err = rollout(capsys, *argv)
    assert code == 0, err
    execution = answer["execution"]
    assert execution["status"] == "dispatched" and execution["digest"] == digest and execution["backend"] == "nomad"
    code, shown, _ = rollout(capsys, "executions", "show", execution["id"], "--json")
    assert code == 0 and shown["digest"] == digest  # the same shared ledger
    assert not world.sqlite.exists() and not (world.home / "ledger.sqlite").exists()


def test_the_api_serves_the_release_state_the_cli_promoted(cluster: FakeNomad, world: World,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from rollout.api.services import services_from_env

    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    services = services_from_env()
    assert services.store.read(ENV, "alpha").state.channels["candidate"].digest == digest
    assert services.ledger.url == os.environ["DELIVERY_DATABASE_URL"]


def test_without_a_cluster_every_command_stays_in_the_embedded_sqlite_files(
        fake: FakeNomad, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    assert SqliteReleaseStore(world.sqlite).read(ENV, "alpha").state.channels["candidate"].digest == digest
    code, status, err = deploy(capsys, world, "--channel", "candidate", "--json")
    assert code in (0, 3), err
    assert status["candidate"]["digest"] == digest
    assert json.loads((world.home / "local-scheduler.json").read_text())  # the local scheduler's record
    assert (world.home / "ledger.sqlite").exists() and compose().rollouts() == [(ENV, "alpha")]
    assert fake.count() == 0


def test_a_config_file_turns_cluster_mode_on_for_every_command(
        fake: FakeNomad, world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = world.home.parent / "delivery.env"
    config.write_text(f"# cluster settings\nexport NOMAD_ADDR={fake.address}\n"
                      f"DELIVERY_DATABASE_URL='sqlite:///{world.home.parent / 'shared.sqlite'}'\n", encoding="utf-8")
    monkeypatch.setenv("DELIVERY_CONFIG", str(config))
    digest = world.push("1.0.0")
    assert delivery(capsys, "promote", "alpha", "1.0.0", "--to", ENV)[0] == 0
    assert NomadReleaseStore(client(fake.address)).read(ENV, "alpha").state.channels["candidate"].digest == digest
    assert not world.sqlite.exists() and (world.home.parent / "shared.sqlite").exists()



def test_paired_candidate_runs_write_on_the_share_in_cluster_mode_and_under_the_home_embedded(
        fake: FakeNomad, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    share = tmp_path / "share"
    assert compose().shadow_root(share / "results") == world.home / "shadow"  # embedded: nothing else can read it
    monkeypatch.setenv("NOMAD_ADDR", fake.address)
    # On a cluster the candidate's task binds the folder on some node: beside the primary outputs, on the share.
    assert compose().shadow_root(share / "results") == share / "results" / ".shadow"
    with pytest.raises(ConfigError, match="shared data volume"):
        compose().shadow_root()  # a folder on this machine only would fail every paired run at its bind mount
    monkeypatch.setenv("DELIVERY_SHADOW_ROOT", str(share / "paired"))
    assert compose().shadow_root() == compose().shadow_root(share / "results") == share / "paired"
