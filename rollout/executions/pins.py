"""Pin resolution for executions: freezes and trial cohorts first, then channels, exact versions and digests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from delivery.registry import RegistryClient
from delivery.release.resolve import ResolveError, resolve
from delivery.release.state import Freeze, ReleaseState, ReleaseStore
from rollout.executions.model import ExecutionError, Resolved

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
CHANNEL = re.compile(r"^[a-z][a-z0-9-]*$")


class PinError(ExecutionError):
    """The pin cannot be resolved, or conflicts with a freeze that holds."""


class PinResolver(Protocol):
    """Turns `NAME@SPEC` into an exact build (the release issue's `resolve` plugs in here)."""

    def resolve(self, biomarker: str, spec: str, *, environment: str, image_repository: str) -> Resolved: ...


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
    """The release issue's `delivery.release.resolve` (channels, env-wide freezes, versions, ranges, digests, yanks),
    plus the attestation digest stored beside the image."""

    def __init__(self, registry: RegistryClient, store: ReleaseStore) -> None:
        self._registry = registry
        self._store = store

    def resolve(self, biomarker: str, spec: str, *, environment: str, image_repository: str) -> Resolved:
        """Resolve one spec; raises PinError when nothing satisfies it."""
        try:
            found = resolve(biomarker, spec, environment=environment, registry=self._registry, store=self._store,
                            image_repository=image_repository)
        except ResolveError as e:
            raise PinError(e.message, hint=e.hint) from e
        attestation = self._registry.head_manifest(image_repository, f"sha256-{found.digest.split(':', 1)[1]}.att")
        return Resolved(found.reference, found.version, found.digest, found.rule, attestation, found.warnings)
