"""Retention: delete what nothing needs any more, and show it before doing it.

A digest is deleted only if every tag on it is a pre-release version tag beyond the `keep` newest (release
tags are never deleted), and no environment channel or freeze pins it, and no execution used it within the
window. Debian's 2.8 registry deletes by digest, which removes every tag on it: so a digest that any kept tag
points at is kept. The attestation (`sha256-<hex>.att`) and yank record (`<version>.yank`) of a deleted
digest go with it. `plan` is pure; gathering and applying are the I/O around it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from delivery.registry import NotFound, RegistryClient
from delivery.release.resolve import active_freezes
from delivery.release.state import ReleaseStore
from delivery.release.yank import YANK_SUFFIX
from delivery.versioning import sort_key, tag_of, version_of_tag


class RecentExecutions(Protocol):
    """The execution ledger's answer to: which image digests ran since then (built by the executions engineer)."""

    def digests_used_since(self, since: datetime) -> set[str]: ...


class NoExecutions:
    """Until the execution ledger exists: nothing ran."""

    def digests_used_since(self, since: datetime) -> set[str]:
        """No digest."""
        return set()


@dataclass(frozen=True)
class UnionOfExecutions:
    """Several execution sources (e.g. a local ledger and a shared one) seen as one."""

    sources: tuple[RecentExecutions, ...]

    def digests_used_since(self, since: datetime) -> set[str]:
        """Every digest any source saw."""
        return set().union(*(source.digests_used_since(since) for source in self.sources))


@dataclass(frozen=True)
class Deletion:
    """One digest to delete and every tag that goes with it."""

    digest: str
    tags: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Kept:
    """A tag that stays, and why."""

    tag: str
    digest: str
    why: str


@dataclass(frozen=True)
class GcPlan:
    """What retention would delete and what it keeps."""

    repository: str
    delete: tuple[Deletion, ...]
    kept: tuple[Kept, ...]


def plan(repository: str, tags: Mapping[str, str], *, keep: int, protected: Mapping[str, str]) -> GcPlan:
    """Decide deletions from tag -> digest and digest -> why-it-is-protected (pins, freezes, executions)."""
    reasons = _tag_reasons(tags, keep)
    kept = {tag: why for tag, why in reasons.items() if why}
    kept_digests = {tags[t] for t in kept}
    deletions, skipped = [], []
    for tag in sorted(t for t, why in reasons.items() if not why):
        digest = tags[tag]
        if digest in protected or digest in kept_digests:
            skipped.append(Kept(tag, digest, protected.get(digest) or "another kept tag points at its digest"))
        else:
            deletions.append(tag)
    by_digest: dict[str, list[str]] = {}
    for tag in deletions:
        by_digest.setdefault(tags[tag], []).append(tag)
    delete = [Deletion(d, tuple(sorted(ts)), f"pre-release beyond the {keep} newest, not pinned or running")
              for d, ts in sorted(by_digest.items())]
    delete += _companions(tags, set(by_digest), kept_digests)
    kept_list = [Kept(t, tags[t], why) for t, why in sorted(kept.items()) if not _is_companion_of(t, tags, by_digest)]
    return GcPlan(repository, tuple(delete), tuple(kept_list + skipped))


def _tag_reasons(tags: Mapping[str, str], keep: int) -> dict[str, str]:
    """tag -> why it is kept regardless of digests ("" for a deletion candidate)."""
    versions = {t: version_of_tag(t) for t in tags}
    pre = sorted((t for t, v in versions.items() if v is not None and v.prerelease),
                 key=lambda t: sort_key(versions[t]), reverse=True)  # type: ignore[arg-type]
    newest = set(pre[:keep])
    out = {}
    for tag, version in versions.items():
        if version is None:
            out[tag] = "not a version tag"
        elif not version.prerelease:
            out[tag] = "release tag (immutable, never deleted)"
        else:
            out[tag] = f"among the {keep} newest pre-releases" if tag in newest else ""
    return out


def _companion_subject(tag: str, tags: Mapping[str, str]) -> str | None:
    """The image digest an attestation or yank tag belongs to."""
    if tag.startswith("sha256-") and tag.endswith(".att"):
        return "sha256:" + tag.removeprefix("sha256-").removesuffix(".att")
    if tag.endswith(YANK_SUFFIX):
        return tags.get(tag.removesuffix(YANK_SUFFIX))
    return None


def _is_companion_of(tag: str, tags: Mapping[str, str], deleted: Mapping[str, object]) -> bool:
    return _companion_subject(tag, tags) in deleted


def _companions(tags: Mapping[str, str], deleted: set[str], kept_digests: set[str]) -> list[Deletion]:
    out = []
    for tag, digest in sorted(tags.items()):
        subject = _companion_subject(tag, tags)
        if subject in deleted and digest not in deleted:
            out.append(Deletion(digest, (tag,), f"belongs to deleted {str(subject)[:19]}…"))
    return out


def protected_digests(name: str, tags: Mapping[str, str], store: ReleaseStore, environments: Iterable[str],
                      executions: RecentExecutions, since: datetime, now: datetime) -> dict[str, str]:
    """digest -> why nothing may delete it: channel pins and version freezes in any environment, recent runs."""
    out: dict[str, str] = {}
    for env in environments:
        state = store.read(env, name).state
        for channel, pin in state.channels.items():
            out.setdefault(pin.digest, f"pinned by {env}:{channel}")
        for freeze in active_freezes(state.freezes, now):
            version = version_of_tag(freeze.version or "")
            digest = tags.get(tag_of(version)) if version else None
            if digest:
                out.setdefault(digest, f"pinned by freeze {freeze.id} in {env}")
    for digest in executions.digests_used_since(since):
        out.setdefault(digest, f"used by an execution since {since:%Y-%m-%d %H:%M}Z")
    return out


def read_tags(client: RegistryClient, repository: str) -> dict[str, str]:
    """Every tag of the repository and its digest (one HEAD per tag)."""
    try:
        names = client.list_tags(repository)
    except NotFound:
        return {}
    out = {}
    for tag in names:
        digest = client.head_manifest(repository, tag)
        if digest:
            out[tag] = digest
    return out


def apply(client: RegistryClient, gc_plan: GcPlan) -> list[Deletion]:
    """Delete the planned digests (each removes every tag on it); returns what was deleted."""
    done = []
    for deletion in gc_plan.delete:
        try:
            client.delete_manifest(gc_plan.repository, deletion.digest)
        except NotFound:
            continue  # already gone: the goal is reached
        done.append(deletion)
    return done
