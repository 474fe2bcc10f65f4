"""Workflows on the real engine: outputs flow step to step; a failing middle step stops with its logs."""

from __future__ import annotations

import json

from rollout.executions.model import ExecutionRequest
from rollout.executions.workflow import run_workflow
from tests.rollout.executions.conftest import NAME, Builds, World
from tests.support.executions_builders import manifest, study


def _request(world: World) -> ExecutionRequest:
    return ExecutionRequest(biomarker=NAME, spec="1.0.0", input_path=study(world.tmp / "in", 5, 6),
                            output_path=world.tmp / "out", environment="ward")


def test_a_workflow_feeds_each_step_the_previous_outputs(world: World, builds: Builds) -> None:
    run = run_workflow(world.submitter, manifest(NAME), _request(world), "chain")
    assert run.succeeded and [e.record.workflow_step for e in run.executions] == ["convert", "quantify"]
    report = json.loads((world.tmp / "out" / "quantify" / "report.json").read_text())
    assert report["volume_ml"] == (5 + 6) * 2 * 3  # convert doubled, quantify multiplied by FACTOR
    assert {e.record.digest for e in run.executions} == {builds.v1.digest}


def test_a_failed_middle_step_stops_with_its_logs_and_keeps_earlier_outputs(world: World, builds: Builds) -> None:
    run = run_workflow(world.submitter, manifest(NAME), _request(world), "failing")
    assert run.failed_step == "segment"
    assert [e.record.workflow_step for e in run.executions] == ["convert", "segment"]
    assert any("segmentation exploded" in line for line in run.log_tail)
    assert (world.tmp / "out" / "convert" / "study.txt").read_text().split() == ["10", "12"]
    assert not (world.tmp / "out" / "quantify").exists()
    assert world.ledger.get(run.executions[1].id).status == "failed"
