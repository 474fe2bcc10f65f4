"""DSSE envelopes over in-toto statements: sign, verify, and refuse other keys and changed payloads."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from delivery.errors import ConfigError
from delivery.provenance import (
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
)

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
