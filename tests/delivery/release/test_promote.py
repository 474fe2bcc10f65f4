"""Promotion against the real registry: by digest, no blob uploads, immutable tags, mounts, gates, audit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.localenv import RegistryHandle, start_registry
from delivery.release.connect import locations, verifier
from delivery.release.copy import ReleaseTagConflict
from delivery.release.promote import PromoteRequest, promote
from tests.delivery.release.conftest import Release
from tests.support.oci import LogMark, attest, push_image


def _promote_cli(*args: str) -> int:
    return main(["promote", *args])


@pytest.mark.slow
def test_a_300_mb_image_is_promoted_by_digest_without_uploading_a_blob(release: Release,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    release.write_environment()
    repository = f"{release.prefix}/big"
    manifest = push_image(release.client, repository, "1.0.0", size=300 * 2**20)
    attest(release.client, repository, manifest.digest, release.keys)
    mark = LogMark.now(release.registry.log_path)
    assert _promote_cli("big", "1.0.0", "--to", "local", "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["digest"] == manifest.digest and result["copy"]["method"] == "present"
    assert _promote_cli("big", "1.0.0", "--to", "local", "--channel", "stable", "--from", "candidate") == 0
    seen = mark.requests(repository)
    uploads = [(m, uri) for m, uri in seen if "/blobs/" in uri and m in ("POST", "PUT", "PATCH")]
    assert seen and uploads == []
    assert not any(m == "GET" and "/blobs/" in uri and manifest.blob_digests()[1] in uri for m, uri in seen)
    channels = release.store.read("local", "big").state.channels
    assert channels["candidate"].digest == channels["stable"].digest == manifest.digest


def test_a_release_tag_is_never_moved_to_other_bytes_even_forced(release: Release) -> None:
    env = release.environment()
    target_env = release.environment(promote_from={"registry": release.registry.host,
                                                   "repository_prefix": release.prefix + "-build"})
    built = push_image(release.client, f"{release.prefix}-build/alpha", "2.0.0", seed="rebuilt")
    push_image(release.client, env.repository("alpha"), "2.0.0", seed="original")
    source, target = locations(target_env, "alpha")
    request = PromoteRequest("alpha", "2.0.0", target_env, "candidate", force=True, reason="try to overwrite")
    with pytest.raises(ReleaseTagConflict, match="already is"):
        promote(request, source=source, target=target, store=release.store, audit=release.audit,
                verify=verifier(release.keys.public))
    assert release.client.head_manifest(env.repository("alpha"), "2.0.0") != built.digest
    assert release.store.read("local", "alpha").state.channels == {}


def test_cross_repository_promotion_mounts_every_blob_and_carries_the_attestation(release: Release) -> None:
    build_prefix = release.prefix + "-build"
    env = release.write_environment(promote_from={"registry": release.registry.host,
                                                  "repository_prefix": build_prefix})
    manifest = push_image(release.client, f"{build_prefix}/alpha", "1.2.0", size=2 * 2**20)
    attest(release.client, f"{build_prefix}/alpha", manifest.digest, release.keys)
    mark = LogMark.now(release.registry.log_path)
    assert _promote_cli("alpha", "1.2.0", "--to", "local") == 0
    seen = mark.requests(env.repository("alpha"))
    mounts = [uri for m, uri in seen if m == "POST" and "mount=" in uri]
    assert len(mounts) >= len(manifest.blob_digests())
    assert not [uri for m, uri in seen if m in ("PUT", "PATCH") and "/blobs/uploads/" in uri]
    assert release.client.head_manifest(env.repository("alpha"), "1.2.0") == manifest.digest
    target_att = "sha256-" + manifest.digest.removeprefix("sha256:") + ".att"
    assert release.client.head_manifest(env.repository("alpha"), target_att) is not None


def test_gates_refuse_until_forced_with_a_reason_and_the_force_is_audited(
        release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment()
    manifest = push_image(release.client, env.repository("alpha"), "0.3.0")
    assert _promote_cli("alpha", "0.3.0", "--to", "local") == 1
    assert "has no attestation" in capsys.readouterr().err
    attest(release.client, env.repository("alpha"), manifest.digest, release.keys, scan="failed")
    assert _promote_cli("alpha", "0.3.0", "--to", "local") == 1
    assert "passing vulnerability scan" in capsys.readouterr().err
    assert _promote_cli("alpha", "0.3.0", "--to", "local", "--force") == 2
    assert release.store.read("local", "alpha").state.channels == {}
    assert _promote_cli("alpha", "0.3.0", "--to", "local", "--force", "--reason", "CVE is a false positive") == 0
    events = release.audit.events(subject_prefix="local/alpha")
    assert [e.action for e in events] == ["promote", "force"]
    assert events[1].reason == "CVE is a false positive" and events[1].actor == "release-tester"
    assert "scan" in events[1].details["bypassed"][0]


def test_from_channel_requires_the_version_it_holds(release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment()
    for version in ("1.0.0", "1.1.0"):
        manifest = push_image(release.client, env.repository("alpha"), version)
        attest(release.client, env.repository("alpha"), manifest.digest, release.keys)
    assert _promote_cli("alpha", "1.0.0", "--to", "local") == 0
    assert _promote_cli("alpha", "1.1.0", "--to", "local", "--channel", "stable", "--from", "candidate") == 1
    assert "not what local:candidate holds" in capsys.readouterr().err
    assert _promote_cli("alpha", "1.0.0", "--to", "local", "--channel", "stable", "--from", "candidate") == 0
    assert release.store.read("local", "alpha").state.channels["stable"].version == "1.0.0"


def test_a_freeze_window_blocks_promotion(release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    always = {"name": "always", "start": "00:00", "end": "24:00"}
    env = release.write_environment(freeze_windows=[always], required_gates=[])
    push_image(release.client, env.repository("alpha"), "1.0.0")
    assert _promote_cli("alpha", "1.0.0", "--to", "local") == 1
    assert "freeze window always" in capsys.readouterr().err


def test_a_ci_build_digest_is_released_as_a_version_by_a_manifest_put_only(
        release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment()
    manifest = push_image(release.client, env.repository("alpha"), "sha-0123456789ab")
    attest(release.client, env.repository("alpha"), manifest.digest, release.keys)
    mark = LogMark.now(release.registry.log_path)
    assert _promote_cli("alpha", "0.1.0", "--to", "local", "--digest", manifest.digest, "--json") == 0
    assert json.loads(capsys.readouterr().out)["copy"]["method"] == "retag"
    writes = [(m, uri) for m, uri in mark.requests(env.repository("alpha")) if m in ("PUT", "POST", "PATCH")]
    assert writes == [("PUT", f"/v2/{env.repository('alpha')}/manifests/0.1.0")]
    assert release.client.head_manifest(env.repository("alpha"), "0.1.0") == manifest.digest


@pytest.fixture
def second_registry(registry: RegistryHandle, tmp_path: Path) -> Iterator[RegistryHandle]:
    handle = start_registry(tmp_path / "second", username="prod-" + uuid.uuid4().hex[:4])
    yield handle
    handle.stop()


def test_another_registry_gets_each_blob_streamed_once_and_the_same_digest(
        release: Release, second_registry: RegistryHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROD_REGISTRY_USER", second_registry.username)
    monkeypatch.setenv("PROD_REGISTRY_PASSWORD", second_registry.password.reveal())
    env = release.write_environment(registry=second_registry.host, credentials_env="PROD_REGISTRY",
                                    promote_from={"registry": release.registry.host,
                                                  "repository_prefix": release.prefix})
    manifest = push_image(release.client, f"{release.prefix}/alpha", "1.0.0", size=3 * 2**20 + 5)
    attest(release.client, f"{release.prefix}/alpha", manifest.digest, release.keys)
    source, target = locations(env, "alpha")  # build registry: DELIVERY_REGISTRY_*; target: PROD_REGISTRY_*
    result = promote(PromoteRequest("alpha", "1.0.0", env, "stable"), source=source, target=target,
                     store=release.store, audit=release.audit, verify=verifier(release.keys.public))
    assert result.copy.method == "stream" and result.copy.blobs_streamed == 2
    assert target.client.get_manifest(env.repository("alpha"), "1.0.0").digest == manifest.digest
    assert target.client.stats.bytes_sent < 3 * 2**20 + 64 * 1024  # each blob once, plus the manifests
    assert result.reference.startswith(f"{second_registry.host}/{env.repository('alpha')}:1.0.0@")


def test_a_clinical_channel_refuses_an_unscanned_image_unless_allowed_with_a_reason_which_is_audited(
        release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment()
    assert env.clinical_channels == ["stable"]
    for version, vulnerabilities in (("0.4.0", "unscanned"), ("0.5.0", "stale"), ("0.6.0", "")):
        manifest = push_image(release.client, env.repository("alpha"), version)
        attest(release.client, env.repository("alpha"), manifest.digest, release.keys, vulnerabilities=vulnerabilities)
    assert _promote_cli("alpha", "0.4.0", "--to", "local") == 0  # candidate is not clinical
    capsys.readouterr()
    for version in ("0.4.0", "0.5.0", "0.6.0"):  # no scan record at all reads as unscanned
        assert _promote_cli("alpha", version, "--to", "local", "--channel", "stable") == 1
        err = capsys.readouterr().err
        assert "clinical channel local:stable" in err and "--allow-unscanned" in err
    assert _promote_cli("alpha", "0.4.0", "--to", "local", "--channel", "stable", "--force", "--reason", "x") == 1
    assert _promote_cli("alpha", "0.4.0", "--to", "local", "--channel", "stable", "--allow-unscanned") == 2
    assert "stable" not in release.store.read("local", "alpha").state.channels
    assert _promote_cli("alpha", "0.4.0", "--to", "local", "--channel", "stable", "--allow-unscanned",
                        "--reason", "INC-7: DB import pending") == 0
    assert "vulnerabilities: not scanned (no DB (test)); allowed by release-tester" in capsys.readouterr().out
    (event,) = release.audit.events(subject_prefix="local/alpha:stable", action="allow-unscanned")
    assert event.reason == "INC-7: DB import pending" and event.actor == "release-tester"
    assert event.details["scan"]["status"] == "unscanned"


def test_an_environment_can_mark_other_channels_clinical(release: Release,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    env = release.write_environment(clinical_channels=["candidate", "stable"])
    manifest = push_image(release.client, env.repository("alpha"), "0.7.0")
    attest(release.client, env.repository("alpha"), manifest.digest, release.keys, vulnerabilities="stale")
    assert _promote_cli("alpha", "0.7.0", "--to", "local") == 1
    assert "clinical channel local:candidate" in capsys.readouterr().err


def test_promote_checks_the_attestation_with_the_key_delivery_public_key_names(
        release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Like rollout deploy and the controller: a release manager configures the CI key once, not per command."""
    release.write_environment()
    repository = f"{release.prefix}/alpha"
    digest = push_image(release.client, repository, "1.0.0").digest
    attest(release.client, repository, digest, release.keys)
    (release.home / "keys" / "signing.pub").unlink()  # no key in the home: only the configured one can verify
    monkeypatch.setenv("DELIVERY_PUBLIC_KEY", str(tmp_path / "missing.pub"))
    assert _promote_cli("alpha", "1.0.0", "--to", "local") == 1
    assert "missing.pub" in capsys.readouterr().err
    monkeypatch.setenv("DELIVERY_PUBLIC_KEY", str(release.keys.public))
    assert _promote_cli("alpha", "1.0.0", "--to", "local") == 0
    assert release.store.read("local", "alpha").state.channels["candidate"].digest == digest
