"""Freezes: ad-hoc (reason, owner, expiry, optional version pin) and recurring windows (cron + duration + tz).

A freeze without a cohort blocks new candidates and promotions; one with a cohort is a trial pin: it
only makes resolution for that cohort stick to its version. Rollback is never blocked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from delivery.errors import DeliveryError, UsageError
from delivery.release.state import Freeze, ReleaseState

_FIELDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
MAX_WINDOW_S = 14 * 24 * 3600


class FrozenError(DeliveryError):
    """A freeze blocks this action; `--override-freeze --reason` is the audited way through."""


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
    fields, zone = parse_cron(cron), _zone(tz)
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    # Walk back in real minutes (not wall-clock ones) so a window across a DST jump lasts `duration_s`.
    for minutes_back in range(min(duration_s, MAX_WINDOW_S) // 60 + 1):
        start = minute - timedelta(minutes=minutes_back)
        if cron_matches(fields, start.astimezone(zone)) and (now - start).total_seconds() < duration_s:
            return True
    return False


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise UsageError(f"unknown time zone {tz!r}", hint="Use an IANA name such as Europe/Amsterdam.") from e


def is_active(freeze: Freeze, now: datetime) -> bool:
    """Not expired, and (for recurring windows) inside a window."""
    if freeze.expires_at is not None and now >= freeze.expires_at:
        return False
    if freeze.cron:
        return window_open(freeze.cron, freeze.duration_s or 0, freeze.timezone or "UTC", now)
    return True


def blocking(state: ReleaseState, now: datetime) -> tuple[Freeze, ...]:
    """Active freezes that block candidates and promotions (trial pins with a cohort do not)."""
    return tuple(f for f in state.freezes if f.cohort is None and is_active(f, now))


def pinned_version(state: ReleaseState, now: datetime, cohort: str | None = None) -> str | None:
    """The version resolution must stick to: a cohort's trial pin first, else a blocking freeze's pin."""
    active = [f for f in state.freezes if f.version and is_active(f, now)]
    for f in active:
        if cohort is not None and f.cohort == cohort:
            return f.version
    return next((f.version for f in active if f.cohort is None), None)


def new_freeze(*, reason: str, owner: str, now: datetime, expires_at: datetime | None = None,
               version: str | None = None, cohort: str | None = None, cron: str | None = None,
               duration_s: int | None = None, timezone: str | None = None) -> Freeze:
    """A validated freeze (cron and zone parsed now, so a bad window never reaches the store)."""
    if not reason.strip() or not owner.strip():
        raise UsageError("a freeze needs a --reason and an --owner")
    if cron:
        parse_cron(cron)
        _zone(timezone or "UTC")
        if not duration_s or duration_s <= 0 or duration_s > MAX_WINDOW_S:
            raise UsageError("a recurring freeze needs --duration between 1 minute and 14 days")
    return Freeze(id=uuid.uuid4().hex[:12], reason=reason, owner=owner, created_at=now, expires_at=expires_at,
                  version=version, cohort=cohort, cron=cron, duration_s=duration_s, timezone=timezone)


def describe(freezes: tuple[Freeze, ...]) -> str:
    """One line per freeze for error messages."""
    return "; ".join(f"{f.id} by {f.owner}: {f.reason}" for f in freezes)
