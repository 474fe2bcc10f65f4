"""Pin resolution for executions: freezes and trial cohorts first, then channels, exact versions and digests."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

from delivery.registry import RegistryClient
from delivery.release.state import ChannelPin, Freeze, ReleaseState, ReleaseStore
from rollout.executions.model import ExecutionError, Resolved

SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
CHANNEL = re.compile(r"^[a-z][a-z0-9-]*$")


class PinError(ExecutionError):
    """The pin cannot be resolved, or conflicts with a freeze that holds."""


class PinResolver(Protocol):
    """Turns `NAME@SPEC` into an exact build (the release issue's `resolve` plugs in here)."""

    def resolve(self, biomarker: str, spec: str, *, environment: str, image_repository: str) -> Resolved: ...


def binding_freeze(state: ReleaseState, cohort: str | None, now: datetime) -> Freeze | None:
    """The freeze whose version pin binds this submission: the cohort's own first, then an environment-wide one."""
    live = [f for f in state.freezes if f.version and (f.expires_at is None or f.expires_at > now)]
    own = [f for f in live if cohort and f.cohort == cohort]
    everyone = [f for f in live if f.cohort is None]
    found = own or everyone
    return found[0] if found else None


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
    """Channels from the release store, exact versions and digests from the registry; attestation looked up too.

    Semver ranges (`~1.4`, `^1`) are the release issue's `delivery.release.resolve`; until it lands they are refused.
    """

    def __init__(self, registry: RegistryClient, store: ReleaseStore) -> None:
        self._registry = registry
        self._store = store

    def resolve(self, biomarker: str, spec: str, *, environment: str, image_repository: str) -> Resolved:
        """Resolve one spec; raises PinError when it names nothing."""
        if DIGEST.match(spec):
            return self._by_digest(spec, image_repository)
        if SEMVER.match(spec):
            return self._by_version(spec, image_repository, rule=f"exact version {spec}")
        if is_channel(spec):
            pin = self._store.read(environment, biomarker).state.channels.get(spec)
            if pin is None:
                raise PinError(f"{biomarker} has no `{spec}` channel in {environment}",
                               hint="Promote a version first (`delivery promote`) or pin an exact version.")
            return self.from_channel(pin, f"channel {spec} of {environment}")
        raise PinError(f"cannot resolve {biomarker}@{spec} here",
                       hint="Use an exact version (1.4.2), a digest (sha256:…) or a channel (stable).")

    def from_channel(self, pin: ChannelPin, rule: str) -> Resolved:
        """A channel pin as a resolution (its digest is what the channel recorded)."""
        repository = pin.image.split("/", 1)[1] if "/" in pin.image else pin.image
        return Resolved(pin.reference, pin.version, pin.digest, rule, self._attestation(repository, pin.digest))

    def _by_version(self, version: str, repository: str, *, rule: str) -> Resolved:
        digest = self._registry.head_manifest(repository, version)
        if digest is None:
            raise PinError(f"{repository}:{version} does not exist in {self._registry.host}",
                           hint="List versions with `delivery resolve` or check the spelling.")
        reference = f"{self._registry.host}/{repository}:{version}@{digest}"
        return Resolved(reference, version, digest, rule, self._attestation(repository, digest))

    def _by_digest(self, digest: str, repository: str) -> Resolved:
        for tag in self._registry.list_tags(repository):
            if SEMVER.match(tag) and self._registry.head_manifest(repository, tag) == digest:
                return self._by_version(tag, repository, rule=f"digest {digest}")
        raise PinError(f"no release tag of {repository} has digest {digest}")

    def _attestation(self, repository: str, digest: str) -> str | None:
        return self._registry.head_manifest(repository, f"sha256-{digest.split(':', 1)[1]}.att")
