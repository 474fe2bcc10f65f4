"""Reaction time from a Nomad state change to the controller's next action, and requests per rollout,
with blocking queries vs a 5-second polling baseline measured in the same run. Prints JSON.

Scenario (each round, a fresh fake Nomad): `quicklook` 1.0.0 is deployed and healthy; 1.1.0 is rolled out
with one canary (Count 2). A simulated Nomad client reports each new allocation healthy 10-15 s
(MinHealthyTime plus a check interval, seeded jitter) after it is placed (canary first; then, after our
promotion, the rolled allocation). Every health report is a state change the controller must react to
(advance the analysis and promote; then record the rollout as done).

Blocking mode runs in real time: the client reports health 0.5 s after placement, and the controller waits
with `block_for_change` (blocking queries of up to 30 s, longer than the 10-15 s real-world gap, so its
request count is what the real 10-15 s timeline would give). Polling mode is the baseline: the controller
observes every 5 s; the wall time is simulated with the injectable clock (nobody sleeps), health arrives
10-15 s of simulated time after placement, and every request is real.

Every loop and wait is bounded: per-wait deadlines, a round deadline, and a process-wide watchdog.
"""

from __future__ import annotations

import faulthandler
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.release.state import SqliteReleaseStore
from rollout.controller import operations
from rollout.controller.loop import Controller
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import ENV, SERVICE, Clock, client, controller, manifest, release

ROUNDS = 7
POLL_S = 5.0
HEALTH_AFTER_S = 10.0  # MinHealthyTime: the earliest a real client reports health ...
HEALTH_JITTER_S = 5.0  # ... plus up to one check interval, so changes do not line up with polls
BLOCKING_HEALTH_AFTER_S = 0.5  # the same timeline, compressed, for the real-time blocking runs
BLOCK_WAIT_S = 30.0
ROUND_DEADLINE_S = 20.0
PROCESS_DEADLINE_S = 300.0
JOB = "quicklook-web"


class RoundTimeout(Exception):
    """A round ran past its deadline (reported, never waited out)."""


@dataclass
class Round:
    """What one rollout of 1.1.0 measured."""

    reactions_s: list[float] = field(default_factory=list)
    requests: int = 0
    phase: str = ""


def _prepare(fake: FakeNomad, tmp: Path, clock: Clock) -> Controller:
    """1.0.0 stable and healthy; 1.1.0 started; canaries report health only when the simulated client says."""
    m = manifest(SERVICE)
    store = SqliteReleaseStore(tmp / "release-state.sqlite")
    operations.start_rollout(store=store, scheduler=client(fake.address), manifest=m, variant="web",
                             release=release(m.name, "1.0.0"), environment=ENV, now=clock())
    controller(fake.address, tmp, m.name, clock).run(max_passes=50)
    fake.default_health = None
    operations.start_rollout(store=store, scheduler=client(fake.address), manifest=m, variant="web",
                             release=release(m.name, "1.1.0"), environment=ENV, now=clock())
    return controller(fake.address, tmp, m.name, clock)


def _pending(fake: FakeNomad) -> list[str]:
    """Live allocations whose health the client has not reported yet."""
    return [a["ID"] for a in fake.allocs_of(JOB) if (a["DeploymentStatus"] or {}).get("Healthy") is None]


def _reactions(changes: list[float], actions: list[float]) -> list[float]:
    """For each state change, the delay until the controller's first action after it."""
    out = []
    for changed in changes:
        after = [a for a in actions if a >= changed]
        if after:
            out.append(after[0] - changed)
    return out


def blocking_round(_seed: int) -> Round:
    """Real time: a client thread reports health; the controller waits with blocking queries."""
    with tempfile.TemporaryDirectory() as tmp, FakeNomad() as fake:
        ctl = _prepare(fake, Path(tmp), Clock())
        before = fake.count()
        deadline = time.monotonic() + ROUND_DEADLINE_S
        changes: list[float] = []
        actions: list[float] = []
        stop = threading.Event()
        ctl.on_action = lambda _a: actions.append(time.monotonic())
        client_thread = threading.Thread(target=_nomad_client, args=(fake, changes, stop, deadline), daemon=True)
        client_thread.start()

        def wait(c: Controller) -> None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RoundTimeout(f"blocking round passed {ROUND_DEADLINE_S} s")
            c.block_for_change(min(BLOCK_WAIT_S, left))

        try:
            status = ctl.run(wait=wait, max_passes=200)
        finally:
            stop.set()
            client_thread.join(timeout=2.0)
        return Round(_reactions(changes, actions), fake.count() - before, status.phase if status else "none")


