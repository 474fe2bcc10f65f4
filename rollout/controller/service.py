"""The controller as a service: a level-triggered loop over every rollout of every environment, only while leader.

Each pass lists the (environment, biomarker) pairs with release state, skips those without a rollout in progress,
and steps each controller until it has nothing to do. Then it sleeps until a blocking query reports a change
(the release-state Variables, a rollout's Nomad job or deployment) or `interval` passes, whichever is first;
the interval is what makes timed pauses and analysis gates (whose executions live in the ledger) fire. An error
in one rollout is logged as a JSON line and never stops the others.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from delivery.errors import DeliveryError
from rollout.controller.decide import Action, UpdateStatus
from rollout.controller.leader import Leadership, Log
from rollout.controller.loop import Controller, load_status
from rollout.controller.model import Pause, RolloutStatus
from rollout.nomad import NomadClient
from rollout.nomad_state import NomadReleaseStore

Pair = tuple[str, str]
ControllerFactory = Callable[[str, str], Controller]
Lister = Callable[[], Iterable[Pair]]
Watch = Callable[[int, float], int]  # a blocking read: (index, wait seconds) -> the index it returned
WatchFactory = Callable[[], Watch]  # called once, when the watching thread starts (it opens its own connection)
INTERVAL_S = 5.0
BLOCK_S = 30.0


def json_log(stream: TextIO | None = None) -> Log:
    """Write each record as one JSON line (with its time) on `stream` (default stderr)."""
    lock = threading.Lock()

    def write(record: Mapping[str, object]) -> None:
        line = json.dumps({"at": datetime.now(UTC).isoformat(), **record}, default=str, sort_keys=False)
        with lock:
            out = stream or sys.stderr
            out.write(line + "\n")
            out.flush()

    return write


def describe(action: Action) -> dict[str, object]:
    """An action as a small JSON-able record (job specs and statuses left out)."""
    out: dict[str, object] = {"action": type(action).__name__}
    out.update({f.name: getattr(action, f.name) for f in fields(action) if f.repr})
    if isinstance(action, UpdateStatus):
        s = action.status
        out.update(phase=s.phase, weight=s.weight, step=f"{s.step_index + 1}/{len(s.steps)}")
    return out


class Watches:
    """One daemon thread per watched key, each looping on a blocking query; any change sets `wake`."""

    def __init__(self, wake: threading.Event, *, block_s: float = BLOCK_S, log: Log | None = None) -> None:
        self.wake, self.block_s, self.log = wake, block_s, log or json_log()
        self._stops: dict[str, threading.Event] = {}

    def follow(self, watches: Mapping[str, WatchFactory]) -> None:
        """Watch exactly these keys from now on (new ones start, dropped ones stop after their current query)."""
        for key in set(self._stops) - set(watches):
            self._stops.pop(key).set()
        for key, watch in watches.items():
            if key not in self._stops:
                stop = self._stops[key] = threading.Event()
                threading.Thread(target=self._loop, args=(key, watch, stop), name=f"watch {key}", daemon=True).start()

    def close(self) -> None:
        """Stop every watcher."""
        self.follow({})

    def _loop(self, key: str, factory: WatchFactory, stop: threading.Event) -> None:
        watch, index = factory(), 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                new = watch(index, self.block_s)
            except DeliveryError as e:
                self.log({"watch": key, "error": e.message})
                stop.wait(self.block_s)
                continue
            if index and new != index and not stop.is_set():
                self.wake.set()
            elif index and time.monotonic() - started < self.block_s / 2:
                stop.wait(self.block_s)  # the source answered at once without a change: it cannot block
            index = new


def release_state_watch(store: object) -> WatchFactory | None:
    """One blocking read that any release-state write wakes (new rollouts, API actions); None off Nomad."""
    if not isinstance(store, NomadReleaseStore):
        return None
    settings, prefix = store.client.settings, f"{store.prefix}/"

    def start() -> Watch:
        reader = NomadClient(settings)
        return lambda i, w: reader.variables_index(prefix, index=i, wait=w)

    return start


def watches_for(ctl: Controller, status: RolloutStatus) -> dict[str, WatchFactory]:
    """Blocking reads that change when Nomad moves this rollout's job or deployment (none off Nomad)."""
    if not isinstance(ctl.scheduler, NomadClient):
        return {}
    settings, job_id = ctl.scheduler.settings, str(status.promote_spec["ID"])

    def job() -> Watch:
        nomad = NomadClient(settings)  # its own connection: it blocks beside the passes
        return lambda i, w: nomad.job(job_id, index=i, wait=w).index

    def deployment() -> Watch:
        nomad = NomadClient(settings)
        return lambda i, w: nomad.latest_deployment(job_id, index=i, wait=w).index

    out: dict[str, WatchFactory] = {f"job:{job_id}": job}
    if status.job_type == "service":
        out[f"deployment:{job_id}"] = deployment
    return out


