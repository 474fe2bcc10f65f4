"""The pure heart of the controller: `decide(observed) -> Action | None`, no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from delivery.release.state import Freeze
from rollout.controller.gates import GateResult
from rollout.controller.model import Analysis, GateEvaluation, Pause, Promote, RolloutStatus, SetWeight
from rollout.jobspec import SPEC_HASH
from rollout.nomad import Deployment, JobView

ACTOR = "rollout-controller"


@dataclass(frozen=True)
class Observed:
    """One consistent-enough snapshot: release state (with its CAS index) and the Nomad jobs it is about."""

    now: datetime
    status: RolloutStatus | None
    state_index: int
    freezes: tuple[Freeze, ...] = ()
    stable_job: JobView | None = None
    stable_versions: tuple[JobView, ...] = ()
    candidate_job: JobView | None = None
    deployments: tuple[Deployment, ...] = ()
    gates: tuple[GateResult, ...] = ()


@dataclass(frozen=True)
class Verify:
    """Check the candidate image's attestation before touching Nomad."""


@dataclass(frozen=True)
class Register:
    job_id: str
    spec: dict[str, Any] = field(repr=False)
    enforce_index: int
    why: str


@dataclass(frozen=True)
class Revert:
    job_id: str
    version: int
    prior_version: int


@dataclass(frozen=True)
class MarkStable:
    job_id: str
    version: int


@dataclass(frozen=True)
class StopJob:
    job_id: str


@dataclass(frozen=True)
class PromoteDeployment:
    deployment_id: str


@dataclass(frozen=True)
class FailDeployment:
    deployment_id: str


@dataclass(frozen=True)
class UpdateStatus:
    """Write a new rollout status with compare-and-set on the release state."""

    status: RolloutStatus = field(repr=False)
    why: str


Action = Verify | Register | Revert | MarkStable | StopJob | PromoteDeployment | FailDeployment | UpdateStatus


def decide(o: Observed) -> Action | None:
    """At most one next action for the rollout in `o`; None when there is nothing to do but wait."""
    s = o.status
    if s is None or s.terminal:
        return None
    if s.abort_reason is None and s.phase != "RollingBack" and not s.verified:
        return Verify()
    if s.job_type == "batch":
        return _decide_batch(o, s)
    return _decide_service(o, s)


# ---------------------------------------------------------------- shared
def _hash(job: JobView | None) -> str | None:
    return job.meta_value(SPEC_HASH) if job else None


def _index(job: JobView | None) -> int:
    return job.job_modify_index if job else 0


def _finish(o: Observed, s: RolloutStatus, phase: str, reason: str, message: str) -> UpdateStatus:
    status = s.model_copy(update={"phase": phase, "weight": 0 if phase != "Succeeded" else s.weight,
                                  "pause_reasons": ()})
    status = status.with_condition("Completed", "True", reason, message, o.now)
    status = status.with_condition("Progressing", "False", reason, message, o.now)
    return UpdateStatus(status.logged(o.now, ACTOR, phase.lower(), message), f"{phase}: {reason}")


def _advance(o: Observed, s: RolloutStatus, update: dict[str, Any] | None = None) -> UpdateStatus:
    step = s.current_step
    changes = {"step_index": s.step_index + 1, "step_started_at": o.now, "paused_since": None, "resumed": False,
               "pause_reasons": (), "phase": "Progressing", **(update or {})}
    status = s.model_copy(update=changes)
    kind = step.kind if step else "done"
    status = status.with_condition("Progressing", "True", "StepCompleted", f"step {s.step_index + 1} ({kind}) done",
                                   o.now)
    return UpdateStatus(status.logged(o.now, ACTOR, f"step-{kind}", f"step {s.step_index + 1} done"), f"advance {kind}")


def _wait(o: Observed, s: RolloutStatus, reason: str, message: str) -> UpdateStatus | None:
    """Record a pause reason once; then nothing to do until a human or the clock acts."""
    if reason in s.pause_reasons:
        return None
    status = s.model_copy(update={"phase": "Paused", "pause_reasons": (*s.pause_reasons, reason),
                                  "paused_since": s.paused_since or o.now})
    status = status.with_condition("Paused", "True", reason, message, o.now)
    return UpdateStatus(status.logged(o.now, ACTOR, "paused", f"{reason}: {message}"), f"pause: {reason}")


def _frozen(o: Observed, s: RolloutStatus) -> bool:
    return bool(o.freezes) and s.freeze_override is None


def _fail_with(o: Observed, s: RolloutStatus, reason: str, message: str) -> UpdateStatus:
    status = s.model_copy(update={"phase": "RollingBack", "failure_reason": reason, "weight": 0})
    status = status.with_condition("Degraded", "True", reason, message, o.now)
    return UpdateStatus(status.logged(o.now, ACTOR, "rolling-back", f"{reason}: {message}"), f"roll back: {reason}")


