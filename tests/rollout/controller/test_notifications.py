"""Rollout phase changes people act on are announced once each to the configured webhook receivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from tests.rollout.controller.test_scenarios import batch_to_stable, deploy, feed, run
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Clock, controller
from tests.support.notify_receiver import Receiver, notify_receiver

SECRET = "rollout-hook-secret"


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with notify_receiver(SECRET) as r:
        monkeypatch.setenv("DELIVERY_NOTIFY_URLS", r.url)
        monkeypatch.setenv("DELIVERY_NOTIFY_SECRET", SECRET)
        monkeypatch.delenv("DELIVERY_NOTIFY_SECRET_ENV", raising=False)
        monkeypatch.delenv("DELIVERY_NOTIFIERS", raising=False)
        yield r


def test_success_and_a_gate_rollback_are_each_announced_once(fake: FakeNomad, tmp_path: Path,
                                                             receiver: Receiver) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    run(ctl)
    clock.advance(60)
    feed(stats, clock, "1.1.0", 3, volume=120.0)  # outside the equivalence tolerance
    assert run(ctl).phase == "RolledBack"
    assert receiver.events() == ["rollout-succeeded", "rollout-rolledback"]
    rolled_back = receiver.received[-1].body
    assert rolled_back["subject"] == f"{ENV}/alpha"
    assert rolled_back["details"]["candidate"] == "1.1.0" and rolled_back["details"]["failure_reason"] == "GateFailed"


def test_a_manual_pause_and_abort_are_announced(fake: FakeNomad, tmp_path: Path, receiver: Receiver) -> None:
    clock = Clock()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    operations.request(store, ENV, "alpha", "pause", now=clock(), reason="look first", actor="rm-carol")
    operations.request(store, ENV, "alpha", "pause", now=clock(), reason="still looking", actor="rm-carol")
    operations.request(store, ENV, "alpha", "abort", now=clock(), reason="wrong build", actor="rm-carol")
    assert run(controller(fake.address, tmp_path, "alpha", clock)).phase == "Aborted"
    assert receiver.events() == ["rollout-succeeded", "rollout-paused", "rollout-aborted"]
    paused = receiver.received[1].body
    assert paused["actor"] == "rm-carol" and paused["reason"] == "look first"


def test_a_down_receiver_does_not_stop_a_rollout(fake: FakeNomad, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_NOTIFY_URLS", "http://127.0.0.1:9/never")
    monkeypatch.setenv("DELIVERY_NOTIFY_SECRET", SECRET)
    monkeypatch.setattr("time.sleep", lambda _: None)
    batch_to_stable(fake, tmp_path, Clock())
