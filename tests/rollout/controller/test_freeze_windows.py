"""The environment file's `freeze_windows` hold rollouts like ad-hoc freezes: deploy refused, progress paused,
break-glass override audited, rollback always allowed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.release.state import SqliteReleaseStore
from rollout import freeze
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from tests.rollout.controller.test_scenarios import batch_to_stable, deploy, feed, run
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Clock, controller

# Clock() starts on Monday 2026-03-02 10:00 UTC: the window opens two hours later.
ENVIRONMENT = f"""\
apiVersion: delivery/v1
kind: Environment
name: {ENV}
registry: local
nomad: {{address: "http://127.0.0.1:4646"}}
freeze_windows:
  - {{name: monday-lunch, days: [mon], start: "12:00", end: "14:00", timezone: UTC}}
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / f"{ENV}.yaml").write_text(ENVIRONMENT, encoding="utf-8")
    monkeypatch.setenv("DELIVERY_ENVIRONMENTS", str(tmp_path / "environments"))
    with FakeNomad() as f:
        yield f


def test_deploy_in_a_window_is_refused_unless_overridden_with_an_audited_reason(fake: FakeNomad,
                                                                              tmp_path: Path) -> None:
    clock = Clock()
    batch_to_stable(fake, tmp_path, clock)  # outside the window: goes ahead
    clock.advance(2.5 * 3600)
    with pytest.raises(freeze.FrozenError, match="freeze window monday-lunch"):
        deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    status = deploy(fake, tmp_path, BATCH, "1.1.0", clock, override="CVE hotfix", audit=audit)
    assert status.freeze_override == "CVE hotfix"
    assert [e.reason for e in audit.events(action="freeze-override")] == ["CVE hotfix"]
    assert run(controller(fake.address, tmp_path, "alpha", clock)).weight == 10


def test_a_window_pauses_a_rollout_in_progress_and_rollback_still_goes_through(fake: FakeNomad,
                                                                             tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    assert run(ctl).weight == 10
    clock.advance(2.5 * 3600)
    feed(stats, clock, "1.1.0", 3)
    paused = run(ctl)
    assert paused.phase == "Paused" and "Frozen" in paused.pause_reasons and paused.weight == 10
    operations.request(SqliteReleaseStore(tmp_path / "release-state.sqlite"), ENV, "alpha", "rollback",
                       now=clock(), reason="numbers drift")
    ended = run(ctl)  # a rollback before promotion ends the rollout as Aborted: nothing routed to the candidate
    assert ended.phase == "Aborted" and ended.weight == 0 and ended.abort_reason == "numbers drift"
