"""Who asked: every operation records its caller as the actor, in the audit log and in the rollout's history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.errors import DeliveryError
from delivery.release.state import SqliteReleaseStore
from rollout import freeze
from rollout.cli import main
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats, PairedOutput
from rollout.controller.loop import Controller
from rollout.scheduler import LocalScheduler
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import ENV, SERVICE, Clock, Verifier, client, controller, manifest, release


def test_operations_record_the_given_actor_in_audit_and_history(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ACTOR", "server-process")
    clock, store = Clock(), SqliteReleaseStore(tmp_path / "release-state.sqlite")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    m = manifest()
    operations.start_rollout(store=store, scheduler=LocalScheduler(tmp_path / "sched.json"), manifest=m,
                             variant="fast", release=release("alpha", "1.0.0"), environment=ENV, now=clock(),
                             actor="api:rm-alice")
    item = freeze.new_freeze(reason="audit week", owner="api:rm-alice", now=clock())
    operations.add_freeze(store, ENV, "alpha", item, audit, actor="api:rm-alice")
    operations.remove_freeze(store, ENV, "alpha", item.id, audit, "done", actor="api:rm-bob")
    status = operations.request(store, ENV, "alpha", "pause", now=clock(), reason="look", actor="api:rm-carol",
                                audit=audit)
    events = audit.events(subject_prefix=f"{ENV}/alpha")
    assert [(e.action, e.actor) for e in events] == [("freeze", "api:rm-alice"), ("unfreeze", "api:rm-bob"),
                                                     ("rollout-pause", "api:rm-carol")]
    assert events[-1].details["rollout"] == status.id and events[-1].reason == "look"
    assert [(e.action, e.actor) for e in status.history] == [("deploy", "api:rm-alice"), ("pause", "api:rm-carol")]


def test_without_an_actor_the_process_identity_is_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ACTOR", "jenkins-bot")
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    operations.add_freeze(store, ENV, "alpha", freeze.new_freeze(reason="r", owner="o", now=Clock()()), audit)
    assert [e.actor for e in audit.events()] == ["jenkins-bot"]


def _feed(stats: InMemoryExecutionStats, clock: Clock, version: str, stable: str, *, volume: float) -> None:
    for i in range(3):
        stats.record("alpha", version, clock(), ok=True, runtime_s=10.0)
        stats.record("alpha", stable, clock(), ok=True, runtime_s=10.0)
        stats.record_pair("alpha", version, stable, clock(),
                          PairedOutput(f"study-{i}", {"volume_ml": volume}, {"volume_ml": 100.0}))


def test_one_rollback_after_an_automatic_rollback_returns_to_the_stable_before(tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    with FakeNomad() as fake:
        nomad = client(fake.address)
        ctl = controller(fake.address, tmp_path, "alpha", clock, stats, store=store)
        for version in ("1.0.0", "1.1.0", "1.2.0"):  # 1.0.0 first, 1.1.0 promoted by hand, 1.2.0 fails a gate
            operations.start_rollout(store=store, scheduler=nomad, manifest=manifest(), variant="fast",
                                     release=release("alpha", version), environment=ENV, now=clock())
            if version == "1.1.0":
                operations.request(store, ENV, "alpha", "promote", now=clock(), reason="sponsor sign-off")
            ctl.run()
            clock.advance(60)
            _feed(stats, clock, version, "1.1.0", volume=120.0)  # 20 % off the stable's volumes
            ended = ctl.run()
        assert ended is not None and ended.phase == "RolledBack" and ended.failure_reason == "GateFailed"
        assert ended.stable is not None and ended.stable.version == "1.1.0"
        operations.request(store, ENV, "alpha", "rollback", now=clock(), reason="1.1.0 miscounts too",
                           actor="rm-alice")
        after = ctl.run()
        job = nomad.job("alpha-fast").value
    assert after is not None and after.phase == "RolledBack" and after.stable is not None
    assert after.stable.version == "1.0.0" and after.history[-2].actor == "rm-alice"
    assert job is not None and job.meta_value("version") == "1.0.0" and job.stable
    assert store.read(ENV, "alpha").state.channels["stable"].version == "1.0.0"
    with pytest.raises(DeliveryError, match=r"no stable version older than 1\.0\.0"):
        operations.request(store, ENV, "alpha", "rollback", now=clock())


def test_after_nomad_auto_reverted_a_service_one_rollback_returns_to_the_stable_before(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    with FakeNomad() as fake:
        nomad = client(fake.address)
        ctl = controller(fake.address, tmp_path, "quicklook", clock, store=store)
        bad = release("quicklook", "1.2.0")
        fake.image_health[f"{bad.image}@{bad.digest}"] = False  # its canary never turns healthy
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            operations.start_rollout(store=store, scheduler=nomad, manifest=manifest(SERVICE), variant="web",
                                     release=release("quicklook", version), environment=ENV, now=clock())
            ended = ctl.run()
        assert ended is not None and ended.phase == "RolledBack" and ended.stable is not None
        assert ended.stable.version == "1.1.0"
        operations.request(store, ENV, "quicklook", "rollback", now=clock(), reason="1.1.0 too")
        after = ctl.run()
        job = nomad.job("quicklook-web").value
    assert after is not None and after.phase == "RolledBack" and after.stable is not None
    assert after.stable.version == "1.0.0"
    assert job is not None and job.meta_value("version") == "1.0.0"


def test_rollout_rollback_is_the_one_command_back_after_an_automatic_rollback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    for var in ("NOMAD_ADDR", "DELIVERY_DATABASE_URL", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(home))
    monkeypatch.setenv("DELIVERY_ENV", ENV)
    clock, stats = Clock(), InMemoryExecutionStats()
    store, scheduler = SqliteReleaseStore(home / "release-state.sqlite"), LocalScheduler(home / "local-scheduler.json")
    ctl = Controller(environment=ENV, biomarker="alpha", scheduler=scheduler, store=store, verifier=Verifier(),
                     stats=stats, clock=clock)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        operations.start_rollout(store=store, scheduler=scheduler, manifest=manifest(), variant="fast",
                                 release=release("alpha", version), environment=ENV, now=clock())
        if version == "1.1.0":
            operations.request(store, ENV, "alpha", "promote", now=clock())
        ctl.run()
        clock.advance(60)
        _feed(stats, clock, version, "1.1.0", volume=120.0)
        ctl.run()
    assert main(["rollback", "alpha", "--reason", "1.1.0 miscounts too", "--json"]) == 1  # 1: rolled back
    shown = json.loads(capsys.readouterr().out)
    job = scheduler.job("alpha-fast").value
    assert shown["phase"] == "RolledBack" and shown["stable"]["version"] == "1.0.0"
    assert job is not None and job.meta_value("version") == "1.0.0"
