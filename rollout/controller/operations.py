"""What humans ask of a rollout (deploy, pause, resume, abort, rollback, freeze): CAS edits of release state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from delivery.audit import AuditEvent, AuditLog, current_actor
from delivery.environments import FreezeWindow
from delivery.errors import DeliveryError, UsageError
from delivery.manifest import Biomarker
from delivery.release.state import ConflictError, Freeze, ReleaseState, ReleaseStore
from rollout import freeze
from rollout.controller.loop import announce_phase, load_status, save_status
from rollout.controller.model import ReleaseRef, RolloutStatus, steps_from_manifest
from rollout.controller.trail import record_transition
from rollout.jobspec import SPEC_HASH, ClusterSettings, Release, Track, build_job, job_id
from rollout.scheduler import Scheduler

ATTEMPTS = 5
EARLIER_KEPT = 10  # older stables a rollout remembers (each `rollout rollback` after a failed rollout goes one back)


class FreezeNotFound(DeliveryError):
    """No freeze with that id (already lifted, or never there)."""


def _edit(store: ReleaseStore, environment: str, biomarker: str,
          change: Callable[[ReleaseState], ReleaseState]) -> ReleaseState:
    """Read-modify-write with compare-and-set, retried when someone else wrote in between."""
    for _ in range(ATTEMPTS):
        current = store.read(environment, biomarker)
        new = change(current.state)
        try:
            store.write(new, current.index)
            return new
        except ConflictError:
            continue
    raise ConflictError(f"release state of {biomarker} in {environment} keeps changing",
                        hint="Another controller is very busy; run the command again.")


def start_rollout(*, store: ReleaseStore, scheduler: Scheduler, manifest: Biomarker, variant: str, release: Release,
                  environment: str, now: datetime, audit: AuditLog | None = None, override_reason: str | None = None,
                  cluster: ClusterSettings | None = None, actor: str | None = None,
                  windows: freeze.WindowSource = freeze.environment_windows) -> RolloutStatus:
    """Record a new rollout (refused while a freeze or a freeze window of the environment holds, unless overridden
    with an audited reason)."""
    who = actor or current_actor()
    open_windows = windows(environment)
    stable_id = job_id(manifest.name, variant)
    current = scheduler.job(stable_id).value
    started: list[RolloutStatus] = []  # the rollout this call started (none when it was already in progress)

    def change(state: ReleaseState) -> ReleaseState:
        old = load_status(state)
        started.clear()
        if old is not None and not old.terminal:
            if old.candidate.digest == release.digest:
                return state
            raise DeliveryError(f"a rollout of {old.candidate.version} is in progress ({old.phase})",
                                hint="Wait for it, or `rollout abort` it first.")
        _check_freeze(state, now, override_reason, open_windows)
        stable = old.stable if old is not None and old.phase == "Succeeded" else _stable_from(current)
        status = _new_status(manifest, variant, release, environment, now, stable, current, cluster,
                             override_reason).model_copy(update={"earlier": _earlier(old)})
        started.append(status.logged(now, who, "deploy", override_reason or ""))
        return save_status(state, started[-1])

    state = _edit(store, environment, manifest.name, change)
    for new in started:  # the deploy, in the audit log where the next rollout cannot replace it
        record_transition(audit, None, new)
    if override_reason and audit is not None:
        audit.append(AuditEvent("freeze-override", f"{environment}/{manifest.name}", override_reason, actor=who,
                                details={"version": release.version, "digest": release.digest}))
    status = load_status(state)
    assert status is not None
    return status


def _earlier(old: RolloutStatus | None) -> tuple[ReleaseRef, ...]:
    """The stables before the next rollout's `previous` (its stable at the start), newest last."""
    if old is None:
        return ()
    if old.phase == "Succeeded" and old.previous is not None:
        return (*old.earlier, old.previous)[-EARLIER_KEPT:]
    return old.earlier  # rolled back, aborted or failed: the stable did not change


def _check_freeze(state: ReleaseState, now: datetime, override_reason: str | None,
                  windows: tuple[FreezeWindow, ...]) -> None:
    active = freeze.blocking(state, now, windows)
    if not active:
        return
    if override_reason is None:
        raise freeze.FrozenError(f"{state.biomarker} is frozen in {state.environment}: {freeze.describe(active)}",
                                 hint="Wait for the freeze to end, or pass --override-freeze --reason TEXT (audited).")
    if not override_reason.strip():
        raise UsageError("--override-freeze needs a non-empty --reason")


def _stable_from(job: Any) -> ReleaseRef | None:
    if job is None or job.stop:
        return None
    meta = dict(job.meta)
    return ReleaseRef(version=meta.get("version", "?"), digest=meta.get("digest", ""), image="",
                      attestation_digest=meta.get("attestation_digest", ""), spec_hash=meta.get(SPEC_HASH, ""))


