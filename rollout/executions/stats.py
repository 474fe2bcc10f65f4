"""The rollout gates' `ExecutionStats` over the execution ledger: outcomes per version and paired outputs."""

from __future__ import annotations

from datetime import datetime

from rollout.controller.gates import Outcomes, PairedOutput
from rollout.executions.ledger import Ledger

FAILED = frozenset({"failed", "timed_out"})


class LedgerExecutionStats:
    """Success counts, runtimes and paired comparisons per version since a time, read from the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def outcomes(self, biomarker: str, version: str, *, since: datetime) -> Outcomes:
        """Finished executions of `version` (every route, shadow runs included); lost and running ones not counted."""
        done = [e for e in self._ledger.executions(biomarker=biomarker, version=version, since=since)
                if e.status == "succeeded" or e.status in FAILED]
        runtimes = tuple(float(e.latest("duration_s")) for e in done if e.latest("duration_s") is not None)
        succeeded = sum(1 for e in done if e.succeeded)
        return Outcomes(succeeded=succeeded, failed=len(done) - succeeded, runtimes_s=runtimes)

    def paired(self, biomarker: str, candidate: str, stable: str, *, since: datetime) -> tuple[PairedOutput, ...]:
        """Studies run on both versions, with each side's report metrics."""
        return tuple(
            PairedOutput(study=str(c.report.get("input_identity", c.stable_execution_id)),
                         candidate=dict(c.report.get("candidate_metrics", {})),
                         stable=dict(c.report.get("stable_metrics", {})))
            for c in self._ledger.comparisons(biomarker=biomarker, candidate_version=candidate, since=since)
            if c.stable_version == stable)
