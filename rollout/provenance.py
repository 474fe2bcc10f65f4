"""Attestation check before every deploy: the production verifier calls `delivery.provenance.verify_image`."""

from __future__ import annotations

from pathlib import Path

from delivery import provenance
from delivery.errors import DeliveryError
from delivery.registry import RegistryClient
from delivery.versioning import parse_version, tag_of
from rollout.controller.model import ReleaseRef


class ProvenanceRejected(DeliveryError):
    """The image has no valid signed attestation; nothing was deployed."""


class RegistryProvenanceVerifier:
    """`ProvenanceVerifier` over the registry: the version tag names this digest, and CI signed it."""

    def __init__(self, client: RegistryClient, public_key: Path) -> None:
        self.client, self.public_key = client, public_key

    def verify(self, release: ReleaseRef) -> str:
        """The attestation digest of a correctly signed image, else ProvenanceRejected."""
        _, _, repository = release.image.partition("/")
        version = parse_version(release.version)
        tagged = self.client.head_manifest(repository, tag_of(version)) if version else None
        if tagged != release.digest:
            # A deploy names both; a typo or a stale digest must not put another build under this version's name.
            raise ProvenanceRejected(
                f"{release.image}:{release.version} is {tagged or 'not in the registry'}, not {release.digest}",
                hint="Deploy the digest the version resolves to: `delivery resolve NAME@VERSION --env ENV`.")
        try:
            verified = provenance.verify_image(self.client, repository, release.digest, self.public_key)
        except DeliveryError as e:
            raise ProvenanceRejected(f"{release.image}@{release.digest}: {e.message}",
                                     hint="Only images attested by CI can be deployed.") from e
        if not (verified.test_passed and verified.scan_passed):
            raise ProvenanceRejected(f"{release.image}@{release.digest}: attestation says tests or scan failed")
        return str(verified.attestation_digest)
