"""The controller service: rollouts move with no terminal open, and only the elected replica acts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.leader import LOCK_PATH, LeaderLockError, Leadership, NomadLease
from rollout.controller.loop import Controller, load_status
from rollout.controller.model import RolloutStatus
from rollout.controller.service import ControllerService, release_state_watch
from rollout.nomad_state import NomadReleaseStore
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, Verifier, client, manifest, release

TTL = 2.0  # short for speed, long enough that a busy test machine never misses a renewal
STEPS = """\
rollout:
  steps:
    - set_weight: 50
    - pause: {duration: 1s}
    - set_weight: 100
    - pause: {}
    - promote: {}
"""
PAUSED = BATCH[: BATCH.index("rollout:")] + STEPS  # a timed pause, then a pause only `rollout resume` ends


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Replica:
    """One controller service in a thread, recording what it did."""

    service: ControllerService
    actions: list[dict[str, object]] = field(default_factory=list)
    logs: list[dict[str, object]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def start(self) -> Replica:
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()
        return self

    def stop(self, *, release: bool = True) -> None:
        self.service.stop(release=release)
        assert self.thread is not None
        self.thread.join(10)


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def store(fake: FakeNomad) -> NomadReleaseStore:
    return NomadReleaseStore(client(fake.address))


def replica(fake: FakeNomad, name: str, *, interval: float = 0.3, ttl: float = TTL) -> Replica:
    rs = store(fake)
    lease = NomadLease(client(fake.address), identity=name, ttl=ttl, max_skew=0.1)
    r = Replica(service=None)  # type: ignore[arg-type]

    def controller_for(environment: str, biomarker: str) -> Controller:
        return Controller(environment=environment, biomarker=biomarker, scheduler=client(fake.address), store=rs,
                          verifier=Verifier(), stats=InMemoryExecutionStats(), clock=now)

    def rollouts() -> list[tuple[str, str]]:
        return rs.pairs()

    r.service = ControllerService(rollouts=rollouts, controller_for=controller_for,
                                  leadership=Leadership(lease, period=ttl / 3, log=r.logs.append),
                                  interval=interval, on_progress=r.actions.append, log=r.logs.append,
                                  block_s=5.0, state_watch=release_state_watch(rs))
    return r


def deploy(fake: FakeNomad, version: str, text: str = PAUSED) -> None:
    m = manifest(text)
    operations.start_rollout(store=store(fake), scheduler=client(fake.address), manifest=m, variant="fast",
                             release=release(m.name, version), environment=ENV, now=now())


def first_version(fake: FakeNomad) -> int:
    """1.0.0 becomes stable (a first version skips the steps); the job registrations that took."""
    deploy(fake, "1.0.0")
    rs = store(fake)
    Controller(environment=ENV, biomarker="alpha", scheduler=client(fake.address), store=rs, verifier=Verifier(),
               stats=InMemoryExecutionStats(), clock=now).run()
    assert phase(fake) == "Succeeded"
    return registers(fake)


def status(fake: FakeNomad) -> RolloutStatus | None:
    return load_status(store(fake).read(ENV, "alpha").state)


def until(what: Callable[[], bool], seconds: float = 10.0) -> float:
    """Seconds it took `what` to hold (fails after `seconds`)."""
    start = time.monotonic()
    while not what():
        assert time.monotonic() - start < seconds, "timed out"
        time.sleep(0.05)
    return time.monotonic() - start


def phase(fake: FakeNomad) -> str | None:
    s = status(fake)
    return s.phase if s else None


def waiting_for_resume(fake: FakeNomad) -> bool:
    s = status(fake)
    return s is not None and s.phase == "Paused" and s.weight == 100


def registers(fake: FakeNomad) -> int:
    return fake.count("PUT", "/v1/job") + fake.count("POST", "/v1/job")


def test_a_timed_pause_advances_with_no_watch_open(fake: FakeNomad) -> None:
    first_version(fake)
    deploy(fake, "1.1.0")
    r = replica(fake, "a").start()
    try:
        until(lambda: waiting_for_resume(fake))
        s = status(fake)
        assert s is not None and s.step_index == 3  # past the 1 s pause, nobody watching
        operations.request(store(fake), ENV, "alpha", "resume", now=now(), reason="looks fine")
        until(lambda: phase(fake) == "Succeeded")
    finally:
        r.stop()
    stable = client(fake.address).job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.1.0"
    assert any(a["action"] == "Register" for a in r.actions)


def test_an_api_action_wakes_the_service_through_a_blocking_query(fake: FakeNomad) -> None:
    first_version(fake)
    r = replica(fake, "a", interval=60.0).start()  # the interval alone would take a minute
    try:
        until(lambda: r.service.leading())
        deploy(fake, "1.1.0")
        until(lambda: waiting_for_resume(fake), 8.0)  # the timed pause still fires: the lock's renewals wake it
        operations.request(store(fake), ENV, "alpha", "resume", now=now())
        took = until(lambda: phase(fake) == "Succeeded", 8.0)
    finally:
        r.stop()
    assert took < 3.0


def reference_registers(version: str) -> int:
    """How many job registrations one controller alone makes for the same rollout."""
    with FakeNomad() as alone:
        base = first_version(alone)
        deploy(alone, version)
        r = replica(alone, "solo").start()
        try:
            until(lambda: waiting_for_resume(alone))
            operations.request(store(alone), ENV, "alpha", "resume", now=now())
            until(lambda: phase(alone) == "Succeeded")
        finally:
            r.stop()
        return registers(alone) - base


def test_two_replicas_only_one_acts_and_a_killed_leader_hands_over(fake: FakeNomad) -> None:
    base = first_version(fake)
    deploy(fake, "1.1.0")
    a, b = replica(fake, "a").start(), replica(fake, "b").start()
    try:
        until(lambda: waiting_for_resume(fake))
        leader, follower = (a, b) if a.actions else (b, a)
        assert leader.actions and not follower.actions
        leader.stop(release=False)  # killed: the lock stays until its TTL runs out
        operations.request(store(fake), ENV, "alpha", "resume", now=now())
        took = until(lambda: phase(fake) == "Succeeded")
    finally:
        a.stop()
        b.stop()
    assert follower.actions and took < 5 * TTL
    assert any(log.get("leader") == "acquired" for log in follower.logs)
    stable = client(fake.address).job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.1.0" and stable.stable
    assert registers(fake) - base == reference_registers("1.1.0")  # nothing done twice


def test_a_leader_that_loses_its_lease_stops_acting(fake: FakeNomad) -> None:
    r = replica(fake, "a", ttl=3.0).start()
    try:
        until(lambda: r.service.leading())
        var = client(fake.address).variable(LOCK_PATH).value
        assert var is not None
        client(fake.address).put_variable(LOCK_PATH, {"holder": "other", "term": "9",
                                                      "expires_at": "2100-01-01T00:00:00+00:00"},
                                          cas=var.modify_index)
        until(lambda: not r.service.leading(), 2.0)  # at once, not after a renew period or the TTL
        base = first_version(fake)
        deploy(fake, "1.1.0")
        time.sleep(1.0)
    finally:
        r.stop()
    assert not r.actions and registers(fake) == base
    assert phase(fake) == "Progressing" and status(fake).step_index == 0  # type: ignore[union-attr]
    assert any(log.get("leader") == "stepped-down" for log in r.logs)


@pytest.mark.parametrize(("status_code", "text"), [(403, "Permission denied"), (500, "rpc error: no leader")])
def test_a_nomad_refusing_the_lock_is_a_clear_error_and_nothing_is_done(fake: FakeNomad, status_code: int,
                                                                         text: str) -> None:
    base = first_version(fake)
    deploy(fake, "1.1.0")
    fake.inject("GET", "^/v1/var/delivery/controller/leader$", status=status_code, text=text, times=1000)
    r = replica(fake, "a")
    if status_code == 403:
        with pytest.raises(LeaderLockError, match="403"):
            r.service.run_once()
    else:
        r.start()
        until(lambda: any("500" in str(log.get("error")) for log in r.logs))
        r.stop()
    assert not r.actions and registers(fake) == base
    assert any(LOCK_PATH in str(log.get("error", "")) for log in r.logs)


def test_a_running_service_ends_with_the_lock_error_when_nomad_refuses_the_token(fake: FakeNomad) -> None:
    base = first_version(fake)
    deploy(fake, "1.1.0")
    fake.inject("PUT", "^/v1/var/delivery/controller/leader$", status=403, text="Permission denied", times=1000)
    r = replica(fake, "a")
    started = time.monotonic()
    with pytest.raises(LeaderLockError, match="403") as e:
        r.service.run()
    assert time.monotonic() - started < 5 and "variables read and write" in str(e.value.hint)
    assert not r.actions and registers(fake) == base


def test_a_timed_pause_ends_on_time_with_nothing_else_to_wake_the_service(fake: FakeNomad) -> None:
    first_version(fake)
    deploy(fake, "1.1.0")
    r = replica(fake, "a", interval=60.0, ttl=30.0).start()  # neither the interval nor a renewal comes in time
    try:
        took = until(lambda: waiting_for_resume(fake), 8.0)
    finally:
        r.stop()
    assert took < 4.0
