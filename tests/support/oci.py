"""Builders of OCI images and signed attestations pushed straight through the registry client (no docker build)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from delivery.provenance import build_statement, generate_keys, load_private_key, sign_statement, store_attestation
from delivery.registry import OCI_INDEX, OCI_MANIFEST, Manifest, RegistryClient, sha256_digest

_BLOCK = 1 << 20


def layer_bytes(size: int, seed: str) -> bytes:
    """`size` bytes that differ per seed and per MiB (cheap: one sha256-expanded block, counter-stamped)."""
    block = hashlib.sha256(seed.encode()).digest() * (_BLOCK // 32)
    parts = [i.to_bytes(8, "big") + block[8:] for i in range(size // _BLOCK)]
    parts.append(block[: size % _BLOCK])
    return b"".join(parts)


def push_image(client: RegistryClient, repository: str, tag: str, *, size: int = 4096, seed: str = "") -> Manifest:
    """Upload a config and one layer of `size` bytes as an OCI image and tag it; returns the manifest."""
    config_raw = json.dumps({"architecture": "amd64", "os": "linux"}).encode()  # shared: one HEAD after the first
    layer = layer_bytes(size, seed or f"{repository}:{tag}")
    config = client.upload_blob(repository, config_raw)
    layer_digest = client.upload_blob(repository, layer)
    doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": len(config_raw)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": len(layer)}],
    }
    raw = json.dumps(doc).encode()
    manifest = Manifest(raw, OCI_MANIFEST, sha256_digest(raw))
    client.put_manifest(repository, tag, manifest)
    return manifest


def push_index(client: RegistryClient, repository: str, tag: str, children: list[Manifest]) -> Manifest:
    """An OCI index over already-pushed image manifests, tagged."""
    platforms = ("amd64", "arm64", "ppc64le", "s390x")
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": c.media_type, "digest": c.digest, "size": len(c.raw),
         "platform": {"architecture": arch, "os": "linux"}} for c, arch in zip(children, platforms, strict=False)]}
    raw = json.dumps(doc).encode()
    manifest = Manifest(raw, OCI_INDEX, sha256_digest(raw))
    client.put_manifest(repository, tag, manifest)
    return manifest


@dataclass(frozen=True)
class Keys:
    """A generated signing key pair."""

    private: Path
    public: Path


def make_keys(directory: Path) -> Keys:
    """An ed25519 key pair as `delivery keys generate` writes it."""
    private, public = generate_keys(directory)
    return Keys(private, public)


def attest(client: RegistryClient, repository: str, digest: str, keys: Keys, *,
           tests: str = "passed", scan: str = "passed", vulnerabilities: str = "scanned") -> str:
    """Sign and store a provenance attestation for `repository@digest` with the given stage results; its scan
    record says `vulnerabilities` (scanned, unscanned, stale) against a DB of today, or nothing when empty."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"status": vulnerabilities, "reason": "" if vulnerabilities == "scanned" else "no DB (test)",
              "db_updated_at": now, "db_next_update": None, "override": None} if vulnerabilities else None
    byproducts = [{"name": n, "annotations": {"status": s}} for n, s in (("test", tests), ("scan", scan))]
    statement = build_statement(
        subject_name=f"{client.host}/{repository}", digest=digest,
        source={"uri": "git+file:///org/alpha", "digest": {"gitCommit": "0" * 40}, "ref": "refs/heads/main"},
        build={}, builder_id="tests/support", invocation_id="test", started=now, finished=now,
        byproducts=byproducts, internal={}, dependencies=[], scan=record)
    return store_attestation(client, repository, digest, sign_statement(statement, load_private_key(keys.private)))


_ACCESS = re.compile(r'http\.request\.method=(\w+) .*?http\.request\.uri="?([^"\s]+)')


@dataclass(frozen=True)
class LogMark:
    """A position in the registry's log, to read the requests made after it."""

    path: Path
    offset: int

    @classmethod
    def now(cls, path: Path) -> LogMark:
        return cls(path, path.stat().st_size)

    def requests(self, repository: str) -> list[tuple[str, str]]:
        """(method, uri) of every completed request about `repository` since the mark (info-level access lines)."""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            text = handle.read().decode(errors="replace")
        found = []
        for line in text.splitlines():
            match = _ACCESS.search(line)
            if match and "response completed" in line and f"/v2/{repository}/" in match.group(2):
                found.append((match.group(1), match.group(2)))
        return found
