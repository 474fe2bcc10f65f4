"""What `rollout deploy` deploys: what a channel holds, a version the release state or registry knows, or a typed
image and digest; when several are given they must agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from delivery.environments import Environment
from delivery.errors import DeliveryError, UsageError
from delivery.registry import RegistryClient
from delivery.release.resolve import gather_registry
from delivery.release.state import ReleaseState
from delivery.versioning import require_version, tag_of
from rollout.controller.model import ReleaseRef
from rollout.jobspec import Release

# Looks a version up in the environment's registry: (biomarker, version) -> the release it names.
VersionLookup = Callable[[str, str], Release]


class EmptyChannel(DeliveryError):
    """The channel asked for holds nothing for this biomarker in this environment."""


@dataclass(frozen=True)
class DeploySource:
    """The deploy flags that name a release (`--channel`, `--version`, `--image`, `--digest`)."""

    channel: str | None = None
    version: str | None = None
    image: str | None = None
    digest: str | None = None

    @property
    def from_release_state(self) -> bool:
        """True when the release state (a channel or version) decides, not the typed image alone."""
        return bool(self.channel or self.version)


def reference(release: Release) -> ReleaseRef:
    """The release as the provenance verifier checks it."""
    return ReleaseRef(version=release.version, digest=release.digest, image=release.image)


def typed(source: DeploySource, biomarker: str) -> Release:
    """`--image REG/IMAGE:VERSION --digest sha256:…`, as typed."""
    if not (source.image and source.digest):
        raise UsageError("say what to deploy: --channel CHANNEL, --version X.Y.Z, or both --image and --digest",
                         hint=f"e.g. `rollout deploy {biomarker} --channel candidate --manifest biomarker.yaml`.")
    image, _, version = source.image.rpartition(":")
    if not image or "/" in version:
        raise UsageError(f"--image {source.image!r} is not REGISTRY/IMAGE:VERSION")
    return Release(biomarker, version, source.digest, image)


def pick(source: DeploySource, state: ReleaseState, lookup: VersionLookup) -> Release:
    """The release the flags name in `state` (one environment, one biomarker); typed flags must agree with it."""
    if not source.from_release_state:
        return typed(source, state.biomarker)
    release = from_channel(state, source.channel) if source.channel else None
    if source.version:
        if release is not None and release.version != str(require_version(source.version)):
            raise UsageError(f"channel {source.channel} holds {release.version}, not {source.version}",
                             hint="Drop --version to deploy what the channel holds, or promote that version first.")
        release = release or from_version(state, source.version, lookup)
    assert release is not None
    _agree(release, source)
    return release


def from_channel(state: ReleaseState, channel: str) -> Release:
    """What `channel` holds for the biomarker in the environment, with its digest."""
    pin = state.channels.get(channel)
    if pin is None:
        known = ", ".join(f"{c}={p.version}" for c, p in sorted(state.channels.items())) or "none holds anything"
        raise EmptyChannel(
            f"channel {channel} of {state.environment} holds nothing for {state.biomarker} (channels: {known})",
            hint=f"Fill it first: `delivery promote {state.biomarker} VERSION --to {state.environment} "
                 f"--channel {channel}`, then deploy again.")
    return Release(state.biomarker, pin.version, pin.digest, pin.image)


def from_version(state: ReleaseState, version: str, lookup: VersionLookup) -> Release:
    """`version` as a channel of the environment pins it (latest move), else as the environment's registry tags it."""
    wanted = str(require_version(version))
    pins = sorted((p for p in state.channels.values() if p.version == wanted), key=lambda p: p.moved_at)
    if pins:
        return Release(state.biomarker, pins[-1].version, pins[-1].digest, pins[-1].image)
    return lookup(state.biomarker, wanted)


def _agree(release: Release, source: DeploySource) -> None:
    """Typed `--image`/`--digest` next to a channel or version must name the same build."""
    if source.digest and source.digest != release.digest:
        raise UsageError(f"--digest {source.digest} is not the digest of {release.reference}",
                         hint="Drop --digest: the release state already says which digest to deploy.")
    if source.image and source.image != f"{release.image}:{release.version}":
        raise UsageError(f"--image {source.image} is not {release.image}:{release.version}",
                         hint="Drop --image: the release state already says which image to deploy.")


def registry_lookup(client: RegistryClient, environment: Environment) -> VersionLookup:
    """Versions as the environment's registry tags them (a yanked version is refused)."""
    def lookup(biomarker: str, version: str) -> Release:
        view = gather_registry(client, environment.repository(biomarker))
        tag = tag_of(require_version(version))
        if tag not in view.tags:
            raise DeliveryError(f"{view.image} has no version {version}",
                                hint=f"Promote it: `delivery promote {biomarker} {version} --to {environment.name}`.")
        if tag in view.yanks:
            raise DeliveryError(f"{view.image}:{version} is yanked ({view.yanks[tag].reason!r})",
                                hint="Deploy another version; a yank withdraws a version everywhere.")
        return Release(biomarker, version, view.tags[tag], view.image)
    return lookup