def job_specs(manifest: Biomarker, variant: str, release: Release,
              cluster: ClusterSettings | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(candidate, promote) job specs a rollout registers: the canary parent then the stable one for batch jobs,
    the stable job (its canaries through the update block) twice for services."""
    track: Track = "canary" if manifest.job_type == "batch" else "stable"
    return (build_job(manifest, variant, release, track=track, cluster=cluster),
            build_job(manifest, variant, release, track="stable", cluster=cluster))


def _new_status(manifest: Biomarker, variant: str, release: Release, environment: str, now: datetime,
                stable: ReleaseRef | None, current: Any, cluster: ClusterSettings | None,
                override_reason: str | None) -> RolloutStatus:
    candidate_spec, promote_spec = job_specs(manifest, variant, release, cluster)
    cand = ReleaseRef(version=release.version, digest=release.digest, image=release.image,
                      attestation_digest=release.attestation_digest, spec_hash=candidate_spec["Meta"][SPEC_HASH])
    status = RolloutStatus(
        id=uuid.uuid4().hex[:12], biomarker=manifest.name, environment=environment, variant=variant,
        job_type=manifest.job_type, candidate=cand, stable=stable, previous=stable, candidate_spec=candidate_spec,
        promote_spec=promote_spec, steps=steps_from_manifest(manifest), thresholds=manifest.rollout.gates,
        step_started_at=now, started_at=now, base_version=current.version if current else None,
        freeze_override=override_reason)
    return status.with_condition("Progressing", "True", "Started", f"rolling out {release.version}", now)


def request(store: ReleaseStore, environment: str, biomarker: str, what: str, *, now: datetime,
            reason: str = "", actor: str | None = None, audit: AuditLog | None = None) -> RolloutStatus:
    """pause | resume | abort | rollback, recorded on the rollout (and audited) for the controller to carry out."""
    who = actor or current_actor()
    before: list[RolloutStatus] = []  # the status the winning compare-and-set replaced

    def change(state: ReleaseState) -> ReleaseState:
        status = load_status(state)
        if status is None:
            raise DeliveryError(f"no rollout of {biomarker} in {environment}", hint="Start one with `rollout deploy`.")
        before[:] = [status]
        return save_status(state, _requested(status, what, now, reason, who))

    state = _edit(store, environment, biomarker, change)
    status = load_status(state)
    assert status is not None
    announce_phase(before[0], status)
    if audit is not None:
        audit.append(AuditEvent(f"rollout-{what}", f"{environment}/{biomarker}", reason, actor=who,
                                details={"rollout": status.id}))
    return status


def _requested(s: RolloutStatus, what: str, now: datetime, reason: str, actor: str) -> RolloutStatus:
    if what == "rollback" and s.phase == "Succeeded":
        if s.previous is None:
            raise DeliveryError("there is no previous stable version to roll back to")
        update: dict[str, Any] = {"phase": "RollingBack", "failure_reason": "RolledBack", "stable": s.previous,
                                  "abort_reason": reason or "rollback requested"}
    elif what == "rollback" and s.terminal:
        update = _back_to_earlier(s, reason)
    elif s.terminal:
        raise DeliveryError(f"the rollout of {s.candidate.version} already ended ({s.phase})")
    elif what in {"abort", "rollback"}:
        update = {"abort_reason": reason or f"{what} requested"}
    elif what == "pause":
        update = {"phase": "Paused", "pause_reasons": (*s.pause_reasons, "Manual"), "paused_since": now}
    elif what == "resume":
        update = {"phase": "Progressing", "pause_reasons": (), "resumed": True, "paused_since": None}
    elif what == "promote":
        update = {"step_index": len(s.steps) - 1, "resumed": True, "pause_reasons": (), "phase": "Progressing"}
    else:
        raise UsageError(f"unknown request {what!r}")
    return s.model_copy(update=update).logged(now, actor, what, reason)


def _back_to_earlier(s: RolloutStatus, reason: str) -> dict[str, Any]:
    """A rollout that ended without promoting (an automatic rollback, an abort, a failure) left the stable where it
    was: `rollback` now returns to the stable before that one, as it would have after a promotion."""
    if not s.earlier:
        current = s.stable.version if s.stable else "none"
        raise DeliveryError(f"the rollout of {s.candidate.version} already ended ({s.phase}); no stable version "
                            f"older than {current} is recorded to roll back to",
                            hint="Deploy the version you want with `rollout deploy NAME --version V`.")
    target = s.earlier[-1]
    return {"phase": "RollingBack", "failure_reason": "RolledBack", "stable": target, "previous": target,
            "earlier": s.earlier[:-1], "abort_reason": reason or f"rollback to {target.version} requested"}


def add_freeze(store: ReleaseStore, environment: str, biomarker: str, item: Freeze, audit: AuditLog | None,
               *, actor: str | None = None) -> None:
    """Store a freeze (audited, `actor` defaulting to whoever runs this process)."""
    _edit(store, environment, biomarker, lambda st: st.model_copy(update={"freezes": (*st.freezes, item)}))
    if audit is not None:
        audit.append(AuditEvent("freeze", f"{environment}/{biomarker}", item.reason, actor=actor or current_actor(),
                                details={"id": item.id, "version": item.version, "cohort": item.cohort,
                                         "expires_at": item.expires_at.isoformat() if item.expires_at else None,
                                         "cron": item.cron}))


def remove_freeze(store: ReleaseStore, environment: str, biomarker: str, freeze_id: str,
                  audit: AuditLog | None, reason: str = "", *, actor: str | None = None) -> None:
    """Lift one freeze (audited, `actor` defaulting to whoever runs this process)."""
    def change(state: ReleaseState) -> ReleaseState:
        kept = tuple(f for f in state.freezes if f.id != freeze_id)
        if len(kept) == len(state.freezes):
            raise FreezeNotFound(f"no freeze {freeze_id} on {biomarker} in {environment}",
                                 hint=f"List them with `rollout status {biomarker} --env {environment}`.")
        return state.model_copy(update={"freezes": kept})

    _edit(store, environment, biomarker, change)
    if audit is not None:
        audit.append(AuditEvent("unfreeze", f"{environment}/{biomarker}", reason, actor=actor or current_actor(),
                                details={"id": freeze_id}))
