"""Freezes: ad-hoc (reason, owner, expiry, optional version pin) and recurring windows (cron + duration + tz).

A freeze without a cohort blocks new candidates and promotions; one with a cohort is a trial pin: it
only makes resolution for that cohort stick to its version. Rollback is never blocked.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from delivery.environments import FreezeWindow, environments_dir, load_environment
from delivery.errors import DeliveryError, UsageError
from delivery.release.freezes import MAX_WINDOW_S, is_active, parse_cron, time_zone, window_open
from delivery.release.state import Freeze, ReleaseState

__all__ = ["MAX_WINDOW_S", "FrozenError", "WindowSource", "blocking", "describe", "environment_windows", "is_active",
           "new_freeze", "parse_cron", "pinned_version", "window_open"]

WindowSource = Callable[[str], tuple[FreezeWindow, ...]]

class FrozenError(DeliveryError):
    """A freeze blocks this action; `--override-freeze --reason` is the audited way through."""


def blocking(state: ReleaseState, now: datetime, windows: Sequence[FreezeWindow] = ()) -> tuple[Freeze, ...]:
    """Active freezes that block candidates and promotions (trial pins with a cohort do not), plus the
    environment file's freeze windows open at `now`, as freezes (so describing and overriding them is the same)."""
    adhoc = tuple(f for f in state.freezes if f.cohort is None and is_active(f, now))
    return adhoc + tuple(_window_freeze(state.environment, w, now) for w in windows if w.active(now))


def _window_freeze(environment: str, window: FreezeWindow, now: datetime) -> Freeze:
    days = ",".join(window.days)
    return Freeze(id=f"window-{window.name}", owner=f"environments/{environment}.yaml", created_at=now,
                  reason=f"freeze window {window.name} ({days} {window.start}-{window.end} {window.timezone})")


def environment_windows(environment: str) -> tuple[FreezeWindow, ...]:
    """The `freeze_windows` of `manifests/environments/<environment>.yaml` (none when the file does not exist)."""
    path = environments_dir() / f"{environment}.yaml"
    if not path.is_file():
        return ()
    return _windows(str(path), environment, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _windows(path: str, environment: str, _mtime_ns: int) -> tuple[FreezeWindow, ...]:
    """Read once per file version: the controller asks on every pass."""
    return tuple(load_environment(environment, Path(path).parent).freeze_windows)


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
        time_zone(timezone or "UTC")
        if not duration_s or duration_s <= 0 or duration_s > MAX_WINDOW_S:
            raise UsageError("a recurring freeze needs --duration between 1 minute and 14 days")
    return Freeze(id=uuid.uuid4().hex[:12], reason=reason, owner=owner, created_at=now, expires_at=expires_at,
                  version=version, cohort=cohort, cron=cron, duration_s=duration_s, timezone=timezone)


def describe(freezes: tuple[Freeze, ...]) -> str:
    """One line per freeze for error messages."""
    return "; ".join(f"{f.id} by {f.owner}: {f.reason}" for f in freezes)
