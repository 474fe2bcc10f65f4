"""Attestation check before every deploy: the production verifier calls `delivery.provenance.verify_image`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError
from rollout.controller.model import ReleaseRef


class ProvenanceRejected(DeliveryError):
    """The image has no valid signed attestation; nothing was deployed."""


class RegistryProvenanceVerifier:
    """`ProvenanceVerifier` over the registry; `delivery.provenance` is imported lazily (written in parallel)."""

    def __init__(self, client: Any, public_key: Path) -> None:
        self.client, self.public_key = client, public_key

    def verify(self, release: ReleaseRef) -> str:
        """The attestation digest of a correctly signed image, else ProvenanceRejected."""
        from delivery import provenance

        _, _, repository = release.image.partition("/")
        try:
            verified = provenance.verify_image(self.client, repository, release.digest, self.public_key)
        except DeliveryError as e:
            raise ProvenanceRejected(f"{release.image}@{release.digest}: {e.message}",
                                     hint="Only images attested by CI can be deployed.") from e
        if not (verified.test_passed and verified.scan_passed):
            raise ProvenanceRejected(f"{release.image}@{release.digest}: attestation says tests or scan failed")
        return str(verified.attestation_digest)
