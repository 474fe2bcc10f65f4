"""Copy an image by digest without rebuilding or re-compressing anything: the manifest bytes never change.

Same repository: one manifest PUT. Another repository of the same registry: a cross-repository mount per blob
(no bytes move), then the manifest. Another registry: each missing blob streams once from source to target.
"""

from __future__ import annotations

from dataclasses import dataclass

from delivery.errors import DeliveryError
from delivery.registry import Manifest, RegistryClient


class ReleaseTagConflict(DeliveryError):
    """The release tag already names other bytes; release tags are immutable (no --force overrides this)."""


@dataclass(frozen=True)
class Location:
    """One repository of one registry."""

    client: RegistryClient
    repository: str

    @property
    def image(self) -> str:
        return f"{self.client.host}/{self.repository}"


@dataclass(frozen=True)
class CopyReport:
    """How a copy went: `method` is `present`, `retag`, `mount` or `stream`."""

    method: str
    digest: str
    manifest_bytes: int
    blobs_mounted: int = 0
    blobs_streamed: int = 0


def copy_image(source: Location, digest: str, target: Location, tag: str) -> CopyReport:
    """Make `target:tag` name exactly the manifest `source@digest`; refuse to move an existing tag.

    Raises:
        ReleaseTagConflict: `target:tag` exists with another digest.
        RegistryError: a registry refused or failed.
    """
    manifest = source.client.get_manifest(source.repository, digest)
    existing = target.client.head_manifest(target.repository, tag)
    if existing == digest:
        return CopyReport("present", digest, len(manifest.raw))
    if existing is not None:
        raise ReleaseTagConflict(
            f"{target.image}:{tag} already is {existing}; refusing to point it at {digest}",
            hint="Release tags are immutable: publish a new version instead of replacing this one.")
    if _same_repository(source, target):
        target.client.put_manifest(target.repository, tag, manifest)
        return CopyReport("retag", digest, len(manifest.raw))
    mounted, streamed = _copy_content(source, manifest, target)
    target.client.put_manifest(target.repository, tag, manifest)
    return CopyReport("mount" if _same_registry(source, target) else "stream", digest, len(manifest.raw),
                      mounted, streamed)


def copy_artifact(source: Location, tag: str, target: Location) -> bool:
    """Copy a small companion artifact (attestation, yank record) under the same tag, if the source has it."""
    digest = source.client.head_manifest(source.repository, tag)
    if digest is None or _same_repository(source, target):
        return False
    if target.client.head_manifest(target.repository, tag) == digest:
        return True
    manifest = source.client.get_manifest(source.repository, digest)
    _copy_content(source, manifest, target)
    target.client.put_manifest(target.repository, tag, manifest)
    return True


def _copy_content(source: Location, manifest: Manifest, target: Location) -> tuple[int, int]:
    """Blobs (or, for an index, child manifests) of `manifest` into the target; returns (mounted, streamed)."""
    mounted = streamed = 0
    for child in manifest.child_digests():
        child_manifest = source.client.get_manifest(source.repository, child)
        m, s = _copy_content(source, child_manifest, target)
        target.client.put_manifest(target.repository, child, child_manifest)
        mounted, streamed = mounted + m, streamed + s
    for blob in manifest.blob_digests():
        if _same_registry(source, target) and target.client.mount_blob(target.repository, blob, source.repository):
            mounted += 1
        elif not target.client.blob_exists(target.repository, blob):
            chunks = source.client.open_blob(source.repository, blob)
            target.client.upload_blob_stream(target.repository, blob, chunks)
            streamed += 1
    return mounted, streamed


def _same_registry(a: Location, b: Location) -> bool:
    return a.client.url == b.client.url


def _same_repository(a: Location, b: Location) -> bool:
    return _same_registry(a, b) and a.repository == b.repository
