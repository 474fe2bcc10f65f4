"""The controller service is the one actor: while a replica holds a live leader lock, `rollout resume` (like
deploy, promote, pause, abort, rollback) only writes its request and says who will act; with no controller running
the command acts itself, as it always did (the embedded default and scripts/demo rely on it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.release.state import ReleaseStore, SqliteReleaseStore
from rollout.cli import main
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.leader import LOCK_PATH, FileLease, NomadLease
from rollout.controller.loop import Controller
from rollout.nomad_state import NomadReleaseStore
from rollout.scheduler import LocalScheduler, Scheduler
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Verifier, client, manifest, release

JOB = "alpha-fast"  # the first version of a batch biomarker becomes its stable parent job directly


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL",
                "DELIVERY_PUBLIC_KEY", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_ENV", ENV)
    return tmp_path / "home"


@pytest.fixture
def fake(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{home.parent / 'shared-ledger.sqlite'}")
    with FakeNomad() as f:
        yield f


def paused_rollout(store: ReleaseStore, scheduler: Scheduler) -> None:
    """A batch rollout as `rollout deploy` records it, its attestation checked, paused before any job exists."""
    m = manifest(BATCH)
    operations.start_rollout(store=store, scheduler=scheduler, manifest=m, variant="fast",
                             release=release(m.name, "1.0.0"), environment=ENV, now=now())
    Controller(environment=ENV, biomarker=m.name, scheduler=scheduler, store=store, verifier=Verifier(),
               stats=InMemoryExecutionStats(), clock=now).step()
    operations.request(store, ENV, m.name, "pause", now=now(), reason="look first")


def resume(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, dict[str, object], str]:
    code = main(["resume", "alpha", "--json", *flags])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_with_a_live_controller_resume_writes_the_request_and_leaves_the_acting_to_it(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    paused_rollout(store, client(fake.address))
    assert NomadLease(client(fake.address), identity="replica-1").acquire()
    registered = fake.count("POST", "/v1/job") + fake.count("PUT", "/v1/job")
    code, status, err = resume(capsys, "--nomad-addr", fake.address)
    assert code == 0 and status["phase"] == "Progressing" and status["pause_reasons"] == []
    assert "controller service (replica-1)" in err and "rollout watch alpha" in err
    assert fake.count("POST", "/v1/job") + fake.count("PUT", "/v1/job") == registered
    assert client(fake.address).job(JOB).value is None


def test_without_a_controller_resume_acts_itself(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    paused_rollout(store, client(fake.address))
    code, status, err = resume(capsys, "--nomad-addr", fake.address)
    assert code == 0 and "controller service" not in err
    assert client(fake.address).job(JOB).value is not None  # registered by this command
    assert status["phase"] == "Succeeded"  # the first version: nothing to compare a canary against


def test_an_expired_lock_is_no_controller(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    paused_rollout(store, client(fake.address))
    assert NomadLease(client(fake.address), identity="crashed", clock=lambda: now().timestamp() - 3600).acquire()
    code, _, err = resume(capsys, "--nomad-addr", fake.address)
    assert code == 0 and "crashed" not in err
    assert client(fake.address).job(JOB).value is not None


def test_embedded_a_controller_on_this_machine_acts_and_none_means_the_command_does(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = SqliteReleaseStore(home / "release-state.sqlite")
    scheduler = LocalScheduler(home / "local-scheduler.json")
    paused_rollout(store, scheduler)
    service = FileLease(home / "controller.lock", identity="controller-on-this-host")
    assert service.acquire()
    code, _, err = resume(capsys)
    assert code == 0 and "controller service (controller-on-this-host)" in err
    assert scheduler.job(JOB).value is None
    service.release()
    code, _, err = resume(capsys)
    assert code == 0 and "controller service" not in err
    assert scheduler.job(JOB).value is not None


def test_a_lock_the_token_cannot_read_stops_the_command_before_it_writes(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    paused_rollout(store, client(fake.address))
    before = store.read(ENV, "alpha")
    fake.inject("GET", f"^/v1/var/{LOCK_PATH}$", status=403, text="Permission denied", times=10)
    code = main(["resume", "alpha", "--nomad-addr", fake.address])
    err = capsys.readouterr().err
    assert code == 1 and LOCK_PATH in err and "Permission denied" in err and "Nothing was written" in err
    assert store.read(ENV, "alpha") == before and client(fake.address).job(JOB).value is None
