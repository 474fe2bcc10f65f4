"""Each analysis judgement is kept in the rollout status (numbers, threshold, time), bounded, and shown by
`rollout status --json` and the status page without judging again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.api.overview import summary
from rollout.cli import main
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.model import GATE_HISTORY, GateEvaluation, RolloutStatus
from tests.rollout.controller.test_scenarios import batch_to_stable, deploy, feed, run
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Clock, controller


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def test_the_controller_records_each_changed_judgement_with_its_numbers(fake: FakeNomad, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    run(ctl)  # weight 10, analysis step begins
    clock.advance(30)
    stats.record("alpha", "1.1.0", clock(), ok=True, runtime_s=10.0)
    waiting = run(ctl)
    again = run(ctl)  # nothing changed: nothing more recorded
    rate = [g for g in waiting.gate_results if g.name == "success-rate"][-1]
    assert (rate.verdict, rate.passed, rate.step, rate.at) == ("wait", False, 1, clock())
    assert rate.measured == {"executions": 1.0} and rate.threshold["min_success_rate"] == 0.9
    assert again.gate_results == waiting.gate_results
    clock.advance(60)
    feed(stats, clock, "1.1.0", 3)
    passed = [g for g in run(ctl).gate_results if g.step == 1 and g.passed]
    assert {g.name for g in passed} == {"success-rate", "runtime", "equivalence"}
    assert next(g for g in passed if g.name == "success-rate").measured == {"success_rate": 1.0, "executions": 4.0}
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path))  # where the controller's SQLite release state lives
    monkeypatch.delenv("NOMAD_ADDR", raising=False)
    assert main(["status", "alpha", "--env", ENV, "--json"]) in (0, 3)
    shown = json.loads(capsys.readouterr().out)["gate_results"]
    assert [(g["name"], g["verdict"]) for g in shown][:3] == [("success-rate", "wait"), ("runtime", "wait"),
                                                              ("equivalence", "wait")]


def _status(step: int, evaluations: tuple[GateEvaluation, ...]) -> RolloutStatus:
    base = RolloutStatus.model_validate({
        "id": "r1", "biomarker": "alpha", "environment": ENV, "variant": "fast", "job_type": "batch",
        "candidate": {"version": "1.1.0", "digest": "sha256:" + "1" * 64, "image": "i"},
        "candidate_spec": {}, "promote_spec": {}, "steps": [{"kind": "set_weight", "weight": 10},
                                                          {"kind": "analysis", "gates": ["success-rate"]}],
        "step_index": step, "step_started_at": Clock()(), "started_at": Clock()(), "weight": 10})
    return base.with_gates(evaluations)


def test_history_is_bounded_and_the_page_shows_what_was_recorded() -> None:
    clock = Clock()
    status = _status(1, ())
    for n in range(GATE_HISTORY + 10):
        clock.advance(60)
        status = status.with_gates((GateEvaluation(at=clock(), step=1, name="success-rate", verdict="wait",
                                                   passed=False, message=f"{n}/5", measured={"executions": n}),))
    assert len(status.gate_results) == GATE_HISTORY and status.gate_results[-1].measured == {"executions": 59.0}
    shown = summary(status, clock())
    assert [(g.name, g.verdict, g.message, g.at) for g in shown.gates] == [("success-rate", "wait", "59/5", clock())]
    assert len([m for m in shown.timeline.markers if m.kind == "wait"]) == GATE_HISTORY
