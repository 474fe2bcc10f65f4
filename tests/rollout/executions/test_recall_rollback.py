"""A recall rolls the version back through the real rollout controller (embedded default scheduler)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.controller.loop import load_status
from rollout.executions.rollback import ControllerRollback, RollbackIncomplete
from tests.support.executions_rollouts import Rollouts

ENVS = ("prod", "hospital-b")


@pytest.fixture
def rollouts(tmp_path: Path) -> Rollouts:
    return Rollouts(tmp_path / "prod-scheduler.json", tmp_path / "release-state.sqlite",
                    {"hospital-b": tmp_path / "hospital-b-scheduler.json"})


def _rollback(r: Rollouts) -> ControllerRollback:
    return ControllerRollback(r.store, ENVS, r.controller, clock=r.clock)


def _job(r: Rollouts, environment: str, job: str) -> tuple[str | None, bool]:
    view = r.scheduler(environment).job(job).value
    assert view is not None
    return view.meta_value("version"), view.stop


def test_recall_stops_a_candidate_mid_rollout_and_reverts_a_promoted_one(rollouts: Rollouts) -> None:
    r = rollouts
    for env in ENVS:
        assert r.deploy(env, "1.0.0", promote=True) == "Succeeded"
    assert r.deploy("prod", "1.1.0") == "Progressing"  # canary at 10 %, waiting on executions
    assert r.deploy("hospital-b", "1.1.0", promote=True) == "Succeeded"  # promoted: 1.1.0 is stable there
    lines = _rollback(r).rollback("alpha", "1.1.0", "left lung off by a third")
    assert len(lines) == 2 and all("rolled back alpha 1.1.0" in line for line in lines)
    assert r.phase("prod") == ("Aborted", "1.0.0")  # the candidate never became stable there
    assert _job(r, "prod", "alpha-fast-canary") == ("1.1.0", True)  # its track is stopped
    assert _job(r, "prod", "alpha-fast") == ("1.0.0", False)
    assert r.phase("hospital-b") == ("RolledBack", "1.0.0")
    assert _job(r, "hospital-b", "alpha-fast") == ("1.0.0", False)  # the stable track reverted
    history = load_status(r.store.read("prod", "alpha").state).history  # type: ignore[union-attr]
    assert any("recall: left lung off by a third" in e.message for e in history)


def test_a_version_not_rolled_out_is_left_alone(rollouts: Rollouts) -> None:
    rollouts.deploy("prod", "1.0.0", promote=True)
    lines = _rollback(rollouts).rollback("alpha", "0.9.0", "old")
    assert lines == [f"0.9.0 is not rolled out in {env}; nothing to roll back" for env in ENVS]
    assert rollouts.phase("prod") == ("Succeeded", "1.0.0")


def test_a_stable_with_nothing_older_is_reported_not_hidden(rollouts: Rollouts) -> None:
    rollouts.deploy("prod", "1.0.0", promote=True)
    rollouts.deploy("hospital-b", "1.0.0", promote=True)
    rollouts.deploy("hospital-b", "1.1.0")  # 1.0.0 stays stable under this rollout
    with pytest.raises(RollbackIncomplete) as raised:
        _rollback(rollouts).rollback("alpha", "1.0.0", "bad")
    assert "hospital-b" in raised.value.message and "no older version" in raised.value.message
    assert "prod: there is no previous stable version" in raised.value.message
    assert raised.value.done == []  # prod: 1.0.0 is its first version; the controller refuses, reported too
