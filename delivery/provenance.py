"""Signed provenance: in-toto Statement v1 + SLSA provenance v1 in a DSSE envelope (ed25519), beside the image."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from delivery.errors import ConfigError, DeliveryError
from delivery.registry import (
    DIGEST,
    OCI_MANIFEST,
    Manifest,
    NotFound,
    RegistryClient,
    RegistryError,
    sha256_digest,
)
from delivery.scanrecord import ScanRecord

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://biomarker-delivery.dev/ci-build/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
# An envelope is a few KiB; the registry serves whatever anyone with push rights stored, so reads stop here.
MAX_ENVELOPE_BYTES = 4 << 20


class ProvenanceError(DeliveryError):
    """An attestation is missing, unsigned, signed by another key, or about another image."""


@dataclass(frozen=True)
class VerifiedProvenance:
    """What a verified attestation says about one image digest."""

    key_id: str
    subject_digest: str
    source_repo: str
    commit: str
    ref: str
    builder_id: str
    test_passed: bool
    scan_passed: bool  # the scan stage's gate (secrets, misconfigurations, vulnerabilities found) passed
    gpu_test: str
    attestation_digest: str
    scan: ScanRecord  # whether vulnerabilities were scanned at all, against how old a DB, and any override
    statement: dict[str, Any]

    @property
    def scan_verdict(self) -> str:
        """`passed` only for a passing scan with vulnerabilities scanned; else what was (not) done, and why."""
        if self.scan.scanned:
            return "passed" if self.scan_passed else "NOT passed"
        return f"gate {'passed' if self.scan_passed else 'NOT passed'}, but vulnerabilities {self.scan.describe()}"


def generate_keys(out: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write `signing.key` (0600, PKCS8 PEM ed25519) and `signing.pub` into `out`, each staged then renamed."""
    private, public = out / "signing.key", out / "signing.pub"
    if private.exists() and not force:
        raise ConfigError(f"{private} exists", hint="Pass --force to replace it (old attestations stop verifying).")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staged = [(_stage(out, pem, 0o600), private), (_stage(out, pub, 0o644), public)]
        for tmp, final in staged:
            tmp.replace(final)
    except OSError as e:
        raise ConfigError(f"cannot write signing keys into {out}: {e.strerror}",
                          hint="Pass --out a folder you may write to; any existing key pair is unchanged.") from e
    return private, public


def _stage(folder: Path, data: bytes, mode: int) -> Path:
    """`data` in a new temp file of `folder` (created 0600, then `mode`), for an atomic rename into place."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".key-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An ed25519 private key from a PEM file."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"cannot read the signing key {path} ({type(e).__name__})",
                          hint="Create one with `delivery keys generate --out DIR`.") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An ed25519 public key from a PEM file."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the public key {path} ({type(e).__name__})") from e
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an ed25519 public key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    """sha256 of the raw public key: the signer's stable identity."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def sign_statement(statement: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A DSSE envelope around the canonical JSON of `statement`."""
    body = json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()
    signature = key.sign(pae(PAYLOAD_TYPE, body))
    return {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(body).decode(),
            "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}]}


def open_envelope(envelope: dict[str, Any], public: Ed25519PublicKey) -> dict[str, Any]:
    """The statement inside `envelope` if a signature by `public` (matching key id) verifies."""
    wanted = key_id(public)
    try:
        body = base64.b64decode(envelope["payload"], validate=True)
        signatures = [s for s in envelope["signatures"] if s.get("keyid") == wanted]
        kind = str(envelope["payloadType"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ProvenanceError(f"the attestation is not a DSSE envelope ({type(e).__name__})") from e
    if not signatures:
        found = ", ".join(str(s.get("keyid")) for s in envelope["signatures"]) or "none"
        raise ProvenanceError(f"the attestation is not signed by key {wanted} (signed by: {found})",
                              hint="Verify with the public key of the builder that signed it.")
    for signature in signatures:
        try:
            public.verify(base64.b64decode(signature["sig"]), pae(kind, body))
        except (InvalidSignature, ValueError, KeyError, TypeError):
            continue
        if kind != PAYLOAD_TYPE:
            raise ProvenanceError(f"unexpected DSSE payload type {kind}")
        statement: dict[str, Any] = json.loads(body)
        return statement
    raise ProvenanceError(f"the attestation's signature by {wanted} does not verify: the payload was changed "
                          "after signing, or it was signed by another key")


def attestation_tag(digest: str) -> str:
    """cosign's legacy tag scheme: `sha256:abc…` -> `sha256-abc….att`."""
    if not DIGEST.match(digest):
        raise ProvenanceError(f"{digest!r} is not an image digest")
    return digest.replace(":", "-") + ".att"


def store_attestation(client: RegistryClient, repository: str, digest: str, envelope: dict[str, Any]) -> str:
    """Upload the envelope as the only layer of an OCI manifest tagged `sha256-<hex>.att`; returns its digest."""
    layer = json.dumps(envelope, sort_keys=True).encode()
    client.upload_blob(repository, EMPTY_CONFIG)
    client.upload_blob(repository, layer)
    doc = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": DSSE_MEDIA_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": sha256_digest(EMPTY_CONFIG), "size": len(EMPTY_CONFIG)},
        "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": sha256_digest(layer), "size": len(layer),
                    "annotations": {"predicateType": SLSA_PROVENANCE}}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digest},
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return client.put_manifest(repository, attestation_tag(digest), Manifest(raw, OCI_MANIFEST, sha256_digest(raw)))


