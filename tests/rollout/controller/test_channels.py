"""Channels follow the rollout: `@candidate`/`@stable` pins and execution routing mean what actually runs."""

from __future__ import annotations

from pathlib import Path

from delivery.release.state import SqliteReleaseStore
from rollout.controller.gates import InMemoryExecutionStats
from tests.rollout.controller.test_scenarios import batch_to_stable, deploy, feed, run
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Clock, controller


def _channels(tmp: Path) -> dict[str, str]:
    state = SqliteReleaseStore(tmp / "release-state.sqlite").read(ENV, "alpha").state
    return {name: pin.version for name, pin in state.channels.items()}


def test_candidate_channel_during_the_rollout_and_stable_after_promotion(tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    with FakeNomad() as fake:
        batch_to_stable(fake, tmp_path, clock)
        assert _channels(tmp_path) == {"candidate": "1.0.0", "stable": "1.0.0"}
        deploy(fake, tmp_path, BATCH, "1.1.0", clock)
        ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
        run(ctl)
        assert _channels(tmp_path) == {"candidate": "1.1.0", "stable": "1.0.0"}
        for _ in range(2):
            clock.advance(60)
            feed(stats, clock, "1.1.0", 3)
            run(ctl)
        assert _channels(tmp_path) == {"candidate": "1.1.0", "stable": "1.1.0"}


def test_a_rolled_back_candidate_leaves_no_candidate_channel(tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    with FakeNomad() as fake:
        batch_to_stable(fake, tmp_path, clock)
        deploy(fake, tmp_path, BATCH, "1.1.0", clock)
        ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
        run(ctl)
        clock.advance(60)
        feed(stats, clock, "1.1.0", 3, volume=120.0)
        assert run(ctl).phase == "RolledBack"
        assert _channels(tmp_path) == {"stable": "1.0.0"}
