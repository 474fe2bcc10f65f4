"""Promotion: copy a tested version by digest into an environment and move one of its channels (audited)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from delivery import notify
from delivery.audit import AuditEvent, AuditLog, current_actor
from delivery.environments import Environment
from delivery.errors import DeliveryError, UsageError
from delivery.notify import Notification
from delivery.provenance import ProvenanceError, VerifiedProvenance, attestation_tag
from delivery.release.copy import CopyReport, Location, copy_artifact, copy_image
from delivery.release.resolve import active_freezes
from delivery.release.state import ChannelPin, ConflictError, ReleaseState, ReleaseStore
from delivery.release.yank import yank_tag
from delivery.scanrecord import Override, ScanRecord
from delivery.versioning import require_version, tag_of

Verifier = Callable[[Location, str], VerifiedProvenance]
CAS_ATTEMPTS = 5


class PromotionRefused(DeliveryError):
    """A check failed (gate, freeze, yank, source channel); `--force --reason` overrides it, audited."""


@dataclass(frozen=True)
class PromoteRequest:
    """What the release manager asked for."""

    name: str
    version: str
    environment: Environment
    channel: str
    from_channel: str | None = None
    force: bool = False
    reason: str = ""
    actor: str = field(default_factory=current_actor)
    digest: str | None = None  # release this digest (e.g. CI's `sha-…` build) as VERSION
    allow_unscanned: bool = False  # into a clinical channel although vulnerabilities were not (freshly) scanned


@dataclass(frozen=True)
class Promotion:
    """What a promotion did."""

    reference: str
    version: str
    digest: str
    environment: str
    channel: str
    previous: str | None
    copy: CopyReport
    bypassed: tuple[str, ...]
    provenance: VerifiedProvenance | None
    scan: ScanRecord | None = None  # checked for clinical channels (with any override)


def promote(request: PromoteRequest, *, source: Location, target: Location, store: ReleaseStore, audit: AuditLog,
            verify: Verifier, now: datetime | None = None) -> Promotion:
    """Check, copy by digest, move the channel (compare-and-set), audit.

    Raises:
        PromotionRefused: a check failed and the request is not forced.
        ReleaseTagConflict: the release tag exists in the target with other bytes (never overridable).
        UsageError: unknown channel or version.
    """
    when = now or datetime.now(UTC)
    tag, digest = _source_digest(request, source)
    problems, provenance = _checks(request, source, tag, digest, store, verify, when)
    if problems and not request.force:
        raise PromotionRefused(f"refusing to promote {request.name} {request.version} to {request.environment.name}: "
                               + "; ".join(problems),
                               hint="Fix the cause, or override with --force --reason TEXT (audited).")
    scan = _clinical_scan(request, source, digest, provenance, verify)
    copied = copy_image(source, digest, target, tag)
    copy_artifact(source, attestation_tag(digest), target)
    pin = ChannelPin(version=str(require_version(request.version)), digest=digest, image=target.image,
                     moved_at=when, moved_by=request.actor, reason=request.reason)
    previous = _move_channel(store, request, pin)
    result = Promotion(pin.reference, pin.version, digest, request.environment.name, request.channel, previous,
                       copied, tuple(problems), provenance, scan)
    _audit(audit, request, result, when)
    return result


def _source_digest(request: PromoteRequest, source: Location) -> tuple[str, str]:
    if request.channel not in request.environment.channels:
        raise UsageError(f"{request.environment.name} has no channel {request.channel!r} "
                         f"(channels: {', '.join(request.environment.channels)})")
    tag = tag_of(require_version(request.version))
    reference = request.digest or tag
    digest = source.client.head_manifest(source.repository, reference)
    if digest is None and request.digest:
        raise UsageError(f"{source.image} has no manifest {request.digest}", hint="Check the digest CI printed.")
    if digest is None:
        raise UsageError(f"{source.image} has no version {request.version}",
                         hint="Push it first (`delivery ci run …`), or check the version and --to environment.")
    return tag, digest


def _checks(request: PromoteRequest, source: Location, tag: str, digest: str, store: ReleaseStore,
            verify: Verifier, now: datetime) -> tuple[list[str], VerifiedProvenance | None]:
    """Every reason not to promote (empty: go), and the verified provenance if it was read."""
    env = request.environment
    problems = _source_channel_problems(request, store, digest)
    window = env.active_window(now)
    if window is not None:
        problems.append(f"{env.name} is in freeze window {window.name} ({window.start}-{window.end} {window.timezone})")
    state = store.read(env.name, request.name).state
    problems += [f"freeze {f.id} by {f.owner}: {f.reason}" for f in active_freezes(state.freezes, now)]
    if source.client.head_manifest(source.repository, yank_tag(tag)) is not None:
        problems.append(f"{request.version} is yanked")
    provenance, gate_problems = _gates(env, source, digest, verify)
    return problems + gate_problems, provenance


def _source_channel_problems(request: PromoteRequest, store: ReleaseStore, digest: str) -> list[str]:
    if not request.from_channel:
        return []
    env_name, _, channel = request.from_channel.rpartition(":")
    env_name = env_name or request.environment.name
    pin = store.read(env_name, request.name).state.channels.get(channel)
    if pin is None or pin.digest != digest:
        now_at = f"{pin.version} ({pin.digest[:19]}…)" if pin else "nothing"
        return [f"{request.version} is not what {env_name}:{channel} holds (it holds {now_at})"]
    return []


def _gates(env: Environment, source: Location, digest: str,
           verify: Verifier) -> tuple[VerifiedProvenance | None, list[str]]:
    if not env.required_gates:
        return None, []
    try:
        provenance = verify(source, digest)
    except ProvenanceError as e:
        return None, [f"provenance: {e.message}"]
    problems = []
    if "tests" in env.required_gates and not provenance.test_passed:
        problems.append("the attestation does not record passing tests")
    if "scan" in env.required_gates and not provenance.scan_passed:
        problems.append("the attestation does not record a passing vulnerability scan")
    return provenance, problems


def _clinical_scan(request: PromoteRequest, source: Location, digest: str, provenance: VerifiedProvenance | None,
                   verify: Verifier) -> ScanRecord | None:
    """A clinical channel takes only images whose vulnerabilities were freshly scanned, unless overridden.

    Raises:
        PromotionRefused: unscanned or stale, and no --allow-unscanned (--force does not cover it).
    """
    env = request.environment
    if not env.is_clinical(request.channel):
        return None
    scan = provenance.scan if provenance is not None else _scan_of(source, digest, verify)
    if scan.scanned:
        return scan
    if not request.allow_unscanned:
        raise PromotionRefused(f"refusing to promote {request.name} {request.version} into the clinical channel "
                               f"{env.name}:{request.channel}: vulnerabilities {scan.describe()}",
                               hint="Rebuild with a current vulnerability DB (`delivery scanner db import`), or "
                                    "override with --allow-unscanned --reason TEXT (audited).")
    return scan.with_override(Override(request.reason, request.actor))


def _scan_of(source: Location, digest: str, verify: Verifier) -> ScanRecord:
    try:
        return verify(source, digest).scan
    except ProvenanceError as e:
        return ScanRecord("unscanned", f"no verifiable attestation: {e.message}")


def _move_channel(store: ReleaseStore, request: PromoteRequest, pin: ChannelPin) -> str | None:
    """Point the channel at `pin` with compare-and-set, re-reading on a concurrent change; returns the old ref."""
    for _ in range(CAS_ATTEMPTS):
        current = store.read(request.environment.name, request.name)
        old = current.state.channels.get(request.channel)
        if old is not None and old.digest == pin.digest and old.version == pin.version:
            return old.reference
        channels = {**current.state.channels, request.channel: pin}
        state: ReleaseState = current.state.model_copy(update={"channels": channels})
        try:
            store.write(state, current.index)
        except ConflictError:
            continue
        return old.reference if old else None
    raise ConflictError(f"the release state of {request.name} in {request.environment.name} kept changing",
                        hint="Run the command again.")


def _audit(audit: AuditLog, request: PromoteRequest, result: Promotion, when: datetime) -> None:
    subject = f"{result.environment}/{request.name}:{result.channel}"
    details = {"version": result.version, "digest": result.digest, "reference": result.reference,
               "previous": result.previous, "copy": result.copy.method, "from": request.from_channel,
               "bypassed": list(result.bypassed), "scan": result.scan.as_json() if result.scan else None}
    promoted = AuditEvent("promote", subject, request.reason, request.actor, when, details)
    audit.append(promoted)
    notify.send(Notification.of(promoted))
    if result.scan is not None and result.scan.override is not None:
        audit.append(AuditEvent("allow-unscanned", subject, request.reason, request.actor, when,
                                {"command": "promote", "digest": result.digest, "scan": result.scan.as_json()}))
    if request.force:
        audit.append(AuditEvent("force", subject, request.reason, request.actor, when,
                                {"command": "promote", "bypassed": list(result.bypassed), "digest": result.digest}))
