"""Freezes: cron windows in a named time zone (across DST), expiry, trial pins, validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from delivery.errors import UsageError
from delivery.release.state import ReleaseState
from rollout import freeze

AMS = "Europe/Amsterdam"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_friday_evening_window_follows_local_time_across_dst() -> None:
    # 18:00 Amsterdam is 17:00 UTC in winter (CET) and 16:00 UTC in summer (CEST)
    winter, summer = utc(2026, 3, 20, 17, 0), utc(2026, 4, 3, 16, 0)
    for start in (winter, summer):
        assert not freeze.window_open("0 18 * * 5", 3600, AMS, start - timedelta(minutes=1))
        assert freeze.window_open("0 18 * * 5", 3600, AMS, start)
        assert freeze.window_open("0 18 * * 5", 3600, AMS, start + timedelta(minutes=59))
        assert not freeze.window_open("0 18 * * 5", 3600, AMS, start + timedelta(minutes=60))
    assert not freeze.window_open("0 18 * * 5", 3600, AMS, utc(2026, 4, 3, 17, 30))  # UTC-naive reading would say open


def test_window_spanning_the_spring_forward_night_lasts_its_real_duration() -> None:
    # Saturday 2026-03-28 22:00 CET = 21:00 UTC; clocks jump 02:00 -> 03:00 on Sunday; 8 h of real time
    start = utc(2026, 3, 28, 21, 0)
    assert freeze.window_open("0 22 * * 6", 8 * 3600, AMS, start + timedelta(hours=7, minutes=59))
    assert not freeze.window_open("0 22 * * 6", 8 * 3600, AMS, start + timedelta(hours=8))


def test_weekend_window_spans_days_and_lists_ranges_steps_work() -> None:
    weekend = ("0 18 * * 5", 62 * 3600)  # Friday 18:00 to Monday 08:00
    assert freeze.window_open(*weekend, "UTC", utc(2026, 3, 22, 12, 0))  # Sunday noon
    assert not freeze.window_open(*weekend, "UTC", utc(2026, 3, 23, 8, 0))  # Monday 08:00: over
    assert freeze.window_open("*/15 9-17 * * 1-5", 60, "UTC", utc(2026, 3, 23, 9, 45))
    assert not freeze.window_open("*/15 9-17 * * 1-5", 60, "UTC", utc(2026, 3, 23, 9, 46))
    assert freeze.window_open("0 0 * * 7", 60, "UTC", utc(2026, 3, 22, 0, 0))  # 7 is Sunday too


def test_expiry_ends_a_freeze_and_only_uncohorted_freezes_block() -> None:
    now = utc(2026, 3, 2, 10, 0)
    expiring = freeze.new_freeze(reason="incident", owner="rm", now=now, expires_at=now + timedelta(hours=2))
    pin = freeze.new_freeze(reason="trial", owner="qa", now=now, version="1.4.2", cohort="nct-1")
    state = ReleaseState(environment="prod", biomarker="alpha", freezes=(expiring, pin))
    assert freeze.blocking(state, now) == (expiring,)
    assert freeze.blocking(state, now + timedelta(hours=2)) == ()
    assert freeze.is_active(expiring, now + timedelta(hours=1, minutes=59))
    assert freeze.pinned_version(state, now, cohort="nct-1") == "1.4.2"
    assert freeze.pinned_version(state, now) is None  # a trial pin only holds its own cohort


def test_recurring_freeze_blocks_only_inside_its_window() -> None:
    now = utc(2026, 3, 20, 17, 30)  # Friday 18:30 in Amsterdam
    window = freeze.new_freeze(reason="weekend", owner="rm", now=now, cron="0 18 * * 5", duration_s=3600,
                               timezone=AMS, version="1.0.0")
    state = ReleaseState(environment="prod", biomarker="alpha", freezes=(window,))
    assert freeze.blocking(state, now) == (window,) and freeze.pinned_version(state, now) == "1.0.0"
    assert freeze.blocking(state, now + timedelta(hours=1)) == ()


@pytest.mark.parametrize(("cron", "duration", "tz", "message"), [
    ("0 18 * *", 60, "UTC", "5 fields"),
    ("61 18 * * 5", 60, "UTC", "outside"),
    ("x 18 * * 5", 60, "UTC", "cannot read"),
    ("0 18 * * 5", 60, "Mars/Olympus", "time zone"),
    ("0 18 * * 5", 0, "UTC", "--duration"),
    ("0 18 * * 5", 15 * 24 * 3600, "UTC", "--duration"),
])
def test_bad_windows_never_reach_the_store(cron: str, duration: int, tz: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        freeze.new_freeze(reason="r", owner="o", now=utc(2026, 1, 1), cron=cron, duration_s=duration, timezone=tz)


def test_a_freeze_needs_a_reason_and_an_owner() -> None:
    with pytest.raises(UsageError, match="reason"):
        freeze.new_freeze(reason=" ", owner="o", now=utc(2026, 1, 1))
