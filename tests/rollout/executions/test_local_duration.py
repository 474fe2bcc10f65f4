"""Run times come from the engine's clock and are never negative, even for a job that exits at once."""

from __future__ import annotations

from delivery.docker import ContainerOutcome
from rollout.executions.local_docker import _duration


def _outcome(started: str, finished: str) -> ContainerOutcome:
    return ContainerOutcome("c1", 0, False, started, finished, ())


def test_engine_times_with_nanoseconds_give_the_run_time() -> None:
    assert _duration(_outcome("2026-11-22T01:00:00.123456789Z", "2026-11-22T01:00:02.623456789Z")) == 2.5


def test_a_finish_stamped_before_the_start_is_zero_not_negative() -> None:
    assert _duration(_outcome("2026-11-22T01:00:00.002000000Z", "2026-11-22T01:00:00.001000000Z")) == 0.0