def verify_image(client: RegistryClient, repository: str, digest: str, public_key: Path) -> VerifiedProvenance:
    """Fetch, verify and read the attestation of `repository@digest`; raises ProvenanceError on any doubt."""
    public = load_public_key(public_key)
    try:
        manifest = client.get_manifest(repository, attestation_tag(digest))
    except NotFound as e:
        raise ProvenanceError(f"{repository}@{digest} has no attestation (no tag {attestation_tag(digest)})",
                              hint="Run `delivery ci attest` for this image, or do not deploy it.") from e
    envelope = _fetch_envelope(client, repository, digest, manifest)
    statement = open_envelope(envelope, public)
    return _read_statement(statement, repository, digest, key_id(public), manifest.digest)


def _fetch_envelope(client: RegistryClient, repository: str, digest: str, manifest: Manifest) -> dict[str, Any]:
    """The DSSE envelope an attestation manifest points at; anyone who may push wrote it, so it is bounded."""
    where = f"the attestation of {repository}@{digest}"
    hint = "Do not deploy this image; run `delivery ci attest` for it again."
    try:
        layers = [str(layer["digest"]) for layer in manifest.json().get("layers", [])
                  if isinstance(layer, dict) and layer.get("mediaType") == DSSE_MEDIA_TYPE]
    except (ValueError, AttributeError, KeyError, TypeError) as e:
        raise ProvenanceError(f"{where} is not an OCI manifest ({type(e).__name__})", hint=hint) from e
    if not layers or not DIGEST.match(layers[0]):
        raise ProvenanceError(f"{where} holds no DSSE envelope", hint=hint)
    try:
        envelope = json.loads(client.get_blob(repository, layers[0], max_bytes=MAX_ENVELOPE_BYTES))
    except RegistryError as e:
        raise ProvenanceError(f"{where} cannot be read: {e.message}", hint=hint) from e
    except ValueError as e:
        raise ProvenanceError(f"{where} is not JSON, so not a DSSE envelope", hint=hint) from e
    if not isinstance(envelope, dict):
        raise ProvenanceError(f"{where} is not a DSSE envelope (a JSON object)", hint=hint)
    return envelope


def _read_statement(statement: dict[str, Any], repository: str, digest: str, signer: str,
                    attestation_digest: str) -> VerifiedProvenance:
    if statement.get("_type") != STATEMENT_TYPE or statement.get("predicateType") != SLSA_PROVENANCE:
        raise ProvenanceError("the attestation is not an in-toto SLSA provenance statement")
    subjects = ["sha256:" + str(s.get("digest", {}).get("sha256", "")) for s in statement.get("subject", [])]
    if digest not in subjects:
        raise ProvenanceError(f"the attestation is about {', '.join(subjects) or 'nothing'}, not {repository}@{digest}")
    predicate = statement["predicate"]
    params = predicate["buildDefinition"]["externalParameters"]
    results = {b.get("name"): (b.get("annotations") or {}) for b in predicate["runDetails"].get("byproducts", [])}
    return VerifiedProvenance(
        key_id=signer, subject_digest=digest, source_repo=str(params.get("source", {}).get("uri", "")),
        commit=str(params.get("source", {}).get("digest", {}).get("gitCommit", "")),
        ref=str(params.get("source", {}).get("ref", "")), builder_id=str(predicate["runDetails"]["builder"]["id"]),
        test_passed=results.get("test", {}).get("status") == "passed",
        scan_passed=results.get("scan", {}).get("status") == "passed",
        gpu_test=str(results.get("gpu-test", {}).get("status", "not run")),
        attestation_digest=attestation_digest, scan=ScanRecord.from_json(predicate.get("scan")), statement=statement,
    )


def build_statement(*, subject_name: str, digest: str, source: dict[str, Any], build: dict[str, Any],
                    builder_id: str, invocation_id: str, started: str, finished: str,
                    byproducts: list[dict[str, Any]], internal: dict[str, Any],
                    dependencies: list[dict[str, Any]], scan: dict[str, Any] | None = None) -> dict[str, Any]:
    """An in-toto Statement v1 whose predicate is SLSA provenance v1 for one image digest.

    `scan` (`ScanRecord.as_json()`) says whether vulnerabilities were scanned; without it, verifiers read
    the image as unscanned.
    """
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": digest.removeprefix("sha256:")}}],
        "predicateType": SLSA_PROVENANCE,
        "predicate": {
            "buildDefinition": {"buildType": BUILD_TYPE, "externalParameters": {"source": source, **build},
                                "internalParameters": internal, "resolvedDependencies": dependencies},
            "runDetails": {"builder": {"id": builder_id},
                           "metadata": {"invocationId": invocation_id, "startedOn": started, "finishedOn": finished},
                           "byproducts": byproducts},
        },
    }
    if scan is not None:
        statement["predicate"]["scan"] = scan
    return statement
