"""DSSE envelopes over in-toto statements: sign, verify, and refuse other keys and changed payloads."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.errors import ConfigError
from delivery.localenv import RegistryHandle
from delivery.provenance import (
    DSSE_MEDIA_TYPE,
    MAX_ENVELOPE_BYTES,
    PAYLOAD_TYPE,
    ProvenanceError,
    attestation_tag,
    build_statement,
    generate_keys,
    load_private_key,
    load_public_key,
    open_envelope,
    pae,
    sign_statement,
    store_attestation,
    verify_image,
)
from delivery.registry import OCI_MANIFEST, Manifest, RegistryClient, sha256_digest
from tests.support.oci import push_image

DIGEST = "sha256:" + "ab" * 32


def _statement() -> dict:
    return build_statement(subject_name="reg/bio/alpha", digest=DIGEST,
                           source={"uri": "git+file:///r", "digest": {"gitCommit": "c0ffee"}, "ref": "refs/tags/v1"},
                           build={"version": "1.0.0"}, builder_id="urn:test", invocation_id="run-1",
                           started="2026-01-01T00:00:00Z", finished="2026-01-01T00:01:00Z",
                           byproducts=[], internal={}, dependencies=[])


def test_keys_are_written_private_0600(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    load_private_key(private), load_public_key(public)
    with pytest.raises(ConfigError):
        generate_keys(tmp_path)


def test_keys_into_a_folder_that_cannot_be_written_are_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["keys", "generate", "--out", str(tmp_path / "file" / "keys")]) == 1
    err = capsys.readouterr().err
    assert "cannot write signing keys" in err and "Traceback" not in err
    _, public = generate_keys(tmp_path / "keys")
    assert stat.S_IMODE(public.stat().st_mode) == 0o644  # the public half stays readable by verifiers
    assert not [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")]


def test_signed_statement_round_trips(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path)
    envelope = sign_statement(_statement(), load_private_key(private))
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert open_envelope(envelope, load_public_key(public))["subject"][0]["digest"]["sha256"] == "ab" * 32


def test_other_key_and_changed_payload_or_type_are_refused(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path / "a")
    _, other = generate_keys(tmp_path / "b")
    envelope = sign_statement(_statement(), load_private_key(private))
    with pytest.raises(ProvenanceError, match="not signed by key"):
        open_envelope(envelope, load_public_key(other))
    changed = dict(envelope, payload=base64.b64encode(json.dumps({**_statement(), "x": 1}).encode()).decode())
    with pytest.raises(ProvenanceError, match="does not verify"):
        open_envelope(changed, load_public_key(public))
    with pytest.raises(ProvenanceError, match="does not verify"):
        open_envelope(dict(envelope, payloadType="text/plain"), load_public_key(public))


def test_pae_and_attestation_tag_follow_the_conventions() -> None:
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"
    assert attestation_tag(DIGEST) == "sha256-" + "ab" * 32 + ".att"
    with pytest.raises(ProvenanceError):
        attestation_tag("latest")


def test_a_signature_entry_of_the_wrong_shape_is_refused_not_a_crash(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path)
    envelope = sign_statement(_statement(), load_private_key(private))
    for signatures in (["not-an-object"], [{"keyid": envelope["signatures"][0]["keyid"]}],
                       [{"keyid": envelope["signatures"][0]["keyid"], "sig": 7}]):
        with pytest.raises(ProvenanceError):
            open_envelope(dict(envelope, signatures=signatures), load_public_key(public))


def _push_attestation_manifest(client: RegistryClient, repository: str, digest: str, layer: bytes) -> None:
    client.upload_blob(repository, b"{}")
    layer_digest = client.upload_blob(repository, layer)
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256_digest(b"{}"), "size": 2},
           "layers": [{"mediaType": DSSE_MEDIA_TYPE, "digest": layer_digest, "size": len(layer)}]}
    raw = json.dumps(doc).encode()
    client.put_manifest(repository, attestation_tag(digest), Manifest(raw, OCI_MANIFEST, sha256_digest(raw)))


@pytest.mark.parametrize("layer", [b"not json at all", b"[1, 2]", b" " * (MAX_ENVELOPE_BYTES + 10) + b"{}"])
def test_a_pushed_attestation_that_is_not_an_envelope_is_a_provenance_error(
    registry: RegistryHandle, tmp_path: Path, layer: bytes
) -> None:
    """Anyone with push rights can store any bytes under the .att tag: verify must refuse, never crash or hoard."""
    client = RegistryClient(registry.url, registry.username, registry.password)
    _, public = generate_keys(tmp_path)
    image = push_image(client, "prov/hostile", "1.0.0")
    _push_attestation_manifest(client, "prov/hostile", image.digest, layer)
    with pytest.raises(ProvenanceError, match="attestation of prov/hostile"):
        verify_image(client, "prov/hostile", image.digest, public)


@pytest.mark.parametrize(("scan", "status", "verdict"), [
    (None, "unscanned", "gate passed, but vulnerabilities not scanned (the attestation records no vulnerability scan)"),
    ({"status": "bogus"}, "unscanned", "gate passed, but vulnerabilities not scanned"),
    ({"status": "stale", "reason": "DB 9.0 days old", "override": {"reason": "INC-7", "actor": "rm"}}, "stale",
     "gate passed, but vulnerabilities scanned with a stale DB (DB 9.0 days old); allowed by rm: INC-7"),
    ({"status": "scanned", "db_updated_at": "2026-12-01T00:00:00Z"}, "scanned", "passed"),
])
def test_only_an_attestation_that_records_a_fresh_vulnerability_scan_reads_as_scanned(
    registry: RegistryHandle, tmp_path: Path, scan: dict | None, status: str, verdict: str
) -> None:
    client = RegistryClient(registry.url, registry.username, registry.password)
    private, public = generate_keys(tmp_path)
    repository = f"prov/scan-{status}"
    image = push_image(client, repository, "1.0.0", seed=str(scan))
    statement = _statement()
    statement["subject"][0]["digest"]["sha256"] = image.digest.removeprefix("sha256:")
    statement["predicate"]["runDetails"]["byproducts"] = [{"name": "scan", "annotations": {"status": "passed"}}]
    if scan is not None:
        statement["predicate"]["scan"] = scan
    store_attestation(client, repository, image.digest, sign_statement(statement, load_private_key(private)))
    verified = verify_image(client, repository, image.digest, public)
    assert verified.scan.status == status and verified.scan_passed
    assert verified.scan_verdict.startswith(verdict)
