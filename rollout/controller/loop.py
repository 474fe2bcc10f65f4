"""Observe → decide → act, one action per pass; every write is compare-and-set, so restarts converge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from delivery import notify
from delivery.audit import AuditLog
from delivery.errors import DeliveryError
from delivery.notify import Notification
from delivery.release.state import ChannelPin, ConflictError, ReleaseState, ReleaseStore
from rollout import freeze
from rollout.controller.decide import (
    Action,
    FailDeployment,
    MarkStable,
    Observed,
    PromoteDeployment,
    Register,
    Revert,
    StopJob,
    UpdateStatus,
    Verify,
    decide,
)
from rollout.controller.gates import ExecutionStats, GateContext, GateResult, load_gate
from rollout.controller.model import Analysis, Event, ReleaseRef, RolloutStatus
from rollout.controller.trail import record_transition
from rollout.nomad import NomadConflict
from rollout.scheduler import Scheduler

log = logging.getLogger(__name__)
NOTIFIED_PHASES = frozenset({"Succeeded", "RolledBack", "Failed", "Aborted", "Paused"})
Clock = Callable[[], datetime]


class ProvenanceVerifier(Protocol):
    """Checks an image's signed attestation; returns the attestation digest or raises a DeliveryError."""

    def verify(self, release: ReleaseRef) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What one pass did."""

    action: Action | None
    conflict: bool = False


class Controller:
    """Drives the rollout of one biomarker in one environment."""

    def __init__(self, *, environment: str, biomarker: str, scheduler: Scheduler, store: ReleaseStore,
                 verifier: ProvenanceVerifier, stats: ExecutionStats, clock: Clock,
                 on_action: Callable[[Action], None] | None = None,
                 windows: freeze.WindowSource = freeze.environment_windows, audit: AuditLog | None = None) -> None:
        self.environment, self.biomarker = environment, biomarker
        self.audit = audit  # every history line and gate verdict written is appended here too (never dropped)
        self.scheduler, self.store, self.verifier, self.stats = scheduler, store, verifier, stats
        self.clock = clock
        self.on_action = on_action
        self.windows = windows  # the environment file's freeze windows block like ad-hoc freezes
        self._state: ReleaseState | None = None
        self.wait_index = 0

    # ---------------------------------------------------------------- observe
    def observe(self) -> Observed:
        """Read release state and the Nomad jobs the rollout is about."""
        now = self.clock()
        versioned = self.store.read(self.environment, self.biomarker)
        self._state = versioned.state
        status = load_status(versioned.state)
        if status is None or status.terminal:
            return Observed(now, status, versioned.index)
        stable_id, cand_id = status.promote_spec["ID"], status.candidate_spec["ID"]
        stable = self.scheduler.job(stable_id).value
        versions = self.scheduler.versions(stable_id) if stable else ()
        candidate = self.scheduler.job(cand_id).value if cand_id != stable_id else None
        deployments = self.scheduler.deployments(stable_id) if status.job_type == "service" else ()
        gates = self._gates(status, now, deployments[-1] if deployments else None)
        blocking = freeze.blocking(versioned.state, now, self.windows(self.environment))
        return Observed(now, status, versioned.index, blocking, stable, versions,
                        candidate, deployments, gates)

    def _gates(self, status: RolloutStatus, now: datetime, deployment: object) -> tuple[GateResult, ...]:
        step = status.current_step
        if not isinstance(step, Analysis):
            return ()
        ctx = GateContext(status.biomarker, status.candidate.version, status.stable.version if status.stable else None,
                          status.step_started_at, step.min_executions, status.thresholds, self.stats,
                          deployment if status.job_type == "service" else None)  # type: ignore[arg-type]
        return tuple(load_gate(name).evaluate(ctx) for name in step.gates)

    # ---------------------------------------------------------------- act
    def act(self, o: Observed, action: Action) -> None:
        """Perform one action; each is a single compare-and-set write (or an idempotent one)."""
        assert o.status is not None
        match action:
            case Verify():
                digest = self.verifier.verify(o.status.candidate)
                cand = o.status.candidate.model_copy(update={"attestation_digest": digest})
                status = o.status.model_copy(update={"verified": True, "candidate": cand})
                self._write(status.logged(o.now, "rollout-controller", "verified", f"attestation {digest}"), o)
            case Register(job_id=_, spec=spec, enforce_index=index):
                self.scheduler.register(spec, enforce_index=index)
            case Revert(job_id=job_id, version=version, prior_version=prior):
                self.scheduler.revert(job_id, version, enforce_prior_version=prior)
            case MarkStable(job_id=job_id, version=version):
                self.scheduler.mark_stable(job_id, version)
            case StopJob(job_id=job_id):
                self.scheduler.deregister(job_id)
            case PromoteDeployment(deployment_id=dep_id):
                self._nomad().promote(dep_id)
            case FailDeployment(deployment_id=dep_id):
                self._nomad().fail(dep_id)
            case UpdateStatus(status=status):
                self._write(status, o)

    def _nomad(self) -> _DeploymentWriter:
        writer: _DeploymentWriter = self.scheduler  # type: ignore[assignment]
        return writer

    def _write(self, status: RolloutStatus, o: Observed) -> None:
        assert self._state is not None
        self.store.write(save_status(self._state, status), o.state_index)
        announce_phase(o.status, status)
        record_transition(self.audit, o.status, status)

    # ---------------------------------------------------------------- loop
    def step(self) -> Outcome:
        """One level-triggered pass; a lost compare-and-set race just means: look again."""
        o = self.observe()
        action = decide(o)
        if action is None:
            return Outcome(None)
        log.info("rollout %s/%s: %s", self.environment, self.biomarker, action)
        try:
            self.act(o, action)
        except (ConflictError, NomadConflict) as e:
            log.info("lost a compare-and-set race (%s); observing again", e.message)
            return Outcome(action, conflict=True)
        if self.on_action is not None:
            self.on_action(action)
        return Outcome(action)

    def run(self, *, wait: Callable[[Controller], None] | None = None, max_passes: int = 500) -> RolloutStatus | None:
        """Act until the rollout ends or waits on something (a human, the clock, executions)."""
        for _ in range(max_passes):
            outcome = self.step()
            if outcome.action is not None:
                continue
            status = load_status(self.store.read(self.environment, self.biomarker).state)
            if status is None or status.terminal or wait is None:
                return status
            wait(self)
        return load_status(self.store.read(self.environment, self.biomarker).state)

    def block_for_change(self, wait_s: float) -> None:
        """Sleep until Nomad reports a change to this rollout's job (blocking query) or `wait_s` passes."""
        status = load_status(self.store.read(self.environment, self.biomarker).state)
        if status is None:
            return
        job_id = status.promote_spec["ID"]
        if status.job_type == "service":
            got = self.scheduler.latest_deployment(job_id, index=self.wait_index or 1, wait=wait_s)
        else:
            got = self.scheduler.job(job_id, index=self.wait_index or 1, wait=wait_s)  # type: ignore[assignment]
        self.wait_index = got.index


