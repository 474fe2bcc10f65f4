"""Output equivalence of paired runs: per-metric absolute/relative tolerances over report.json keys."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from delivery.manifest.model import Tolerance


@dataclass(frozen=True)
class MetricResult:
    """One metric of a paired comparison."""

    metric: str
    stable: float | None
    candidate: float | None
    difference: float | None
    absolute: float | None
    relative: float | None
    passed: bool
    reason: str


@dataclass(frozen=True)
class Comparison:
    """Stable vs candidate on one study."""

    passed: bool
    metrics: tuple[MetricResult, ...]

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "metrics": [asdict(m) for m in self.metrics]}


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a report by dotted path (`per_lung.left.laa950_percent`); booleans are not numbers."""
    out: dict[str, float] = {}
    for key, value in document.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[path] = float(value)
    return out


def compare(stable: Mapping[str, Any], candidate: Mapping[str, Any], tolerances: Mapping[str, Tolerance]) -> Comparison:
    """Each toleranced metric must be within `absolute` OR `relative`·|stable|; with none declared, every numeric
    key of the stable report must match exactly."""
    left, right = flatten(stable), flatten(candidate)
    bounds = dict(tolerances) or {k: Tolerance(absolute=0.0) for k in left}
    results = tuple(_metric(name, left.get(name), right.get(name), tol) for name, tol in sorted(bounds.items()))
    return Comparison(all(r.passed for r in results) and bool(results), results)


def _metric(name: str, s: float | None, c: float | None, tol: Tolerance) -> MetricResult:
    if s is None or c is None:
        side = "stable" if s is None else "candidate"
        return MetricResult(name, s, c, None, tol.absolute, tol.relative, False, f"missing from the {side} report")
    diff = abs(c - s)
    if math.isnan(diff):
        return MetricResult(name, s, c, diff, tol.absolute, tol.relative, False, "not a number")
    within_abs = tol.absolute is not None and diff <= tol.absolute
    within_rel = tol.relative is not None and diff <= tol.relative * abs(s)
    passed = within_abs or within_rel
    reason = "within tolerance" if passed else "drift beyond tolerance"
    return MetricResult(name, s, c, diff, tol.absolute, tol.relative, passed, reason)
