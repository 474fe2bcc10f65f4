"""A freeze means the same thing to promotion, resolution and the controller: recurring windows included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from delivery.release.freezes import is_active
from delivery.release.resolve import active_freezes
from delivery.release.state import Freeze

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def _window(**extra: object) -> Freeze:
    fields = {"id": "w1", "reason": "no releases on Friday evening", "owner": "rm", "created_at": CREATED,
              "cron": "0 18 * * 5", "duration_s": 4 * 3600, "timezone": "Europe/Amsterdam"} | extra
    return Freeze.model_validate(fields)


def test_recurring_window_blocks_promotion_inside_the_window_only() -> None:
    friday_evening = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 18:30 in Amsterdam
    saturday = friday_evening + timedelta(days=1)
    assert active_freezes([_window()], friday_evening) == [_window()]
    assert active_freezes([_window()], saturday) == []


def test_cohort_freeze_pins_executions_but_does_not_block_promotion() -> None:
    trial = Freeze(id="t1", reason="trial", owner="rm", created_at=CREATED, version="1.0.0", cohort="trial-42")
    assert is_active(trial, CREATED + timedelta(days=1))
    assert active_freezes([trial], CREATED + timedelta(days=1)) == []


def test_expired_and_future_freezes_are_not_in_force() -> None:
    adhoc = Freeze(id="a1", reason="audit", owner="rm", created_at=CREATED, expires_at=CREATED + timedelta(hours=1))
    assert active_freezes([adhoc], CREATED + timedelta(minutes=30)) == [adhoc]
    assert active_freezes([adhoc], CREATED + timedelta(hours=2)) == []
    assert active_freezes([adhoc], CREATED - timedelta(minutes=1)) == []
