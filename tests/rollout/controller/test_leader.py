"""The controller's leader lock: a Nomad Variable written with compare-and-set and a TTL, or a file lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.errors import DeliveryError
from rollout.controller.leader import LOCK_PATH, FileLease, LeaderLockError, Leadership, NomadLease
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import client

T0 = 1_800_000_000.0


class Seconds:
    """An injectable wall clock (seconds since the epoch)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def lease(fake: FakeNomad, name: str, clock: Seconds, **kw: object) -> NomadLease:
    return NomadLease(client(fake.address), identity=name, clock=clock, ttl=10.0, max_skew=1.0, **kw)  # type: ignore[arg-type]


def lock_items(fake: FakeNomad) -> dict[str, str]:
    var = client(fake.address).variable(LOCK_PATH).value
    assert var is not None
    return dict(var.items)


def test_first_replica_takes_the_lock_and_the_second_waits(fake: FakeNomad) -> None:
    clock = Seconds()
    a, b = lease(fake, "a", clock), lease(fake, "b", clock)
    assert a.acquire() and a.held()
    assert not b.acquire() and not b.held()
    assert lock_items(fake)["holder"] == "a" and lock_items(fake)["term"] == "1"
    assert b.describe()["holder"] == "a"


def test_the_holder_renews_and_keeps_its_term(fake: FakeNomad) -> None:
    clock = Seconds()
    a, b = lease(fake, "a", clock), lease(fake, "b", clock)
    assert a.acquire()
    for _ in range(5):  # renewing every TTL/3 keeps it well past one TTL
        clock.now += 10.0 / 3
        assert a.acquire() and a.held()
        assert not b.acquire()
    assert lock_items(fake)["term"] == "1"


def test_an_expired_lock_is_taken_over_and_the_old_holder_stops_acting(fake: FakeNomad) -> None:
    clock = Seconds()
    a, b = lease(fake, "a", clock), lease(fake, "b", clock)
    assert a.acquire()
    clock.now += 9.0  # a stops acting max_skew before its expiry, before anyone may take over
    assert not a.held() and not b.acquire()
    clock.now += 1.5
    assert b.acquire() and b.held()
    assert lock_items(fake)["holder"] == "b" and lock_items(fake)["term"] == "2"
    assert not a.acquire() and not a.held()  # a came back: it sees b and stays a follower


def test_a_clean_release_hands_over_at_once(fake: FakeNomad) -> None:
    clock = Seconds()
    a, b = lease(fake, "a", clock), lease(fake, "b", clock)
    assert a.acquire()
    a.release()
    assert not a.held()
    assert b.acquire() and lock_items(fake)["term"] == "2"


def test_another_holder_writing_the_variable_makes_the_leader_step_down(fake: FakeNomad) -> None:
    clock = Seconds()
    a = lease(fake, "a", clock)
    assert a.acquire()
    current = client(fake.address).variable(LOCK_PATH).value
    assert current is not None
    client(fake.address).put_variable(LOCK_PATH, {"holder": "intruder", "expires_at": "2100-01-01T00:00:00+00:00",
                                                  "term": "7"}, cas=current.modify_index)
    assert not a.acquire() and not a.held()
    assert lock_items(fake)["holder"] == "intruder"


def test_a_lost_compare_and_set_on_renew_steps_down(fake: FakeNomad) -> None:
    clock = Seconds()
    a, b = lease(fake, "a", clock), lease(fake, "b", clock)
    assert a.acquire()
    clock.now += 11.0
    assert b.acquire()
    clock.now -= 11.0  # a's clock lags far beyond the assumption: its renew still loses the compare-and-set
    assert not a.acquire() and not a.held()
    assert lock_items(fake)["holder"] == "b"


def test_a_retried_write_that_won_is_recognised(fake: FakeNomad) -> None:
    clock = Seconds()
    a = lease(fake, "a", clock)
    fake.inject("PUT", "^/v1/var/", status=500, text="rpc error: timeout", apply=True)  # applied, answer lost
    assert a.acquire() and a.held()
    assert lock_items(fake)["holder"] == "a"


def test_a_refused_token_is_a_clear_error_and_takes_nothing(fake: FakeNomad) -> None:
    fake.inject("GET", "^/v1/var/delivery/controller/leader$", status=403, text="Permission denied")
    with pytest.raises(LeaderLockError) as e:
        lease(fake, "a", Seconds()).acquire()
    assert LOCK_PATH in e.value.message and "403" in e.value.message
    assert e.value.hint is not None and "variables" in e.value.hint
    assert fake.count("PUT", "/v1/var") == 0


def test_a_failing_nomad_is_reported_and_nothing_is_held(fake: FakeNomad) -> None:
    fake.inject("PUT", "^/v1/var/", status=500, text="rpc error: no leader", times=10)
    a = lease(fake, "a", Seconds())
    with pytest.raises(DeliveryError) as e:
        a.acquire()
    assert "500" in e.value.message and not a.held()
    assert client(fake.address).variable(LOCK_PATH).value is None


def test_skew_margin_must_fit_in_the_renew_period(fake: FakeNomad) -> None:
    with pytest.raises(ValueError, match="max_skew"):
        NomadLease(client(fake.address), ttl=3.0, max_skew=1.0)


def test_file_lock_allows_one_controller_per_machine(tmp_path: Path) -> None:
    first, second = FileLease(tmp_path / "controller.lock", identity="one"), FileLease(tmp_path / "controller.lock")
    assert first.acquire() and first.held()
    assert not second.acquire() and second.describe()["holder"] == "one"
    first.release()
    assert second.acquire() and second.held()
    second.release()


def test_a_holder_whose_renewals_fail_acts_only_until_its_lease_runs_out(fake: FakeNomad) -> None:
    clock, logs = Seconds(), list[dict[str, object]]()
    leadership = Leadership(lease(fake, "a", clock), period=10.0 / 3, log=logs.append)
    assert leadership.tick() and leadership.leading()
    fake.inject("PUT", "^/v1/var/", status=500, text="rpc error: no leader", times=100)
    clock.now += 10.0 / 3
    assert leadership.tick() and leadership.leading()  # the lease it holds still covers it
    assert logs[-1].get("leader") == "unavailable" and "500" in str(logs[-1].get("error"))
    clock.now += 10.0 / 3 * 2
    assert not leadership.tick() and not leadership.leading()
    assert logs[-1].get("leader") == "stepped-down"
