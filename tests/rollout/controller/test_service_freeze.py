"""A freeze holds a service rollout's weight steps too, not only batch ones (routing reads the weight)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout import freeze
from rollout.controller import operations
from rollout.controller.decide import Register
from tests.rollout.controller.test_scenarios import deploy, run
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import ENV, SERVICE, Clock, controller

WEIGHTED = SERVICE.replace("  steps:\n", "  steps:\n    - set_weight: 50\n")


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def test_a_freeze_added_after_the_canary_is_placed_holds_the_weight_step(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, WEIGHTED, "1.0.0", clock)
    assert run(controller(fake.address, tmp_path, "quicklook", clock)).phase == "Succeeded"
    deploy(fake, tmp_path, WEIGHTED, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "quicklook", clock)
    while not isinstance(ctl.step().action, Register):  # verified, candidate version registered
        pass
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    operations.add_freeze(store, ENV, "quicklook", freeze.new_freeze(reason="release freeze", owner="rm",
                                                                     now=clock()), None)
    held = run(ctl)
    assert held.phase == "Paused" and "Frozen" in held.pause_reasons and held.weight == 0
    assert held.step_index == 0
