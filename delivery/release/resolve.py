"""Pin resolution: `NAME@SPEC` to `REGISTRY/IMAGE:VERSION@sha256:…`, plus the rule that chose it.

`choose` is a pure function of what the registry and the release state say (version tags and their digests,
yank records, channel pins, freezes, the time); `resolve` only gathers those inputs. Rules, in order:

1. `sha256:…` (digest): the highest version tag on that digest (a non-yanked one if any).
2. a channel name (`stable`, `candidate`): the environment's channel pin, exactly as promoted, unless an
   active version freeze pins another version (then the freeze wins).
3. a full version (`1.4.2`, `2.0.0-rc.1`): that version, even if yanked (with a warning and `yanked` set:
   `delivery resolve` shows it, executions refuse it unless overridden, see rollout.executions.pins).
4. anything else is a range (delivery.versioning): the highest non-yanked match; an active version freeze
   wins when its version satisfies the range. Pre-releases only when the range asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from delivery.errors import DeliveryError
from delivery.registry import DIGEST, NotFound, RegistryClient
from delivery.release.freezes import is_active
from delivery.release.state import ChannelPin, Freeze, ReleaseStore
from delivery.release.yank import YankRecord, read_yanks
from delivery.versioning import Version, newest, parse_range, parse_version, tag_of, version_of_tag

CHANNEL = re.compile(r"^[a-z][a-z0-9-]*$")


class ResolveError(DeliveryError):
    """Nothing satisfies the spec (or the spec needs an environment)."""


@dataclass(frozen=True)
class Resolution:
    """What a pin resolved to and why."""

    reference: str
    version: str
    digest: str
    rule: str
    warnings: tuple[str, ...] = ()
    yanked: YankRecord | None = None  # the answer is a recalled version: who yanked it, when, why


@dataclass(frozen=True)
class RegistryView:
    """What the registry says about one image: version tag -> digest, and yank records by version tag."""

    image: str
    tags: Mapping[str, str]
    yanks: Mapping[str, YankRecord]

    def versions(self) -> dict[Version, str]:
        """Parsed version -> its tag."""
        out = {}
        for tag in self.tags:
            version = version_of_tag(tag)
            if version is not None:
                out[version] = tag
        return out


@dataclass(frozen=True)
class ReleaseView:
    """What the release state says: channel pins and freezes of one environment (empty without one)."""

    environment: str | None
    channels: Mapping[str, ChannelPin]
    freezes: Sequence[Freeze]


def choose(spec: str, registry: RegistryView, release: ReleaseView, now: datetime) -> Resolution:
    """The pure resolution rules (see the module docstring).

    Raises:
        ResolveError: nothing satisfies the spec.
    """
    spec = spec.strip().removeprefix("@")
    if DIGEST.match(spec):
        return _by_digest(spec, registry)
    if CHANNEL.match(spec) and spec not in ("x", "X"):
        return _by_channel(spec, registry, release, now)
    exact = parse_version(spec)
    if exact is not None and not spec.startswith("v"):
        return _by_version(exact, registry, "exact version")
    return _by_range(spec, registry, release, now)


def _answer(registry: RegistryView, tag: str, rule: str, warnings: Sequence[str] = ()) -> Resolution:
    digest = registry.tags[tag]
    yanked = registry.yanks.get(tag)
    notes = list(warnings)
    if yanked:
        notes.append(f"{tag} is yanked ({yanked.reason!r}, by {yanked.actor} at {yanked.at:%Y-%m-%d %H:%M}Z); "
                     "pin another version")
    return Resolution(f"{registry.image}:{tag}@{digest}", tag.replace("_", "+"), digest, rule, tuple(notes), yanked)


def _by_digest(digest: str, registry: RegistryView) -> Resolution:
    versions = {v: t for v, t in registry.versions().items() if registry.tags[t] == digest}
    usable = [v for v, t in versions.items() if t not in registry.yanks] or list(versions)
    best = newest(usable)
    if best is None:
        raise ResolveError(f"no version tag of {registry.image} points at {digest}",
                           hint="Digests resolve only when a version tag carries them; check the digest.")
    return _answer(registry, versions[best], f"digest {digest[:19]}… carries version tag {versions[best]}")


def _by_version(version: Version, registry: RegistryView, rule: str) -> Resolution:
    tag = tag_of(version)
    if tag not in registry.tags:
        raise ResolveError(f"{registry.image} has no version {version}",
                           hint="List versions with `delivery resolve NAME@*` or check the spelling.")
    return _answer(registry, tag, rule)


def _by_channel(channel: str, registry: RegistryView, release: ReleaseView, now: datetime) -> Resolution:
    if release.environment is None:
        raise ResolveError(f"`{channel}` is a channel and channels belong to an environment",
                           hint="Add --env ENV (e.g. --env local).")
    frozen = _frozen(release, now)
    if frozen is not None and frozen.version:
        return _freeze_answer(frozen, registry)
    pin = release.channels.get(channel)
    if pin is None:
        known = ", ".join(sorted(release.channels)) or "none yet"
        raise ResolveError(f"channel {channel} of {release.environment} points at nothing (channels: {known})",
                           hint="Promote a version into it with `delivery promote NAME VERSION --to ENV`.")
    warnings = []
    current = registry.tags.get(tag_of(Version.parse(pin.version)))
    if current is not None and current != pin.digest:
        warnings.append(f"the registry tag {pin.version} now points at {current}; the pin keeps {pin.digest}")
    yanked = registry.yanks.get(tag_of(Version.parse(pin.version)))
    if yanked:
        warnings.append(f"{pin.version} is yanked ({yanked.reason!r}); promote another version into {channel}")
    rule = f"channel {channel} of {release.environment} (moved by {pin.moved_by} at {pin.moved_at:%Y-%m-%d %H:%M}Z)"
    return Resolution(pin.reference, pin.version, pin.digest, rule, tuple(warnings), yanked)


def _by_range(spec: str, registry: RegistryView, release: ReleaseView, now: datetime) -> Resolution:
    wanted = parse_range(spec)
    frozen = _frozen(release, now)
    warnings = []
    if frozen is not None and frozen.version:
        pinned = parse_version(frozen.version)
        if pinned is not None and wanted.matches(pinned):
            return _freeze_answer(frozen, registry)
        warnings.append(f"freeze {frozen.id} pins {frozen.version}, which does not satisfy {spec}")
    versions = registry.versions()
    best = wanted.best(v for v, t in versions.items() if t not in registry.yanks)
    if best is None:
        yanked = sum(1 for v, t in versions.items() if t in registry.yanks and wanted.matches(v))
        extra = f" ({yanked} matching version(s) are yanked)" if yanked else ""
        raise ResolveError(f"no version of {registry.image} satisfies {spec}{extra}",
                           hint="Pre-releases match only when the range names one (e.g. >=2.0.0-rc.1).")
    return _answer(registry, versions[best], f"highest non-yanked version satisfying {spec}", warnings)


def active_freezes(freezes: Sequence[Freeze], now: datetime) -> list[Freeze]:
    """Environment-wide freezes in force at `now`, recurring windows included (cohort freezes pin executions only)."""
    return [f for f in freezes if f.cohort is None and is_active(f, now)]


def _frozen(release: ReleaseView, now: datetime) -> Freeze | None:
    """The newest active freeze: its version pin, if any, wins."""
    return max(active_freezes(release.freezes, now), key=lambda f: f.created_at, default=None)


def _freeze_answer(frozen: Freeze, registry: RegistryView) -> Resolution:
    version = parse_version(frozen.version or "")
    if version is None or tag_of(version) not in registry.tags:
        raise ResolveError(f"freeze {frozen.id} pins {frozen.version}, which {registry.image} does not have",
                           hint="Lift or fix the freeze (rollout freeze …).")
    rule = f"freeze {frozen.id} by {frozen.owner} pins {frozen.version} ({frozen.reason})"
    return _answer(registry, tag_of(version), rule)


def gather_registry(registry: RegistryClient, image_repository: str) -> RegistryView:
    """Read version tags, their digests and yank records from the registry (one HEAD per version tag)."""
    try:
        tags = registry.list_tags(image_repository)
    except NotFound:
        tags = []  # never pushed: nothing resolves, and choose() says so
    digests = {}
    for tag in tags:
        if version_of_tag(tag) is not None:
            digest = registry.head_manifest(image_repository, tag)
            if digest:
                digests[tag] = digest
    return RegistryView(f"{registry.host}/{image_repository}", digests, read_yanks(registry, image_repository, tags))


def gather_release(store: ReleaseStore, environment: str | None, name: str) -> ReleaseView:
    """Channel pins and freezes of `name` in `environment` (nothing when no environment is given)."""
    if environment is None:
        return ReleaseView(None, {}, ())
    state = store.read(environment, name).state
    return ReleaseView(environment, dict(state.channels), tuple(state.freezes))


def resolve(name: str, spec: str, *, environment: str | None, registry: RegistryClient, store: ReleaseStore,
            image_repository: str, now: datetime | None = None) -> Resolution:
    """Resolve `name@spec` against the live registry and release state (the contract in DEVELOPERS.md).

    Raises:
        ResolveError: nothing satisfies the spec.
        RegistryError: the registry failed.
    """
    release = gather_release(store, environment, name)
    view = gather_registry(registry, image_repository)
    return choose(spec, view, release, now or datetime.now(UTC))
