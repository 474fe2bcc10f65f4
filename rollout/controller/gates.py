"""Analysis gates (`rollout.gates` entry points) fed by an `ExecutionStats` source (the execution ledger)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, cast

from delivery import plugins
from delivery.manifest.model import Gates as GateThresholds
from rollout.nomad import Deployment

Verdict = Literal["pass", "fail", "wait"]


@dataclass(frozen=True)
class Outcomes:
    """How a version's executions ended in a time window."""

    succeeded: int = 0
    failed: int = 0
    runtimes_s: tuple[float, ...] = ()

    @property
    def total(self) -> int:
        """Finished executions (lost ones are not counted by the source)."""
        return self.succeeded + self.failed


@dataclass(frozen=True)
class PairedOutput:
    """One study run on both versions: metric values of each."""

    study: str
    candidate: Mapping[str, float]
    stable: Mapping[str, float]


class ExecutionStats(Protocol):
    """What the execution ledger (issue 8) reports about candidate and stable executions."""

    def outcomes(self, biomarker: str, version: str, *, since: datetime) -> Outcomes: ...

    def paired(self, biomarker: str, candidate: str, stable: str, *, since: datetime) -> tuple[PairedOutput, ...]: ...


@dataclass(frozen=True)
class GateContext:
    """Everything a gate may look at."""

    biomarker: str
    candidate: str
    stable: str | None
    since: datetime
    min_executions: int
    thresholds: GateThresholds
    stats: ExecutionStats
    deployment: Deployment | None = None


@dataclass(frozen=True)
class GateResult:
    """A gate's judgement with the numbers it judged (kept in the rollout status, shown by the status page)."""

    name: str
    verdict: Verdict
    message: str
    measured: Mapping[str, float] = field(default_factory=dict)
    threshold: Mapping[str, float] = field(default_factory=dict)


class Gate(Protocol):
    """A `rollout.gates` plugin: a pure judgement over the context."""

    name: str

    def evaluate(self, ctx: GateContext) -> GateResult: ...


class HealthGate:
    """Service canaries healthy in Nomad's deployment (batch: nothing to judge, passes)."""

    name = "health"

    def evaluate(self, ctx: GateContext) -> GateResult:
        """Pass when every canary group has its desired healthy canaries and none unhealthy."""
        dep = ctx.deployment
        if dep is None:
            return GateResult(self.name, "pass", "no deployment to judge (batch)")
        measured = {"healthy": float(sum(g.healthy for g in dep.groups)),
                    "unhealthy": float(sum(g.unhealthy for g in dep.groups))}
        wanted = {"healthy": float(sum(max(g.desired_canaries, 1) for g in dep.groups)), "unhealthy": 0.0}
        if measured["unhealthy"]:
            return GateResult(self.name, "fail", f"{measured['unhealthy']:.0f} unhealthy allocation(s)", measured,
                              wanted)
        short = [g.name for g in dep.groups if g.healthy < max(g.desired_canaries, 1)]
        if short:
            return GateResult(self.name, "wait", f"waiting for healthy canaries in {', '.join(short)}", measured,
                              wanted)
        return GateResult(self.name, "pass", "canaries healthy", measured, wanted)


class SuccessRateGate:
    name = "success-rate"

    def evaluate(self, ctx: GateContext) -> GateResult:
        """Candidate success rate at least `min_success_rate` over at least `min_executions`."""
        got = ctx.stats.outcomes(ctx.biomarker, ctx.candidate, since=ctx.since)
        limits = {"min_success_rate": ctx.thresholds.min_success_rate, "min_executions": float(ctx.min_executions)}
        if got.total < ctx.min_executions:
            return GateResult(self.name, "wait", f"{got.total}/{ctx.min_executions} candidate executions",
                              {"executions": float(got.total)}, limits)
        rate = got.succeeded / got.total
        verdict: Verdict = "pass" if rate >= ctx.thresholds.min_success_rate else "fail"
        return GateResult(self.name, verdict, f"success rate {rate:.3f} (floor {ctx.thresholds.min_success_rate})",
                          {"success_rate": round(rate, 6), "executions": float(got.total)}, limits)


