"""Attestation check before every deploy: the production verifier calls `delivery.provenance.verify_image`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from delivery import provenance
from delivery.audit import AuditEvent, current_actor
from delivery.errors import DeliveryError
from delivery.registry import RegistryClient
from delivery.scanrecord import Override, ScanRecord
from delivery.versioning import parse_version, tag_of
from rollout.controller.model import ReleaseRef

if TYPE_CHECKING:
    from rollout.compose import Composition


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
        return str(self.verified(release).attestation_digest)

    def verified(self, release: ReleaseRef) -> provenance.VerifiedProvenance:
        """The verified attestation of the release's digest; tests and the scan gate must have passed."""
        _, _, repository = release.image.partition("/")
        try:
            verified = provenance.verify_image(self.client, repository, release.digest, self.public_key)
        except DeliveryError as e:
            raise ProvenanceRejected(f"{release.image}@{release.digest}: {e.message}",
                                     hint="Only images attested by CI can be deployed.") from e
        if not (verified.test_passed and verified.scan_passed):
            raise ProvenanceRejected(f"{release.image}@{release.digest}: attestation says tests or scan failed")
        return verified

    def require_scanned(self, release: ReleaseRef, allow_reason: str | None) -> ScanRecord:
        """The attestation's scan record; unscanned or stale is refused unless `allow_reason` overrides it."""
        scan = self.verified(release).scan
        if scan.scanned:
            return scan
        if not allow_reason:
            raise ProvenanceRejected(
                f"{release.image}:{release.version} ({release.digest}): vulnerabilities {scan.describe()}",
                hint="Rebuild it with a current vulnerability DB, or deploy with --allow-unscanned --reason TEXT "
                     "(audited).")
        return scan.with_override(Override(allow_reason, current_actor()))


def check_deploy_scan(c: Composition, release: ReleaseRef, environment: str, allow_reason: str | None) -> None:
    """`rollout deploy`'s vulnerability check: refuse unscanned images; audit an override."""
    key = c.public_key()
    if key is None:
        return  # the deploy's own attestation check has refused already (no key, nothing verifiable)
    verifier = RegistryProvenanceVerifier(c.registry_client_for(release.image.split("/", 1)[0]), key)
    scan = verifier.require_scanned(release, allow_reason)
    if scan.override is not None:
        name = release.image.rsplit("/", 1)[-1]
        c.audit().append(AuditEvent("allow-unscanned", f"{environment}/{name}:{release.version}",
                                    scan.override.reason, scan.override.actor, datetime.now(UTC),
                                    {"command": "rollout deploy", "digest": release.digest,
                                     "scan": scan.as_json(), "biomarker": name, "environment": environment}))
