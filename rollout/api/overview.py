"""What the status page shows, per environment and biomarker: tracks, rollout step and gates, freezes, executions."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from delivery.errors import DeliveryError
from rollout.api.schemas import ExecutionView, FreezeView
from rollout.api.services import Services
from rollout.api.views import execution_view, freeze_view
from rollout.controller.loop import load_status
from rollout.controller.model import GateEvaluation, RolloutStatus, SetWeight

WIDTH, HEIGHT, PAD = 640.0, 150.0, 24.0
RECENT = timedelta(days=7)
RECENT_SHOWN = 8
STEP_DONE = re.compile(r"step (\d+) done")


class GateView(BaseModel):
    """A gate judgement the controller recorded in the rollout status."""

    name: str
    verdict: str
    message: str
    passed: bool = False
    measured: dict[str, float] = Field(default_factory=dict)
    threshold: dict[str, float] = Field(default_factory=dict)
    at: datetime | None = None


class Marker(BaseModel):
    """One gate outcome or pause on the timeline, at plot coordinates."""

    x: float
    y: float
    kind: str
    label: str


class Timeline(BaseModel):
    """A step plot of the candidate's weight over time, with gate outcomes, in SVG user units."""

    width: float = WIDTH
    height: float = HEIGHT
    points: str
    markers: list[Marker]
    start: datetime
    end: datetime


class RolloutSummary(BaseModel):
    id: str
    candidate: str
    stable: str | None
    phase: str
    step: int
    steps: int
    step_kind: str
    weight: int
    pause_reasons: list[str]
    failure_reason: str | None
    gates: list[GateView]
    timeline: Timeline


class BiomarkerPanel(BaseModel):
    name: str
    stable: str | None
    stable_digest: str | None
    candidate: str | None
    candidate_digest: str | None
    stable_source: str = "channel"
    candidate_source: str = "channel"
    rollout: RolloutSummary | None
    freezes: list[FreezeView]
    executions: list[ExecutionView]
    problem: str | None = None


class EnvironmentPanel(BaseModel):
    name: str
    biomarkers: list[BiomarkerPanel]


class Overview(BaseModel):
    at: datetime
    environments: list[EnvironmentPanel]


def overview(services: Services, now: datetime) -> Overview:
    """Everything on the page, read fresh from the release store and the ledger."""
    panels = []
    for env in services.config.environments:
        names = sorted(set(services.catalog.names()) | set(services.store.biomarkers(env)))
        panels.append(EnvironmentPanel(name=env, biomarkers=[_panel(services, env, n, now) for n in names]))
    return Overview(at=now, environments=panels)


def _panel(services: Services, env: str, name: str, now: datetime) -> BiomarkerPanel:
    state = services.store.read(env, name).state
    stable, candidate = state.channels.get("stable"), state.channels.get("candidate")
    recent = services.ledger.executions(biomarker=name, environment=env, since=now - RECENT, limit=RECENT_SHOWN,
                                        newest_first=True)
    panel = BiomarkerPanel(
        name=name, stable=stable.version if stable else None, stable_digest=stable.digest if stable else None,
        candidate=candidate.version if candidate else None, candidate_digest=candidate.digest if candidate else None,
        rollout=None, freezes=[freeze_view(f, env, now) for f in state.freezes],
        executions=[execution_view(e, services.config.input_root) for e in recent])
    try:
        status = load_status(state)
    except DeliveryError as e:
        return panel.model_copy(update={"problem": e.message})
    if status is None:
        return panel
    return panel.model_copy(update={"rollout": summary(status, now), **_tracks(panel, status)})


def _tracks(panel: BiomarkerPanel, status: RolloutStatus) -> dict[str, str | None]:
    """Without channel pins, the versions the rollout runs (what the cluster executes) are stable and candidate."""
    update: dict[str, str | None] = {}
    if panel.stable is None and status.stable is not None:
        update.update(stable=status.stable.version, stable_digest=status.stable.digest, stable_source="rollout")
    if panel.candidate is None and not status.terminal:
        update.update(candidate=status.candidate.version, candidate_digest=status.candidate.digest,
                      candidate_source="rollout")
    return update


def gates(status: RolloutStatus) -> list[GateView]:
    """The current step's gates as the controller last judged them (recorded in the status, not re-evaluated)."""
    if status.terminal:
        return []
    return [_gate_view(g) for g in status.current_gates()]


def _gate_view(g: GateEvaluation) -> GateView:
    return GateView(name=g.name, verdict=g.verdict, message=g.message, passed=g.passed, measured=g.measured,
                    threshold=g.threshold, at=g.at)


def summary(status: RolloutStatus, now: datetime) -> RolloutSummary:
    step = status.current_step
    return RolloutSummary(
        id=status.id, candidate=status.candidate.version, stable=status.stable.version if status.stable else None,
        phase=status.phase, step=min(status.step_index + 1, len(status.steps)), steps=len(status.steps),
        step_kind=step.kind if step else "done", weight=status.weight, pause_reasons=list(status.pause_reasons),
        failure_reason=status.failure_reason, gates=gates(status), timeline=timeline(status, now))


def timeline(status: RolloutStatus, now: datetime) -> Timeline:
    """Weights from the rollout's own history (each set-weight step); the recorded gate results as markers."""
    weight, points = 0, [(status.started_at, 0)]
    marks: list[tuple[datetime, int, str, str]] = []
    for event in status.history:
        before = weight
        weight = _weight_after(status, event.action, event.message, weight)
        if weight != before:
            points += [(event.at, before), (event.at, weight)]
        kind = _marker_kind(event.action)
        if kind:
            marks.append((event.at, weight, kind, f"{event.action}: {event.message}".strip(": ")))
    end = max(now if not status.terminal else status.history[-1].at if status.history else now,
              status.started_at + timedelta(seconds=1))
    points.append((end, weight))
    marks += [(g.at, _weight_at(points, g.at), g.verdict, f"{g.name}: {g.message}") for g in status.gate_results
              if g.at >= status.started_at]
    scale = _Scale(status.started_at, end)
    return Timeline(points=" ".join(f"{scale.x(t)},{scale.y(w)}" for t, w in points),
                    markers=[Marker(x=scale.x(t), y=scale.y(w), kind=k, label=label) for t, w, k, label in marks],
                    start=status.started_at, end=end)


def _weight_after(status: RolloutStatus, action: str, message: str, weight: int) -> int:
    if action == "step-set_weight":
        found = STEP_DONE.search(message)
        index = int(found[1]) - 1 if found else -1
        step = status.steps[index] if 0 <= index < len(status.steps) else None
        return step.weight if isinstance(step, SetWeight) else weight
    if action in ("rolling-back", "rolledback", "aborted", "failed"):
        return 0
    if action == "succeeded":
        return 100
    return weight


def _weight_at(points: list[tuple[datetime, int]], at: datetime) -> int:
    return next((w for t, w in reversed(points) if t <= at), 0)


def _marker_kind(action: str) -> str | None:
    if action == "rolling-back" or action == "failed":
        return "fail"
    if action in ("paused", "pause"):
        return "pause"
    return None


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.span = start, max((end - start).total_seconds(), 1.0)

    def x(self, t: datetime) -> float:
        return round(PAD + (t - self.start).total_seconds() / self.span * (WIDTH - 2 * PAD), 1)

    def y(self, weight: int) -> float:
        return round(HEIGHT - PAD - weight / 100 * (HEIGHT - 2 * PAD), 1)
