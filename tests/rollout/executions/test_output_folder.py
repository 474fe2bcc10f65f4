"""An execution's output folder holds only what that execution wrote: provenance must not adopt other files."""

from __future__ import annotations

import json

import pytest

from rollout.executions.model import ExecutionError, ExecutionRequest
from tests.rollout.executions.conftest import NAME, Builds, World
from tests.support.executions_builders import study

ENV = "hospital-a"


def test_a_submission_into_a_folder_holding_other_files_is_refused_before_anything_is_recorded(
        world: World, builds: Builds) -> None:
    out = world.tmp / "results"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"volume_ml": 1}))  # a previous run's result
    request = ExecutionRequest(biomarker=NAME, spec="1.0.0", input_path=study(world.tmp / "in", 3, 4),
                               output_path=out, environment=ENV)
    with pytest.raises(ExecutionError, match="not empty"):
        world.submitter.submit(request)
    assert world.ledger.executions() == []
    assert json.loads((out / "report.json").read_text()) == {"volume_ml": 1}
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


def test_an_empty_existing_folder_is_fine_and_a_retry_reuses_its_own_folder(world: World, builds: Builds) -> None:
    out = world.tmp / "results"
    out.mkdir()
    request = ExecutionRequest(biomarker=NAME, spec="1.0.0", input_path=study(world.tmp / "in", 3, 4),
                               output_path=out, environment=ENV, request_id="req-1")
    first = world.submitter.submit(request)
    again = world.submitter.submit(request)
    assert first.status == again.status == "succeeded" and first.id == again.id
