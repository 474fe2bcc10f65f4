"""Pin resolution for executions: freezes and trial cohorts first, then channels, exact versions and digests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from delivery.registry import RegistryClient
from delivery.release.resolve import RegistryView, ReleaseView, ResolveError, choose, gather_registry
from delivery.release.state import Freeze, ReleaseState
from rollout.executions.model import ExecutionError, Resolved

SEMVER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
CHANNEL = re.compile(r"^[a-z][a-z0-9-]*$")


class PinError(ExecutionError):
    """The pin cannot be resolved, or conflicts with a freeze that holds."""


class YankedVersion(PinError):
    """The pin resolved to a yanked (recalled) version and the submission carries no override."""


def refuse_yanked(resolved: Resolved, biomarker: str, override: str | None) -> Resolved:
    """Yanked means recalled: a yanked answer runs only with an override reason (recorded with the execution)."""
    yank = resolved.yanked
    if yank is None or override:
        return resolved
    raise YankedVersion(f"{biomarker} {resolved.version} is yanked (recalled by {yank.actor} at "
                        f"{yank.at:%Y-%m-%d %H:%M}Z: {yank.reason!r}); refusing to run it",
                        hint="Pin another version. To run it anyway, pass --allow-yanked --reason TEXT "
                             "(API: allow_yanked and reason); the override is recorded in the ledger and "
                             "provenance.json.")


def yank_override(resolved: Resolved, reason: str | None, actor: str) -> dict[str, str] | None:
    """What the ledger and provenance.json say about running a yanked version anyway (None when not yanked)."""
    yank = resolved.yanked
    if yank is None or not reason:
        return None
    return {"version": resolved.version, "digest": resolved.digest, "yanked_by": yank.actor,
            "yanked_at": yank.at.isoformat(), "yank_reason": yank.reason, "overridden_by": actor,
            "override_reason": reason}


class PinResolver(Protocol):
    """Turns `NAME@SPEC` into an exact build (the release issue's `resolve` plugs in here)."""

    def resolve(self, spec: str, *, release: ReleaseState, image_repository: str) -> Resolved:
        """`release` is the state the caller read once for this submission (biomarker, environment, channels,
        freezes), so the pin, the route and the freeze checks all judge the same snapshot."""


def binding_freeze(state: ReleaseState, cohort: str | None, now: datetime) -> Freeze | None:
    """The trial cohort's own version freeze, if one holds (environment-wide freezes are `resolve`'s)."""
    own = [f for f in _live(state.freezes, now) if cohort and f.cohort == cohort]
    return max(own, key=lambda f: f.created_at, default=None)


def environment_frozen(state: ReleaseState, now: datetime) -> bool:
    """An environment-wide version freeze holds: no study is routed to a candidate."""
    return any(f.cohort is None for f in _live(state.freezes, now))


def _live(freezes: Iterable[Freeze], now: datetime) -> list[Freeze]:
    return [f for f in freezes if f.version and f.cron is None and f.created_at <= now
            and (f.expires_at is None or f.expires_at > now)]


def frozen_spec(spec: str, freeze: Freeze) -> str:
    """The spec a frozen submission really resolves: the frozen version; an explicit other version is refused."""
    assert freeze.version is not None
    if SEMVER.match(spec) and spec != freeze.version:
        who = f"cohort {freeze.cohort}" if freeze.cohort else "this environment"
        raise PinError(f"{who} is frozen at {freeze.version} (freeze {freeze.id}: {freeze.reason}); "
                       f"refusing to run {spec}",
                       hint=f"Submit with @{freeze.version} or @stable, or ask {freeze.owner} to lift the freeze.")
    return freeze.version


def is_channel(spec: str) -> bool:
    """`stable`, `candidate`, …: a name that moves, as opposed to a version or digest."""
    return bool(CHANNEL.match(spec))


class RegistryPinResolver:
    """The release issue's rules (`delivery.release.resolve.choose`: channels, env-wide freezes, versions, ranges,
    digests, yanks) plus the attestation digest stored beside the image.

    Release tags are immutable, so the registry's view (tags, yanks) is reused for `cache_s` seconds: a burst of
    submissions costs one registry round trip, and a new yank is seen within `cache_s`. Channels and freezes come
    from the release state the caller read for this submission; nothing of it is kept between calls.
    """

    def __init__(self, registry: RegistryClient, *, cache_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registry, self._cache_s, self._clock = registry, cache_s, clock
        self._views: dict[str, tuple[float, RegistryView]] = {}
        self._attestations: dict[str, tuple[float, str | None]] = {}
        # One fetch per key at a time: a burst of submissions on a cold cache waits for one registry round trip
        # instead of each making its own (that burst was the API's POST p99).
        self._guard = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def resolve(self, spec: str, *, release: ReleaseState, image_repository: str) -> Resolved:
        """Resolve one spec; raises PinError when nothing satisfies it."""
        view = ReleaseView(release.environment, dict(release.channels), tuple(release.freezes))
        try:
            found = choose(spec, self._view(image_repository), view, datetime.now(UTC))
        except ResolveError as e:
            raise PinError(e.message, hint=e.hint) from e
        attestation = self._attestation(image_repository, found.digest)
        return Resolved(found.reference, found.version, found.digest, found.rule, attestation, found.warnings,
                        found.yanked)

    def _view(self, repository: str) -> RegistryView:
        cached = self._views.get(repository)
        if cached is not None and self._clock() - cached[0] <= self._cache_s:
            return cached[1]
        with self._lock_for(f"view:{repository}"):
            cached = self._views.get(repository)  # another thread may have fetched it while this one waited
            if cached is None or self._clock() - cached[0] > self._cache_s:
                cached = (self._clock(), gather_registry(self._registry, repository))
                self._views[repository] = cached
        return cached[1]

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._fetching.setdefault(key, threading.Lock())

    def _attestation(self, repository: str, digest: str) -> str | None:
        key = f"{repository}@{digest}"
        cached = self._attestations.get(key)
        # A present attestation never changes; an absent one may appear, so it is asked again after cache_s.
        if cached is not None and (cached[1] is not None or self._clock() - cached[0] <= self._cache_s):
            return cached[1]
        with self._lock_for(f"attestation:{key}"):
            cached = self._attestations.get(key)
            if cached is None or (cached[1] is None and self._clock() - cached[0] > self._cache_s):
                tag = f"sha256-{digest.split(':', 1)[1]}.att"
                cached = (self._clock(), self._registry.head_manifest(repository, tag))
                self._attestations[key] = cached
        return cached[1]
