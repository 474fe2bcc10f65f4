"""Trivy's vulnerability DB without internet: import its offline archive, mirror it to the private registry, pull it.

The archive is Trivy's documented air-gap format (`db.tar.gz` holding `trivy.db` and `metadata.json`), unpacked
into `<cache-dir>/db/`. In a registry it is an OCI artifact with Trivy's own media types and tag `2`, so
`trivy --db-repository HOST/REPO` reads the same artifact this module pushes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from delivery.errors import ConfigError
from delivery.localenv import cache_dir
from delivery.registry import OCI_MANIFEST, Manifest, RegistryClient, RegistryError, sha256_digest
from delivery.scanrecord import DbMetadata

DB_MEDIA_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
DB_CONFIG_MEDIA_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
DB_TAG = "2"  # Trivy's DB schema version: `--db-repository HOST/REPO` means HOST/REPO:2
DB_FILES = ("trivy.db", "metadata.json")
TITLE = "org.opencontainers.image.title"
DEFAULT_REPOSITORY = "trivy/db"
REPOSITORY_ENV = "DELIVERY_TRIVY_DB_REPOSITORY"
ARCHIVE_HINT = ("Make one where the internet is reachable: `trivy image --download-db-only --cache-dir D` then "
                "`tar -czf db.tar.gz -C D/db metadata.json trivy.db`.")


class ScannerDbError(ConfigError):
    """The vulnerability DB archive or the cached DB is missing, malformed or unreadable."""


def trivy_cache_dir() -> Path:
    """Trivy's cache (`TRIVY_CACHE_DIR`, else `$DELIVERY_CACHE/trivy`); the DB lives in its `db/`."""
    return Path(os.environ.get("TRIVY_CACHE_DIR") or cache_dir() / "trivy")


def parse_metadata(raw: bytes, where: str) -> DbMetadata:
    """`UpdatedAt` (required) and `NextUpdate` of a Trivy `metadata.json`."""
    try:
        data = json.loads(raw)
        updated = datetime.fromisoformat(str(data["UpdatedAt"]))
        due = datetime.fromisoformat(str(data["NextUpdate"])) if data.get("NextUpdate") else None
    except (ValueError, KeyError, TypeError) as e:
        raise ScannerDbError(f"{where}: not a Trivy metadata.json with UpdatedAt ({type(e).__name__})",
                             hint=ARCHIVE_HINT) from e
    return DbMetadata(updated.astimezone(UTC), due.astimezone(UTC) if due else None)


def installed_metadata(cache: Path) -> DbMetadata | None:
    """The DB in `cache/db/`, or None when there is none; a DB without readable metadata is an error."""
    db = cache / "db"
    if not (db / "trivy.db").is_file():
        return None
    if not (db / "metadata.json").is_file():
        raise ScannerDbError(f"{db}/metadata.json is missing, so the DB's age is unknown",
                             hint="Import the DB again: `delivery scanner db import db.tar.gz`.")
    return parse_metadata((db / "metadata.json").read_bytes(), str(db / "metadata.json"))


def _members(archive: tarfile.TarFile, where: str) -> dict[str, tarfile.TarInfo]:
    """`trivy.db` and `metadata.json` as regular files at the archive's top level; nothing else is extracted."""
    found = {m.name.removeprefix("./"): m for m in archive.getmembers() if m.isfile()}
    missing = [name for name in DB_FILES if name not in found]
    if missing:
        raise ScannerDbError(f"{where} has no {' or '.join(missing)} at its top level", hint=ARCHIVE_HINT)
    return {name: found[name] for name in DB_FILES}


def import_archive(archive: Path, cache: Path) -> DbMetadata:
    """Unpack a `db.tar.gz` into `cache/db/` (staged beside it, then renamed); returns the DB's metadata."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _members(tar, str(archive))
            meta = tar.extractfile(members["metadata.json"])
            metadata = parse_metadata(meta.read() if meta else b"", f"{archive}: metadata.json")
            (cache / "db").mkdir(parents=True, exist_ok=True)
            staged = Path(tempfile.mkdtemp(dir=cache, prefix=".db-import-"))
            try:
                for name, member in members.items():
                    source = tar.extractfile(member)
                    with (staged / name).open("wb") as out:
                        shutil.copyfileobj(source or io.BytesIO(), out, 1 << 20)
                for name in DB_FILES:  # the DB first, then the metadata that describes it
                    (staged / name).replace(cache / "db" / name)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ScannerDbError(f"cannot import {archive}: {e}", hint=ARCHIVE_HINT) from e
    return metadata


def pack_installed(cache: Path, out: Path) -> DbMetadata:
    """Write the installed DB as a `db.tar.gz` (the archive `import_archive` reads)."""
    metadata = installed_metadata(cache)
    if metadata is None:
        raise ScannerDbError(f"no vulnerability DB in {cache}/db to mirror",
                             hint="Import one first: `delivery scanner db import db.tar.gz`, or pass the archive.")
    with tarfile.open(out, "w:gz") as tar:
        for name in DB_FILES:
            tar.add(cache / "db" / name, arcname=name)
    return metadata


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(1 << 20), b"")


def push_archive(client: RegistryClient, repository: str, archive: Path) -> tuple[str, DbMetadata]:
    """Push a checked `db.tar.gz` as Trivy's OCI DB artifact `repository:2`; returns (manifest digest, metadata)."""
    with tempfile.TemporaryDirectory() as scratch:
        metadata = import_archive(archive, Path(scratch))  # the same checks as an import, before anything is sent
    digest, config = _file_digest(archive), b"{}"
    client.upload_blob(repository, config)
    client.upload_blob_stream(repository, digest, _chunks(archive))
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": DB_CONFIG_MEDIA_TYPE, "digest": sha256_digest(config), "size": len(config)},
           "layers": [{"mediaType": DB_MEDIA_TYPE, "digest": digest, "size": archive.stat().st_size,
                       "annotations": {TITLE: "db.tar.gz"}}],
           "annotations": {"org.opencontainers.image.created": metadata.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return client.put_manifest(repository, DB_TAG, Manifest(raw, OCI_MANIFEST, sha256_digest(raw))), metadata


def pull_archive(client: RegistryClient, repository: str, cache: Path) -> DbMetadata:
    """Download `repository:2` (Trivy's DB artifact) from the registry and import it into `cache/db/`."""
    where = f"{repository}:{DB_TAG}"
    try:
        layers = [layer for layer in client.get_manifest(repository, DB_TAG).json().get("layers") or []
                  if isinstance(layer, dict) and layer.get("mediaType") == DB_MEDIA_TYPE]
        if not layers:
            raise ScannerDbError(f"{where} is not a Trivy DB artifact (no {DB_MEDIA_TYPE} layer)",
                                 hint="Mirror one with `delivery scanner db mirror db.tar.gz`.")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".db-pull-") as scratch:
            archive = Path(scratch) / "db.tar.gz"
            with archive.open("wb") as out:  # open_blob checks the digest as the bytes arrive
                for chunk in client.open_blob(repository, str(layers[0]["digest"])):
                    out.write(chunk)
            return import_archive(archive, cache)
    except RegistryError as e:
        raise ScannerDbError(f"cannot pull the vulnerability DB {where}: {e.message}",
                             hint="Mirror one with `delivery scanner db mirror db.tar.gz --registry HOST:PORT`.") from e
