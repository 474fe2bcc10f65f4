"""Recall lists exactly what a version produced; the gates' statistics come from the same ledger."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from delivery.audit import AuditLog
from delivery.release.resolve import resolve
from rollout.executions.model import ExecutionRequest
from rollout.executions.recall import Recall, RegistryYanker
from rollout.executions.stats import LedgerExecutionStats
from tests.rollout.executions.conftest import NAME, Builds, World
from tests.support.executions_builders import RecordingRollback, set_channels, study

ENV = "hospital-b"


def _submit(world: World, spec: str, *numbers: int) -> str:
    tag = uuid.uuid4().hex[:8]
    req = ExecutionRequest(biomarker=NAME, spec=spec, input_path=study(world.tmp / "in" / tag, *numbers),
                           output_path=world.tmp / "out" / tag, environment=ENV)
    return world.submitter.submit(req).id


def test_recall_lists_exactly_the_affected_executions_and_yanks(world: World, builds: Builds) -> None:
    v1_ids = {_submit(world, "1.0.0", 1, 2), _submit(world, "1.0.0", 3)}
    v2_ids = {_submit(world, "2.0.0", 4), _submit(world, "2.0.0", 5, 6)}
    audit = AuditLog(world.ledger.url)
    rollback = RecordingRollback()
    recall = Recall(world.ledger, audit, RegistryYanker(world.registry, builds.v2.repository), rollback)
    report = recall.recall(NAME, "2.0.0", "left-lung volume off by a third", resubmit_with="1.0.0",
                           submitter=world.submitter)
    listed = {e["id"] for e in report.as_json()["executions"]}
    assert listed == v2_ids and not listed & v1_ids
    assert rollback.calls == [(NAME, "2.0.0", "left-lung volume off by a third")]
    assert report.problems == () and any("yanked" in a for a in report.actions)
    found = resolve(NAME, "2.0.0", environment=ENV, registry=world.registry, store=world.store,
                    image_repository=builds.v2.repository)
    assert any("yanked" in w for w in found.warnings)
    rerun = report.as_json()["resubmitted"]
    assert {r["original"] for r in rerun} == v2_ids and {r["version"] for r in rerun} == {"1.0.0"}
    for r in rerun:
        provenance = json.loads((Path(r["output_path"]) / "provenance.json").read_text())
        assert provenance["digest"] == builds.v1.digest
    text = report.text()
    assert all(i in text for i in v2_ids) and "RECALL of alpha 2.0.0" in text
    assert [e.subject for e in audit.events(action="recall")] == [f"{NAME}@2.0.0"]


def test_execution_stats_count_outcomes_and_paired_outputs_per_version(world: World, builds: Builds) -> None:
    since = datetime.now(UTC) - timedelta(minutes=1)
    set_channels(world.store, ENV, NAME, stable=builds.v1, candidate=builds.v2, weight=100)
    _submit(world, "stable", 10)  # weight 100: every study pairs
    _submit(world, "1.0.0", 3)
    stats = LedgerExecutionStats(world.ledger)
    v1, v2 = stats.outcomes(NAME, "1.0.0", since=since), stats.outcomes(NAME, "2.0.0", since=since)
    assert (v1.succeeded, v1.failed, v2.succeeded, v2.failed) == (2, 0, 1, 0)
    assert len(v1.runtimes_s) == 2 and all(r >= 0 for r in v1.runtimes_s)  # busybox jobs take about 0 s
    pairs = stats.paired(NAME, "2.0.0", "1.0.0", since=since)
    assert len(pairs) == 1
    assert pairs[0].stable["volume_ml"] == 30 and pairs[0].candidate["volume_ml"] == 40
    assert stats.paired(NAME, "2.0.0", "1.0.0", since=datetime.now(UTC) + timedelta(minutes=1)) == ()
