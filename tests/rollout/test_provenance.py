"""Before any deploy: the version tag must name the digest, and CI's signed attestation must verify."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from rollout.controller.model import ReleaseRef
from rollout.provenance import ProvenanceRejected, RegistryProvenanceVerifier
from tests.support.oci import attest, make_keys, push_image


@pytest.fixture
def client(registry: RegistryHandle) -> RegistryClient:
    return RegistryClient(registry.url, registry.username, registry.password)


def _ref(registry: RegistryHandle, repository: str, version: str, digest: str) -> ReleaseRef:
    return ReleaseRef(version=version, digest=digest, image=f"{registry.host}/{repository}")


def test_a_signed_image_under_its_version_tag_verifies(registry: RegistryHandle, client: RegistryClient,
                                                       tmp_path: Path) -> None:
    repository, keys = f"prov/{uuid.uuid4().hex[:8]}", make_keys(tmp_path)
    image = push_image(client, repository, "1.0.0", seed="a")
    attestation = attest(client, repository, image.digest, keys)
    verifier = RegistryProvenanceVerifier(client, keys.public)
    assert verifier.verify(_ref(registry, repository, "1.0.0", image.digest)) == attestation


def test_a_digest_that_is_not_the_versions_build_is_refused(registry: RegistryHandle, client: RegistryClient,
                                                            tmp_path: Path) -> None:
    repository, keys = f"prov/{uuid.uuid4().hex[:8]}", make_keys(tmp_path)
    released = push_image(client, repository, "1.0.0", seed="released")
    other = push_image(client, repository, "sha-0123456789ab", seed="other")
    attest(client, repository, other.digest, keys)
    verifier = RegistryProvenanceVerifier(client, keys.public)
    with pytest.raises(ProvenanceRejected) as caught:
        verifier.verify(_ref(registry, repository, "1.0.0", other.digest))
    assert released.digest in caught.value.message
    with pytest.raises(ProvenanceRejected):
        verifier.verify(_ref(registry, repository, "9.9.9", other.digest))


def test_an_unsigned_image_is_refused(registry: RegistryHandle, client: RegistryClient, tmp_path: Path) -> None:
    repository, keys = f"prov/{uuid.uuid4().hex[:8]}", make_keys(tmp_path)
    image = push_image(client, repository, "1.0.0", seed="unsigned")
    with pytest.raises(ProvenanceRejected):
        RegistryProvenanceVerifier(client, keys.public).verify(_ref(registry, repository, "1.0.0", image.digest))


@pytest.mark.parametrize("vulnerabilities", ["unscanned", "stale", ""])
def test_an_image_whose_vulnerabilities_were_not_freshly_scanned_is_refused_unless_overridden(
        registry: RegistryHandle, client: RegistryClient, tmp_path: Path, vulnerabilities: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repository, keys = f"prov/{uuid.uuid4().hex[:8]}", make_keys(tmp_path)
    image = push_image(client, repository, "1.0.0", seed=f"unscanned-{vulnerabilities}")
    attest(client, repository, image.digest, keys, vulnerabilities=vulnerabilities)
    verifier, ref = RegistryProvenanceVerifier(client, keys.public), _ref(registry, repository, "1.0.0", image.digest)
    with pytest.raises(ProvenanceRejected, match=r"vulnerabilities (not scanned|scanned with a stale DB)") as caught:
        verifier.require_scanned(ref, None)
    assert "--allow-unscanned" in (caught.value.hint or "")
    monkeypatch.setenv("DELIVERY_ACTOR", "release-manager")
    scan = verifier.require_scanned(ref, "INC-7: DB import pending")
    assert scan.override is not None and scan.override.actor == "release-manager"
    assert scan.override.reason == "INC-7: DB import pending"


def test_a_scanned_image_needs_no_override(registry: RegistryHandle, client: RegistryClient, tmp_path: Path) -> None:
    repository, keys = f"prov/{uuid.uuid4().hex[:8]}", make_keys(tmp_path)
    image = push_image(client, repository, "1.0.0", seed="scanned")
    attest(client, repository, image.digest, keys)
    scan = RegistryProvenanceVerifier(client, keys.public).require_scanned(
        _ref(registry, repository, "1.0.0", image.digest), None)
    assert scan.scanned and scan.override is None
