"""When a freeze is in force: expiry and recurring windows (cron + duration + IANA time zone).

Shared by promotion and pin resolution (here) and by the rollout controller (`rollout.freeze`), so a
freeze means the same thing to every command.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from delivery.errors import UsageError
from delivery.release.state import Freeze

_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
MAX_WINDOW_S = 14 * 24 * 3600


def parse_cron(expr: str) -> tuple[frozenset[int], ...]:
    """Five cron fields (minute hour day-of-month month day-of-week; `*`, lists, ranges, steps)."""
    parts = expr.split()
    if len(parts) != 5:
        raise UsageError(f"cron {expr!r} needs 5 fields: minute hour day-of-month month day-of-week")
    return tuple(_field(p, lo, hi, expr) for p, (lo, hi) in zip(parts, _FIELDS, strict=True))


def _field(text: str, lo: int, hi: int, expr: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = lo, hi
            elif "-" in base:
                start, end = (int(x) for x in base.split("-", 1))
            else:
                start = end = int(base)
        except ValueError as e:
            raise UsageError(f"cron {expr!r}: cannot read {item!r}") from e
        if hi == 6 and end == 7:  # Sunday may be written 7, alone or ending a range
            start, end, values = (0, 0, values) if start == 7 else (start, 6, values | {0})
        if not (lo <= start <= end <= hi) or step < 1:
            raise UsageError(f"cron {expr!r}: {item!r} outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def cron_matches(fields: tuple[frozenset[int], ...], when: datetime) -> bool:
    """Whether local time `when` (minute resolution) matches; day-of-month/week OR when both are restricted."""
    minute, hour, dom, month, dow = fields
    if when.minute not in minute or when.hour not in hour or when.month not in month:
        return False
    weekday = (when.weekday() + 1) % 7
    dom_any, dow_any = len(dom) == 31, len(dow) == 7
    if dom_any or dow_any:
        return when.day in dom and weekday in dow
    return when.day in dom or weekday in dow


def window_open(cron: str, duration_s: int, tz: str, now: datetime) -> bool:
    """Whether a window that opens at each cron match (local time in `tz`) and lasts `duration_s` covers `now`."""
    fields, zone = parse_cron(cron), time_zone(tz)
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    # Walk back in real minutes (not wall-clock ones) so a window across a DST jump lasts `duration_s`.
    for minutes_back in range(min(duration_s, MAX_WINDOW_S) // 60 + 1):
        start = minute - timedelta(minutes=minutes_back)
        if cron_matches(fields, start.astimezone(zone)) and (now - start).total_seconds() < duration_s:
            return True
    return False


def time_zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise UsageError(f"unknown time zone {tz!r}", hint="Use an IANA name such as Europe/Amsterdam.") from e


def is_active(freeze: Freeze, now: datetime) -> bool:
    """Not expired, and (for recurring windows) inside a window."""
    if freeze.created_at > now or (freeze.expires_at is not None and now >= freeze.expires_at):
        return False
    if freeze.cron:
        return window_open(freeze.cron, freeze.duration_s or 0, freeze.timezone or "UTC", now)
    return True