def _step_wait_or_advance(o: Observed, s: RolloutStatus) -> Action | None:
    """Pause and Analysis steps, shared by both strategies."""
    step = s.current_step
    if isinstance(step, Pause):
        if s.resumed:
            return _advance(o, s)
        if step.duration_s is not None:
            if s.step_started_at + timedelta(seconds=step.duration_s) <= o.now:
                return _advance(o, s)
            return None
        return _wait(o, s, "PauseStep", "waiting for `rollout resume`")
    if isinstance(step, Analysis):
        judged = _recorded(o, s)  # every judgement that changed is kept in the status, with its numbers
        failed = [g for g in o.gates if g.verdict == "fail"]
        if failed:
            return _fail_with(o, judged, "GateFailed", "; ".join(f"{g.name}: {g.message}" for g in failed))
        if o.gates and all(g.verdict == "pass" for g in o.gates):
            return _advance(o, judged)
        return UpdateStatus(judged, "record gate results") if judged is not s else None
    return None


def _recorded(o: Observed, s: RolloutStatus) -> RolloutStatus:
    return s.with_gates(tuple(
        GateEvaluation(at=o.now, step=s.step_index, name=g.name, verdict=g.verdict, passed=g.verdict == "pass",
                       message=g.message, measured=dict(g.measured), threshold=dict(g.threshold))
        for g in o.gates))


# ---------------------------------------------------------------- batch
def _decide_batch(o: Observed, s: RolloutStatus) -> Action | None:
    stable_id, cand_id = s.promote_spec["ID"], s.candidate_spec["ID"]
    if s.abort_reason is not None and s.phase != "RollingBack":
        return _fail_with(o, s, "Aborted", s.abort_reason)
    if s.phase == "RollingBack":
        return _batch_rollback(o, s, stable_id, cand_id)
    if s.stable is None:
        return _batch_first(o, s, stable_id)
    step = s.current_step
    if step is None or isinstance(step, Promote):
        return _batch_promote(o, s, stable_id, cand_id)
    cand = o.candidate_job
    if cand is None or cand.stop or _hash(cand) != s.candidate.spec_hash:
        if _frozen(o, s):
            return _wait(o, s, "Frozen", "a freeze blocks new candidates")
        return Register(cand_id, s.candidate_spec, _index(cand), "candidate parent job")
    if isinstance(step, SetWeight):
        if _frozen(o, s):
            return _wait(o, s, "Frozen", "a freeze blocks progress")
        return _advance(o, s, {"weight": step.weight})
    return _step_wait_or_advance(o, s)


def _batch_first(o: Observed, s: RolloutStatus, stable_id: str) -> Action | None:
    """No stable version yet: the candidate becomes stable directly (nothing to compare against)."""
    job = o.stable_job
    if job is None or _hash(job) != s.promote_spec["Meta"][SPEC_HASH] or job.stop:
        return Register(stable_id, s.promote_spec, _index(job), "first version of the stable parent job")
    if not job.stable:
        return MarkStable(stable_id, job.version)
    stable = s.candidate.model_copy(update={"spec_hash": s.promote_spec["Meta"][SPEC_HASH]})
    done = s.model_copy(update={"stable": stable, "weight": 0, "step_index": len(s.steps)})
    return _finish(o, done, "Succeeded", "FirstVersion", f"{s.candidate.version} is the first stable version")


def _batch_promote(o: Observed, s: RolloutStatus, stable_id: str, cand_id: str) -> Action | None:
    if _frozen(o, s):
        return _wait(o, s, "Frozen", "a freeze blocks promotion")
    job = o.stable_job
    target = s.promote_spec["Meta"][SPEC_HASH]
    if job is None or _hash(job) != target:
        return Register(stable_id, s.promote_spec, _index(job), "promote the candidate spec to the stable job")
    if not job.stable:
        return MarkStable(stable_id, job.version)
    if o.candidate_job is not None and not o.candidate_job.stop:
        return StopJob(cand_id)
    done = s.model_copy(update={"stable": s.candidate.model_copy(update={"spec_hash": target}), "weight": 0,
                                "step_index": len(s.steps)})
    return _finish(o, done, "Succeeded", "Promoted", f"{s.candidate.version} is stable")


def _batch_rollback(o: Observed, s: RolloutStatus, stable_id: str, cand_id: str) -> Action | None:
    """Stop routing, stop the candidate, and revert the stable job if promotion had begun."""
    if s.weight != 0:
        return UpdateStatus(s.model_copy(update={"weight": 0}), "stop routing to the candidate")
    if o.candidate_job is not None and not o.candidate_job.stop:
        return StopJob(cand_id)
    job = o.stable_job
    if s.stable is not None and job is not None and _hash(job) != s.stable.spec_hash:
        source = next((v for v in o.stable_versions if _hash(v) == s.stable.spec_hash and v.version != job.version),
                      None)
        if source is not None:
            return Revert(stable_id, source.version, job.version)
    if s.stable is not None and job is not None and not job.stable and _hash(job) == s.stable.spec_hash:
        return MarkStable(stable_id, job.version)
    phase = "Aborted" if s.failure_reason == "Aborted" else "RolledBack"
    return _finish(o, s, phase, s.failure_reason or "RolledBack", s.abort_reason or "candidate rolled back")