def _nomad_client(fake: FakeNomad, changes: list[float], stop: threading.Event, deadline: float) -> None:
    """Report each new allocation healthy BLOCKING_HEALTH_AFTER_S after it first shows up."""
    seen: dict[str, float] = {}
    while not stop.is_set() and time.monotonic() < deadline:
        now = time.monotonic()
        for alloc_id in _pending(fake):
            placed = seen.setdefault(alloc_id, now)
            if now - placed >= BLOCKING_HEALTH_AFTER_S:
                changes.append(time.monotonic())
                fake.set_alloc_health(alloc_id, True)
        stop.wait(0.005)


def polling_round(seed: int) -> Round:
    """Simulated time: observe every POLL_S; health arrives HEALTH_AFTER_S after placement; requests real."""
    with tempfile.TemporaryDirectory() as tmp, FakeNomad() as fake:
        clock = Clock()
        ctl = _prepare(fake, Path(tmp), clock)
        before = fake.count()
        sim = {"now": 0.0}
        seen: dict[str, float] = {}
        changes: list[float] = []
        actions: list[float] = []
        ctl.on_action = lambda _a: actions.append(sim["now"])
        rng = random.Random(seed)  # noqa: S311 - reproducible jitter, not security

        def poll(c: Controller) -> None:
            if sim["now"] > 3600:
                raise RoundTimeout("polling round passed an hour of simulated time")
            _apply_health(fake, seen, changes, sim["now"], rng)
            sim["now"] += POLL_S
            clock.advance(POLL_S)

        status = ctl.run(wait=poll, max_passes=2000)
        return Round(_reactions(changes, actions), fake.count() - before, status.phase if status else "none")


def _apply_health(fake: FakeNomad, due: dict[str, float], changes: list[float], now: float,
                  rng: random.Random) -> None:
    """Health reports due by the next poll; an allocation first seen now was placed by the previous pass."""
    for alloc_id in _pending(fake):
        at = due.setdefault(alloc_id, now + HEALTH_AFTER_S + rng.uniform(0, HEALTH_JITTER_S))
        if at <= now + POLL_S:
            changes.append(at)
            fake.set_alloc_health(alloc_id, True)


def _run(kind: str, fn: Callable[[int], Round], errors: list[str]) -> list[Round]:
    rounds = []
    for seed in range(ROUNDS):
        try:
            rounds.append(fn(seed))
        except RoundTimeout as e:
            errors.append(f"{kind}: {e}")
    return rounds


def _medians(rounds: list[Round]) -> tuple[float, float]:
    """Median reaction (ms) over every measured change, and median requests per rollout; -1 when none."""
    reactions = [r for rd in rounds for r in rd.reactions_s]
    ms = statistics.median(reactions) * 1000 if reactions else -1.0
    return ms, float(statistics.median(r.requests for r in rounds)) if rounds else -1.0


def _summary(rounds: list[Round]) -> dict[str, object]:
    reactions = [r for rd in rounds for r in rd.reactions_s]
    ms, requests = _medians(rounds)
    return {"reaction_ms_median": round(ms, 1), "reaction_ms_max": round(max(reactions, default=-1e-3) * 1000, 1),
            "reactions_measured": len(reactions), "requests_per_rollout_median": requests,
            "end_phases": sorted({r.phase for r in rounds})}


def main() -> int:
    faulthandler.dump_traceback_later(PROCESS_DEADLINE_S, exit=True)  # last resort: never hang CI
    errors: list[str] = []
    started = time.monotonic()
    b_rounds, p_rounds = _run("blocking", blocking_round, errors), _run("polling", polling_round, errors)
    (b_ms, b_req), (p_ms, p_req) = _medians(b_rounds), _medians(p_rounds)
    ok = not errors and b_ms >= 0 and p_ms >= 0
    print(json.dumps({
        "blocking": _summary(b_rounds), "polling_5s_simulated_clock": _summary(p_rounds),
        "reaction_ratio_polling_over_blocking": round(p_ms / max(b_ms, 1e-3), 1) if ok else None,
        "requests_ratio_polling_over_blocking": round(p_req / max(b_req, 1), 2) if ok else None,
        "target_median_ms": 250, "meets_target": ok and b_ms <= 250, "rounds": ROUNDS,
        "health_after_s": [HEALTH_AFTER_S, HEALTH_AFTER_S + HEALTH_JITTER_S], "errors": errors,
        "wall_s": round(time.monotonic() - started, 1),
    }, indent=2))
    faulthandler.cancel_dump_traceback_later()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
