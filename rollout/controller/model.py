"""Rollout status persisted in `ReleaseState.rollout`: tagged steps, phase, conditions, pause reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from delivery.manifest import Biomarker, duration_seconds
from delivery.manifest.model import AnalysisStep, PauseStep, PromoteStep, SetWeightStep
from delivery.manifest.model import Gates as GateThresholds

Phase = Literal["Progressing", "Paused", "RollingBack", "Succeeded", "RolledBack", "Failed", "Aborted"]
TERMINAL: frozenset[str] = frozenset({"Succeeded", "RolledBack", "Failed", "Aborted"})
GATE_HISTORY = 50  # gate evaluations kept in the status (it lives in one release-state record)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetWeight(_Frozen):
    """Route this share (percent) of new executions to the candidate."""

    kind: Literal["set_weight"] = "set_weight"
    weight: int = Field(ge=0, le=100)


class Pause(_Frozen):
    """Wait `duration_s`, or for `rollout resume` when absent."""

    kind: Literal["pause"] = "pause"
    duration_s: int | None = None


class Analysis(_Frozen):
    """Run gates on the candidate's executions since the step began."""

    kind: Literal["analysis"] = "analysis"
    gates: tuple[str, ...]
    min_executions: int = 5


class Promote(_Frozen):
    """Make the candidate the stable version."""

    kind: Literal["promote"] = "promote"


Step = Annotated[SetWeight | Pause | Analysis | Promote, Field(discriminator="kind")]


def steps_from_manifest(manifest: Biomarker) -> tuple[Step, ...]:
    """The manifest's `rollout.steps` as tagged values; a final Promote is implied when missing."""
    steps: list[Step] = []
    for step in manifest.rollout.steps:
        if isinstance(step, SetWeightStep):
            steps.append(SetWeight(weight=step.set_weight))
        elif isinstance(step, PauseStep):
            d = step.pause.duration
            steps.append(Pause(duration_s=duration_seconds(d) if d else None))
        elif isinstance(step, AnalysisStep):
            steps.append(Analysis(gates=tuple(step.analysis.gates), min_executions=step.analysis.min_executions))
        elif isinstance(step, PromoteStep):
            steps.append(Promote())
    if not steps or not isinstance(steps[-1], Promote):
        steps.append(Promote())
    return tuple(steps)


class ReleaseRef(_Frozen):
    """An image pinned by digest, with the job spec hash it was deployed with."""

    version: str
    digest: str
    image: str
    attestation_digest: str = ""
    spec_hash: str = ""


class Condition(_Frozen):
    """Like a Kubernetes condition: type/status/reason/message/lastTransition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition: datetime


class Event(_Frozen):
    """One line of a rollout's own history (who/when/why)."""

    at: datetime
    actor: str
    action: str
    message: str = ""


class GateEvaluation(_Frozen):
    """One analysis gate judgement as the controller saw it: what was measured against which threshold."""

    at: datetime
    step: int
    name: str
    verdict: Literal["pass", "fail", "wait"]
    passed: bool
    message: str = ""
    measured: dict[str, float] = Field(default_factory=dict)
    threshold: dict[str, float] = Field(default_factory=dict)

    def same_outcome(self, other: GateEvaluation) -> bool:
        """Equal apart from when it was seen (so waiting on unchanged numbers writes nothing)."""
        return self.model_copy(update={"at": other.at}) == other


class RolloutStatus(_Frozen):
    """Everything the controller needs to continue a rollout after a crash, and what `status` shows."""

    id: str
    biomarker: str
    environment: str
    variant: str
    job_type: Literal["batch", "service"]
    candidate: ReleaseRef
    stable: ReleaseRef | None = None
    previous: ReleaseRef | None = None
    earlier: tuple[ReleaseRef, ...] = ()  # stables before `previous`, newest last: where `rollback` goes once
    # a rollout ended without changing the stable (rolled back automatically, aborted, failed)
    candidate_spec: dict[str, Any]
    promote_spec: dict[str, Any]
    steps: tuple[Step, ...]
    thresholds: GateThresholds = Field(default_factory=GateThresholds)
    step_index: int = 0
    step_started_at: datetime
    started_at: datetime
    weight: int = 0
    phase: Phase = "Progressing"
    verified: bool = False
    base_version: int | None = None
    pause_reasons: tuple[str, ...] = ()
    paused_since: datetime | None = None
    resumed: bool = False
    abort_reason: str | None = None
    failure_reason: str | None = None
    freeze_override: str | None = None
    placement_deadline_s: int = 900
    conditions: tuple[Condition, ...] = ()
    history: tuple[Event, ...] = ()
    gate_results: tuple[GateEvaluation, ...] = ()

    @property
    def terminal(self) -> bool:
        """Nothing left to do."""
        return self.phase in TERMINAL

    @property
    def current_step(self) -> Step | None:
        """The step in progress (None once all are done)."""
        return self.steps[self.step_index] if self.step_index < len(self.steps) else None

    def with_condition(self, type_: str, status: Literal["True", "False", "Unknown"], reason: str, message: str,
                       now: datetime) -> RolloutStatus:
        """A copy with condition `type_` set; lastTransition moves only when status changes."""
        old = next((c for c in self.conditions if c.type == type_), None)
        since = old.last_transition if old and old.status == status else now
        cond = Condition(type=type_, status=status, reason=reason, message=message, last_transition=since)
        rest = tuple(c for c in self.conditions if c.type != type_)
        return self.model_copy(update={"conditions": (*rest, cond)})

    def logged(self, now: datetime, actor: str, action: str, message: str = "") -> RolloutStatus:
        """A copy with one history event appended."""
        event = Event(at=now, actor=actor, action=action, message=message)
        return self.model_copy(update={"history": (*self.history, event)})

    def current_gates(self) -> tuple[GateEvaluation, ...]:
        """The latest recorded judgement of each gate of the step in progress."""
        latest: dict[str, GateEvaluation] = {}
        for g in self.gate_results:
            if g.step == self.step_index:
                latest[g.name] = g
        return tuple(latest.values())

    def with_gates(self, evaluations: tuple[GateEvaluation, ...]) -> RolloutStatus:
        """A copy with the evaluations that differ from the step's latest appended (last GATE_HISTORY kept)."""
        known = {g.name: g for g in self.current_gates()}
        new = tuple(e for e in evaluations if e.name not in known or not known[e.name].same_outcome(e))
        if not new:
            return self
        return self.model_copy(update={"gate_results": (*self.gate_results, *new)[-GATE_HISTORY:]})

    def exit_code(self) -> int:
        """0 done, 1 failed or rolled back, 3 waiting on a human."""
        if self.phase == "Succeeded":
            return 0
        if self.terminal:
            return 1
        return 3 if self.phase == "Paused" else 0
