"""Who asked: every operation records its caller as the actor, in the audit log and in the rollout's history."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.release.state import SqliteReleaseStore
from rollout import freeze
from rollout.controller import operations
from rollout.scheduler import LocalScheduler
from tests.support.nomad_world import ENV, Clock, manifest, release


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