class RuntimeGate:
    name = "runtime"

    def evaluate(self, ctx: GateContext) -> GateResult:
        """Candidate median runtime at most `max_runtime_ratio` times stable's."""
        cand = ctx.stats.outcomes(ctx.biomarker, ctx.candidate, since=ctx.since).runtimes_s
        base = ctx.stats.outcomes(ctx.biomarker, ctx.stable, since=ctx.since).runtimes_s if ctx.stable else ()
        counts = {"candidate_runtimes": float(len(cand)), "stable_runtimes": float(len(base))}
        limit = ctx.thresholds.max_runtime_ratio
        limits = {"max_runtime_ratio": limit, "min_executions": float(ctx.min_executions)}
        if len(cand) < ctx.min_executions or not base:
            return GateResult(self.name, "wait", f"{len(cand)} candidate / {len(base)} stable runtimes", counts,
                              limits)
        ratio = statistics.median(cand) / max(statistics.median(base), 1e-9)
        verdict: Verdict = "pass" if ratio <= limit else "fail"
        return GateResult(self.name, verdict, f"median runtime ratio {ratio:.2f} (max {limit})",
                          {"runtime_ratio": round(ratio, 6), **counts}, limits)


class EquivalenceGate:
    name = "equivalence"

    def evaluate(self, ctx: GateContext) -> GateResult:
        """Every paired study's metrics within the per-metric tolerance."""
        if ctx.stable is None or not ctx.thresholds.equivalence:
            return GateResult(self.name, "pass", "no stable version or no tolerances to compare")
        pairs = ctx.stats.paired(ctx.biomarker, ctx.candidate, ctx.stable, since=ctx.since)
        if not pairs:
            return GateResult(self.name, "wait", "no paired runs yet", {"paired_runs": 0.0})
        worst: dict[str, float] = {}
        for pair in pairs:
            for metric, tol in ctx.thresholds.equivalence.items():
                a, b = pair.candidate.get(metric), pair.stable.get(metric)
                if a is None or b is None:
                    return GateResult(self.name, "fail", f"{pair.study}: metric {metric} missing",
                                      {"paired_runs": float(len(pairs))})
                limit = max(tol.absolute or 0.0, (tol.relative or 0.0) * abs(b))
                worst[metric] = max(worst.get(metric, 0.0), abs(a - b))
                if abs(a - b) > limit:
                    return GateResult(self.name, "fail", f"{pair.study}: {metric} {a} vs {b} (tolerance {limit:g})",
                                      {f"{metric}.difference": abs(a - b)}, {f"{metric}.tolerance": limit})
        measured = {"paired_runs": float(len(pairs)), **{f"{m}.max_difference": d for m, d in worst.items()}}
        return GateResult(self.name, "pass", f"{len(pairs)} paired run(s) equivalent", measured)


GATES_GROUP = "rollout.gates"
BUILTIN: dict[str, type[Gate]] = {g.name: g for g in (HealthGate, SuccessRateGate, RuntimeGate, EquivalenceGate)}


def load_gate(name: str) -> Gate:
    """A gate by name: installed `rollout.gates` entry points first, then the built-ins (a source checkout)."""
    if name in BUILTIN and name not in plugins.names(GATES_GROUP):
        return BUILTIN[name]()
    return cast(Gate, plugins.factory(GATES_GROUP, name)())


@dataclass
class InMemoryExecutionStats:
    """An `ExecutionStats` for tests and the embedded default until the ledger lands."""

    executions: list[tuple[str, str, datetime, bool, float]] = field(default_factory=list)
    pairs: list[tuple[str, str, str, datetime, PairedOutput]] = field(default_factory=list)

    def record(self, biomarker: str, version: str, at: datetime, *, ok: bool, runtime_s: float) -> None:
        """One finished execution."""
        self.executions.append((biomarker, version, at, ok, runtime_s))

    def record_pair(self, biomarker: str, candidate: str, stable: str, at: datetime, pair: PairedOutput) -> None:
        """One study run on both versions."""
        self.pairs.append((biomarker, candidate, stable, at, pair))

    def outcomes(self, biomarker: str, version: str, *, since: datetime) -> Outcomes:
        """Outcomes of `version` since `since`."""
        rows = [e for e in self.executions if e[0] == biomarker and e[1] == version and e[2] > since]
        return Outcomes(sum(1 for r in rows if r[3]), sum(1 for r in rows if not r[3]), tuple(r[4] for r in rows))

    def paired(self, biomarker: str, candidate: str, stable: str, *, since: datetime) -> tuple[PairedOutput, ...]:
        """Paired runs of the two versions since `since`."""
        return tuple(p[4] for p in self.pairs if p[:3] == (biomarker, candidate, stable) and p[3] > since)
