"""Submissions on the real Docker engine: exact digests in the outputs, pins that hold, paired canary runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rollout.executions.model import ExecutionRequest
from rollout.executions.pins import PinError
from rollout.executions.sandbox import file_sha256
from tests.rollout.executions.conftest import NAME, Builds, World
from tests.support.executions_builders import cohort_freeze, set_channels, study

ENV = "hospital-a"


def request(world: World, spec: str, numbers: tuple[int, ...] = (10, 20), **kw: object) -> ExecutionRequest:
    tag = "-".join(map(str, numbers))
    out = world.tmp / "out" / f"{spec}-{uuid.uuid4().hex[:8]}"
    return ExecutionRequest(biomarker=NAME, spec=spec, input_path=study(world.tmp / "in" / tag, *numbers),
                            output_path=out, environment=ENV, **kw)  # type: ignore[arg-type]


def test_a_study_runs_and_report_and_provenance_name_the_exact_digest(world: World, builds: Builds) -> None:
    req = request(world, "1.0.0", (10, 20))
    execution = world.submitter.submit(req)
    report = json.loads((req.output_path / "report.json").read_text())
    provenance = json.loads((req.output_path / "provenance.json").read_text())
    assert execution.status == "succeeded"
    assert report["volume_ml"] == 90 and report["image_digest"] == builds.v1.digest
    assert provenance["digest"] == builds.v1.digest and provenance["version"] == "1.0.0"
    assert provenance["reference"] == builds.v1.reference
    assert provenance["input_identity"].startswith("sha256:")
    hashes = {o["path"]: o["sha256"] for o in provenance["outputs"]}
    assert hashes["report.json"] == file_sha256(req.output_path / "report.json")
    recorded = world.ledger.get(execution.id)
    assert recorded.record.digest == builds.v1.digest and recorded.outputs == execution.outputs


def test_a_pinned_submission_keeps_its_version_across_a_promotion(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v1)
    before = world.submitter.submit(request(world, "1.0.0"))
    following = world.submitter.submit(request(world, "stable"))
    set_channels(world.store, ENV, NAME, stable=builds.v2)  # promotion moves the channel
    pinned = world.submitter.submit(request(world, "1.0.0"))
    moved = world.submitter.submit(request(world, "stable"))
    assert before.record.digest == pinned.record.digest == builds.v1.digest
    assert following.record.digest == builds.v1.digest
    assert moved.record.digest == builds.v2.digest


def test_a_frozen_trial_cohort_keeps_its_version(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v2, freezes=(cohort_freeze("1.0.0", "trial-copd"),))
    trial = world.submitter.submit(request(world, "stable", cohort="trial-copd"))
    others = world.submitter.submit(request(world, "stable", cohort="routine"))
    assert trial.record.version == "1.0.0" and trial.record.digest == builds.v1.digest
    assert "freeze" in trial.record.resolution_rule
    assert others.record.version == "2.0.0"
    with pytest.raises(PinError, match=r"frozen at 1\.0\.0"):
        world.submitter.submit(request(world, "2.0.0", cohort="trial-copd"))


def _first_candidate_study(world: World) -> tuple[int, ...]:
    """Some study the 50 % rollout routes to the candidate (the choice is a hash, so search deterministically)."""
    from rollout.executions.routing import ReleaseStoreRouting, choose_track
    from rollout.executions.sandbox import input_identity

    routing = ReleaseStoreRouting(world.store).routing(ENV, NAME)
    for n in range(1, 200):
        folder = study(world.tmp / "probe" / str(n), n, 7)
        if choose_track(routing, input_identity(folder)) == "candidate":
            return (n, 7)
    raise AssertionError("no study routed to the candidate at weight 50")


def test_paired_run_of_identical_numbers_passes_and_returns_the_stable_result(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v1, candidate=builds.v1_1, weight=50)
    req = request(world, "stable", _first_candidate_study(world))
    submission = world.submitter.run(req)
    assert submission.execution.record.version == "1.0.0" and submission.execution.record.route == "stable"
    assert submission.shadow is not None and submission.shadow.record.route == "shadow"
    assert submission.shadow.record.version == "1.1.0"
    assert submission.execution.record.paired_execution_id == submission.shadow.id
    assert submission.comparison is not None and submission.comparison.passed
    report = json.loads((req.output_path / "report.json").read_text())
    assert report["image_digest"] == builds.v1.digest  # the client gets stable's numbers
    stored = world.ledger.comparisons(biomarker=NAME, candidate_version="1.1.0")
    assert [c.passed for c in stored] == [True]
    on_disk = json.loads((Path(submission.shadow.record.output_path) / "comparison.json").read_text())
    assert on_disk["passed"] is True and on_disk["candidate_version"] == "1.1.0"


def test_paired_run_of_drifting_numbers_fails_the_comparison(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v1, candidate=builds.v2, weight=50)
    submission = world.submitter.run(request(world, "stable", _first_candidate_study(world)))
    assert submission.comparison is not None and not submission.comparison.passed
    failed = {m.metric for m in submission.comparison.metrics if not m.passed}
    assert failed == {"volume_ml", "per_lung.left.laa950_percent"}
    assert [c.passed for c in world.ledger.comparisons(biomarker=NAME, candidate_version="2.0.0")] == [False]


def test_re_submitting_the_same_study_goes_the_same_way(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v1, candidate=builds.v1_1, weight=50)
    numbers = _first_candidate_study(world)
    first = world.submitter.run(request(world, "stable", numbers))
    again = world.submitter.run(request(world, "stable", numbers))
    assert first.shadow is not None and again.shadow is not None
    assert first.execution.id != again.execution.id


def test_a_retried_request_id_does_not_run_twice(world: World, builds: Builds) -> None:
    set_channels(world.store, ENV, NAME, stable=builds.v1)
    req = request(world, "stable", request_id="hospital-a/accession-991")
    first = world.submitter.submit(req)
    set_channels(world.store, ENV, NAME, stable=builds.v2)
    retried = world.submitter.submit(req)
    assert retried.id == first.id and retried.record.version == "1.0.0"
    assert [e.kind for e in retried.events].count("dispatched") == 1


def test_a_failing_biomarker_is_recorded_with_its_logs(world: World, builds: Builds) -> None:
    req = request(world, "1.0.0", variant="broken")
    execution = world.submitter.submit(req)
    assert execution.status == "failed" and execution.latest("exit_code") == 3
    assert "segmentation exploded" in (req.output_path / "execution.log").read_text()
    assert json.loads((req.output_path / "provenance.json").read_text())["status"] == "failed"