# ---------------------------------------------------------------- service
def _registered(o: Observed, s: RolloutStatus) -> JobView | None:
    """The job version this rollout registered (found in Nomad, so a crash right after registering is fine)."""
    base = s.base_version if s.base_version is not None else -1
    return next((v for v in o.stable_versions if v.version > base and _hash(v) == s.candidate.spec_hash), None)


def _decide_service(o: Observed, s: RolloutStatus) -> Action | None:
    job_id = s.candidate_spec["ID"]
    mine = _registered(o, s)
    if mine is None:
        if s.abort_reason is not None or s.phase == "RollingBack":
            return _finish(o, s, "Aborted", "Aborted", s.abort_reason or "aborted before registering")
        if _frozen(o, s):
            return _wait(o, s, "Frozen", "a freeze blocks new candidates")
        return Register(job_id, s.candidate_spec, _index(o.stable_job), "register the candidate version")
    dep = next((d for d in reversed(o.deployments) if d.job_version == mine.version), None)
    if dep is None:
        return None
    if dep.status in {"running", "paused"}:
        return _service_running(o, s, dep)
    return _service_ended(o, s, dep, mine)


def _service_running(o: Observed, s: RolloutStatus, dep: Deployment) -> Action | None:
    if s.failure_reason is not None or s.abort_reason is not None:
        if s.failure_reason is None:
            return _fail_with(o, s, "Aborted", s.abort_reason or "")
        return FailDeployment(dep.id)
    placed = sum(g.placed for g in dep.groups)
    if not placed and o.now >= s.started_at + timedelta(seconds=s.placement_deadline_s):
        return _fail_with(o, s, "NoCapacity", f"nothing placed within {s.placement_deadline_s}s (no capacity)")
    canaries = [g for g in dep.groups if g.desired_canaries and not g.promoted]
    if not canaries:
        return None
    if any(g.healthy < g.desired_canaries for g in canaries):
        return None
    step = s.current_step
    if step is None or isinstance(step, Promote):
        if _frozen(o, s):
            return _wait(o, s, "Frozen", "a freeze blocks promotion")
        return PromoteDeployment(dep.id)
    if isinstance(step, SetWeight):  # Nomad's canary count sets the share of a service; nothing to route
        if _frozen(o, s):  # ... but the weight is what routing and the status page read: a freeze holds it
            return _wait(o, s, "Frozen", "a freeze blocks progress")
        return _advance(o, s, {"weight": step.weight})
    return _step_wait_or_advance(o, s)


def _service_ended(o: Observed, s: RolloutStatus, dep: Deployment, mine: JobView) -> Action | None:
    rolling_back = s.phase == "RollingBack"
    if dep.status == "successful" and not rolling_back:
        done = s.model_copy(update={"stable": s.candidate, "step_index": len(s.steps), "weight": 100})
        return _finish(o, done, "Succeeded", "Promoted", dep.description)
    if dep.status == "cancelled" and not rolling_back:
        return _finish(o, s, "Failed", "Superseded", dep.description)
    after = [d for d in o.deployments if d.job_version > mine.version]
    target, job = s.stable, o.stable_job
    # Nomad's auto-revert brought back the stable; a later `rollback` to an older stable must revert again.
    on_target = target is None or job is None or _hash(job) == target.spec_hash
    if dep.status == "failed" and "rolling back to job version" in dep.description and on_target:
        if not after or not after[-1].terminal:
            return _follow_revert(after[-1]) if after else None  # follow Nomad's auto-revert to its end
        reason = s.failure_reason or "AutoReverted"
        return _finish(o, s, "RolledBack", reason, f"{dep.description}; revert deployment {after[-1].status}")
    if target is not None and job is not None and _hash(job) != target.spec_hash:
        source = next((v for v in o.stable_versions if _hash(v) == target.spec_hash), None)
        if source is not None:
            return Revert(s.candidate_spec["ID"], source.version, job.version)
    if target is not None and job is not None and _hash(job) == target.spec_hash:
        if after and not after[-1].terminal:
            return _follow_revert(after[-1])
        return _finish(o, s, "RolledBack", s.failure_reason or "RolledBack", f"back on {target.version}")
    return _finish(o, s, "Failed", s.failure_reason or "DeploymentFailed", dep.description)


def _follow_revert(dep: Deployment) -> Action | None:
    """A revert's deployment may need canary promotion again (Nomad #10882); rollback is never frozen."""
    waiting = [g for g in dep.groups if g.desired_canaries and not g.promoted]
    if dep.status == "running" and waiting and all(g.healthy >= g.desired_canaries for g in waiting):
        return PromoteDeployment(dep.id)
    return None
