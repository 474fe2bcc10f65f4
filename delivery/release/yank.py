"""Yank records kept in the registry, next to the image they withdraw.

A yank is an OCI artifact manifest tagged `<version tag>.yank` in the image's own repository: its annotations say
who yanked which version, when and why, and its `subject` is the yanked digest. Why the registry and not a
database: the registry is the system of record for versions (docs/architecture.md), so a yank travels with the
image wherever the repository is read from, needs no other service to be up, and one tags listing shows
versions and yanks together. Why a tag and not the referrers API: Debian's 2.8 registry has no referrers API,
so this follows the same tag convention as cosign's `sha256-<hex>.att`. The version tag itself is never
touched: a pinned version keeps resolving to the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from delivery.registry import OCI_MANIFEST, Manifest, NotFound, RegistryClient, sha256_digest
from delivery.versioning import version_of_tag

YANK_SUFFIX = ".yank"
YANK_TYPE = "application/vnd.biomarker-delivery.yank.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"
_PREFIX = "org.biomarker-delivery.yank."


@dataclass(frozen=True)
class YankRecord:
    """Who withdrew which version, when and why."""

    version: str
    digest: str
    reason: str
    actor: str
    at: datetime


def yank_tag(version_tag: str) -> str:
    """The tag holding the yank record of `version_tag`."""
    return version_tag + YANK_SUFFIX


def yanked_versions(tags: Iterable[str]) -> dict[str, str]:
    """Version tag -> its yank tag, for every `<version>.yank` in a tags listing."""
    out = {}
    for tag in tags:
        base = tag.removesuffix(YANK_SUFFIX)
        if tag.endswith(YANK_SUFFIX) and version_of_tag(base) is not None:
            out[base] = tag
    return out


def record_manifest(record: YankRecord, version_tag: str) -> Manifest:
    """The artifact manifest that stores `record` (config and layer are the OCI empty blob)."""
    empty = {"mediaType": EMPTY_TYPE, "digest": sha256_digest(EMPTY), "size": len(EMPTY)}
    doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": YANK_TYPE,
        "config": empty, "layers": [empty],
        "subject": {"mediaType": OCI_MANIFEST, "digest": record.digest, "size": 0},
        "annotations": {
            _PREFIX + "version": record.version, _PREFIX + "tag": version_tag, _PREFIX + "digest": record.digest,
            _PREFIX + "reason": record.reason, _PREFIX + "actor": record.actor,
            _PREFIX + "at": record.at.isoformat(),
        },
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return Manifest(raw, OCI_MANIFEST, sha256_digest(raw))


def parse_record(manifest: Manifest) -> YankRecord | None:
    """The record a yank manifest holds, or None if it is not one of ours."""
    doc = manifest.json()
    notes = doc.get("annotations") or {}
    if doc.get("artifactType") != YANK_TYPE or _PREFIX + "digest" not in notes:
        return None
    return YankRecord(notes[_PREFIX + "version"], notes[_PREFIX + "digest"], notes.get(_PREFIX + "reason", ""),
                      notes.get(_PREFIX + "actor", ""), datetime.fromisoformat(notes[_PREFIX + "at"]))


def write_yank(client: RegistryClient, repository: str, version_tag: str, record: YankRecord) -> str:
    """Store the yank record next to the image; returns the record's digest."""
    client.upload_blob(repository, EMPTY)
    return client.put_manifest(repository, yank_tag(version_tag), record_manifest(record, version_tag))


def read_yanks(client: RegistryClient, repository: str, tags: Iterable[str]) -> dict[str, YankRecord]:
    """Version tag -> yank record, for every yank present in `tags` (one manifest GET each)."""
    out = {}
    for version_tag, tag in yanked_versions(tags).items():
        try:
            record = parse_record(client.get_manifest(repository, tag))
        except NotFound:
            continue  # deleted between listing and reading: not yanked any more
        if record is not None:
            out[version_tag] = record
    return out


def yank_version(client: RegistryClient, repository: str, version_tag: str, reason: str, actor: str,
                 now: datetime) -> tuple[YankRecord, bool]:
    """Record a yank of `repository:version_tag` (idempotent); returns (record, whether it was new).

    Raises:
        NotFound: no such version.
    """
    existing = read_yanks(client, repository, [yank_tag(version_tag)])
    if version_tag in existing:
        return existing[version_tag], False
    digest = client.head_manifest(repository, version_tag)
    if digest is None:
        raise NotFound(f"{client.host}/{repository} has no version {version_tag}", status=404)
    record = YankRecord(version_tag.replace("_", "+"), digest, reason, actor, now)
    write_yank(client, repository, version_tag, record)
    return record, True