class ControllerService:
    """Drives every rollout while `leadership` says this replica leads."""

    def __init__(self, *, rollouts: Lister, controller_for: ControllerFactory, leadership: Leadership,
                 interval: float = INTERVAL_S, max_steps: int = 100, on_progress: Log | None = None,
                 log: Log | None = None, block_s: float = BLOCK_S, state_watch: WatchFactory | None = None) -> None:
        self.rollouts, self.controller_for, self.leadership = rollouts, controller_for, leadership
        self.interval, self.max_steps = interval, max_steps
        self.on_progress = on_progress or (lambda record: None)
        self.log = log or json_log()
        self.wake = threading.Event()
        leadership.changed = self.wake  # a gained or lost lock wakes the loop at once
        self.watches = Watches(self.wake, block_s=block_s, log=self.log)
        self.state_watch = state_watch
        self._controllers: dict[Pair, Controller] = {}
        self._stop = threading.Event()
        self._release = True
        self.actions = 0

    # ---------------------------------------------------------------- lifecycle
    def run(self) -> None:
        """Contend for the lock and drive rollouts until `stop()`.

        Raises:
            LeaderLockError: the lock cannot be used at all (e.g. Nomad refuses the token).
        """
        self.leadership.start()
        try:
            while not self._stop.is_set():
                if self.leadership.error is not None:
                    raise self.leadership.error
                self._cycle()
        finally:
            self.watches.close()
            self.leadership.stop(release=self._release)

    def stop(self, *, release: bool = True) -> None:
        """Finish the current step and return from `run`; `release=False` leaves the lock to expire (a crash)."""
        self._release = release
        self._stop.set()
        self.wake.set()

    def run_once(self) -> bool:
        """One pass if this replica can take the lock (then released); False when another replica leads.

        Raises:
            LeaderLockError: the lock cannot be used at all.
        """
        leading = self.leadership.tick()
        if self.leadership.error is not None:
            raise self.leadership.error
        if not leading:
            return False
        try:
            self.run_pass()
        finally:
            self.leadership.stop(release=True)
        return True

    def _cycle(self) -> None:
        self.wake.clear()
        if not self.leadership.leading():
            self.watches.close()
            self.wake.wait(self.leadership.period)
            return
        active = self.run_pass()
        watches = {k: w for ctl, status in active for k, w in self._watches(ctl, status).items()}
        if self.state_watch is not None:
            watches["release-state"] = self.state_watch
        self.watches.follow(watches)
        self.wake.wait(min([self.interval, *(_until_pause_ends(ctl, status) for ctl, status in active)]))

    def _watches(self, ctl: Controller, status: RolloutStatus) -> dict[str, WatchFactory]:
        try:
            return watches_for(ctl, status)
        except (DeliveryError, KeyError) as e:
            self.log({"environment": ctl.environment, "biomarker": ctl.biomarker, "error": f"cannot watch: {e}"})
            return {}

    # ---------------------------------------------------------------- one pass
    def run_pass(self) -> list[tuple[Controller, RolloutStatus]]:
        """Step every rollout in progress until it has nothing to do; the ones still in progress afterwards."""
        active: list[tuple[Controller, RolloutStatus]] = []
        for environment, biomarker in self._pairs():
            if not self.leading():
                break
            got = self._drive(environment, biomarker)
            if got is not None:
                active.append(got)
        return active

    def leading(self) -> bool:
        """Act only while this replica holds the lock and has not been told to stop."""
        return not self._stop.is_set() and self.leadership.leading()

    def _pairs(self) -> list[Pair]:
        try:
            return sorted(set(self.rollouts()))
        except DeliveryError as e:
            self.log({"error": f"cannot list rollouts: {e.message}", "hint": e.hint})
            return []

    def _drive(self, environment: str, biomarker: str) -> tuple[Controller, RolloutStatus] | None:
        where = {"environment": environment, "biomarker": biomarker}
        try:
            ctl = self._controller(environment, biomarker)
            status = self._status(ctl)
            if status is None or status.terminal:
                return None
            self._steps(ctl, where)
            status = self._status(ctl)
        except DeliveryError as e:
            self.log({**where, "error": e.message, "hint": e.hint})
            return None
        except Exception as e:  # one broken rollout must never stop the others
            self.log({**where, "error": f"{type(e).__name__}: {e}"})
            return None
        return (ctl, status) if status is not None and not status.terminal else None

    def _steps(self, ctl: Controller, where: dict[str, str]) -> None:
        for _ in range(self.max_steps):
            if not self.leading():
                return
            outcome = ctl.step()
            if outcome.action is None:
                return
            self.actions += 1
            record: dict[str, Any] = {**where, **describe(outcome.action)}
            self.on_progress({**record, "conflict": True} if outcome.conflict else record)

    def _controller(self, environment: str, biomarker: str) -> Controller:
        key = (environment, biomarker)
        if key not in self._controllers:
            self._controllers[key] = self.controller_for(environment, biomarker)
        return self._controllers[key]

    @staticmethod
    def _status(ctl: Controller) -> RolloutStatus | None:
        return load_status(ctl.store.read(ctl.environment, ctl.biomarker).state)


def _until_pause_ends(ctl: Controller, status: RolloutStatus) -> float:
    """Seconds until a timed pause step is over (so it fires on time whatever the interval); inf otherwise."""
    step = status.current_step
    if not isinstance(step, Pause) or step.duration_s is None or status.phase != "Progressing":
        return math.inf
    left = (status.step_started_at + timedelta(seconds=step.duration_s) - ctl.clock()).total_seconds()
    return max(left, 0.05)


def follow_status(store: Any, environment: str, biomarker: str, *, wait: float,
                  on_change: Callable[[RolloutStatus | None], None],
                  stop: threading.Event | None = None) -> RolloutStatus | None:
    """Show a rollout as the controller service moves it, acting on nothing: returns once it ended, waits on a
    human (Paused) or has no rollout. Nomad release state is followed with blocking queries, SQLite by polling."""
    stop = stop or threading.Event()
    last: RolloutStatus | None = None
    first = True
    while True:
        versioned = store.read(environment, biomarker)
        status = load_status(versioned.state)
        if first or status != last:
            on_change(status)
        first, last = False, status
        if status is None or status.terminal or status.phase == "Paused" or stop.is_set():
            return status
        if isinstance(store, NomadReleaseStore) and versioned.index and wait > 0:
            store.client.variable(f"{store.prefix}/{environment}/{biomarker}", index=versioned.index, wait=wait)
        else:
            stop.wait(min(max(wait, 0.2), 1.0))