class _DeploymentWriter(Protocol):
    def promote(self, deployment_id: str) -> None: ...

    def fail(self, deployment_id: str) -> None: ...


def load_status(state: ReleaseState) -> RolloutStatus | None:
    """The controller-owned `rollout` field as a typed status."""
    if not state.rollout:
        return None
    try:
        return RolloutStatus.model_validate(state.rollout)
    except ValueError as e:
        raise DeliveryError(f"rollout status of {state.biomarker} in {state.environment} is unreadable: {e}",
                            hint="Inspect it with `rollout status --json`; `rollout abort` resets it.") from e


def announce_phase(before: RolloutStatus | None, after: RolloutStatus) -> None:
    """Notify (`delivery.notifier`) once when a written rollout status enters a phase people act on."""
    if after.phase not in NOTIFIED_PHASES or (before is not None and before.phase == after.phase):
        return
    last = after.history[-1] if after.history else Event(at=after.started_at, actor="rollout-controller", action="")
    notify.send(Notification(
        f"rollout-{after.phase.lower()}", f"{after.environment}/{after.biomarker}", last.actor, last.message, last.at,
        {"rollout": after.id, "phase": after.phase, "candidate": after.candidate.version,
         "stable": after.stable.version if after.stable else None, "failure_reason": after.failure_reason,
         "pause_reasons": list(after.pause_reasons)}))


def save_status(state: ReleaseState, status: RolloutStatus) -> ReleaseState:
    """`state` with the rollout field replaced and the channels following it (freezes untouched)."""
    channels = rollout_channels(state.channels, status)
    return state.model_copy(update={"rollout": status.model_dump(mode="json"), "channels": channels})


def rollout_channels(channels: Mapping[str, ChannelPin], status: RolloutStatus) -> dict[str, ChannelPin]:
    """Channels as the rollout leaves them, so `@stable`/`@candidate` pins and routing mean what runs.

    While the rollout goes on, `candidate` is its candidate; once it succeeds `stable` is too; once it is
    rolled back, aborted or failed, `candidate` is gone (no study is routed to it) and `stable` is what runs.
    """
    out = dict(channels)
    if status.phase in ("Progressing", "Paused"):
        out["candidate"] = _pin(status.candidate, status, channels.get("candidate"))
    elif status.phase == "Succeeded":
        out["candidate"] = out["stable"] = _pin(status.candidate, status, channels.get("stable"))
    else:
        out.pop("candidate", None)
        if status.stable is not None:
            out["stable"] = _pin(status.stable, status, channels.get("stable"))
    return out


def _pin(ref: ReleaseRef, status: RolloutStatus, current: ChannelPin | None) -> ChannelPin:
    if current is not None and current.digest == ref.digest and current.version == ref.version:
        return current  # unchanged: keep who moved it and when
    last = status.history[-1] if status.history else None
    return ChannelPin(version=ref.version, digest=ref.digest, image=ref.image,
                      moved_at=last.at if last else status.started_at,
                      moved_by=last.actor if last else "rollout-controller",
                      reason=f"rollout {status.id}: {status.phase}")
