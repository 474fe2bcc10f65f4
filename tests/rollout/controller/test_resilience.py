"""Crash after every single action, two racing controllers, Nomad 500s and timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.controller import operations
from rollout.controller.decide import Action
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.loop import Controller, load_status
from tests.rollout.controller.test_scenarios import deploy, feed
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, SERVICE, Clock, client, controller

SERVICE_ACTIONS = 6  # verify, register, analysis step, promote, success (+1 spare index that must still converge)


class Killed(Exception):
    """The controller process dies right after an action took effect."""


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def _end_state(fake: FakeNomad, tmp: Path) -> tuple[str, str | None, list[int], list[tuple[int, bool]]]:
    status = load_status(SqliteReleaseStore(tmp / "release-state.sqlite").read(ENV, "quicklook").state)
    assert status is not None
    versions = [(v.version, v.stable) for v in client(fake.address).versions("quicklook-web")]
    return status.phase, status.stable.version if status.stable else None, fake.job_versions("quicklook-web"), versions


def _service_rollout(fake: FakeNomad, tmp: Path, crash_after: int | None) -> int:
    clock = Clock()
    deploy(fake, tmp, SERVICE, "1.0.0", clock)
    controller(fake.address, tmp, "quicklook", clock).run()
    deploy(fake, tmp, SERVICE, "1.1.0", clock)
    done = 0

    def die(_: Action) -> None:
        nonlocal done
        done += 1
        if crash_after is not None and done == crash_after:
            raise Killed

    ctl = controller(fake.address, tmp, "quicklook", clock)
    ctl.on_action = die
    try:
        ctl.run()
    except Killed:
        controller(fake.address, tmp, "quicklook", clock).run()  # a fresh process picks up
    return done


@pytest.mark.parametrize("crash_after", range(1, SERVICE_ACTIONS + 1))
def test_killed_after_any_action_converges_to_the_same_end_state(crash_after: int, tmp_path: Path) -> None:
    with FakeNomad() as reference:
        total = _service_rollout(reference, tmp_path / "ref", None)
        expected = _end_state(reference, tmp_path / "ref")
    assert crash_after <= total + 1
    with FakeNomad() as crashed:
        _service_rollout(crashed, tmp_path / "crash", crash_after)
        assert _end_state(crashed, tmp_path / "crash") == expected
    assert expected[0] == "Succeeded" and expected[1] == "1.1.0"


@pytest.mark.parametrize("crash_after", range(1, 9))
def test_batch_rollout_killed_after_any_action_converges(crash_after: int, tmp_path: Path) -> None:
    def once(fake: FakeNomad, tmp: Path, crash: int | None) -> tuple[object, ...]:
        clock, stats = Clock(), InMemoryExecutionStats()
        deploy(fake, tmp, BATCH, "1.0.0", clock)
        controller(fake.address, tmp, "alpha", clock).run()
        deploy(fake, tmp, BATCH, "1.1.0", clock)
        count = 0

        def die(_: Action) -> None:
            nonlocal count
            count += 1
            if count == crash:
                raise Killed

        for _ in range(3):
            ctl = controller(fake.address, tmp, "alpha", clock, stats)
            ctl.on_action = die
            try:
                ctl.run()
            except Killed:
                controller(fake.address, tmp, "alpha", clock, stats).run()
            clock.advance(60)
            feed(stats, clock, "1.1.0", 3)
        controller(fake.address, tmp, "alpha", clock, stats).run()
        status = load_status(SqliteReleaseStore(tmp / "release-state.sqlite").read(ENV, "alpha").state)
        assert status is not None
        return status.phase, fake.job_versions("alpha-fast"), fake.job_versions("alpha-fast-canary")

    with FakeNomad() as a, FakeNomad() as b:
        assert once(b, tmp_path / "crash", crash_after) == once(a, tmp_path / "ref", None)


def test_two_controllers_racing_lose_no_update(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    controller(fake.address, tmp_path, "quicklook", clock).run()
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    ctls = [controller(fake.address, tmp_path, "quicklook", clock, store=store) for _ in range(2)]
    conflicts: list[bool] = []
    barrier = threading.Barrier(2)

    def go(ctl: Controller) -> None:
        barrier.wait()
        for _ in range(60):
            conflicts.append(ctl.step().conflict)

    threads = [threading.Thread(target=go, args=(c,)) for c in ctls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status = load_status(store.read(ENV, "quicklook").state)
    assert status is not None and status.phase == "Succeeded"
    assert fake.job_versions("quicklook-web") == [0, 1]  # exactly one registration of the candidate
    actions = [e.action for e in status.history]
    assert actions.count("verified") == 1 and actions.count("succeeded") == 1


def test_human_pause_is_not_lost_while_the_controller_writes(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    deploy(fake, tmp_path, BATCH, "1.0.0", clock)
    controller(fake.address, tmp_path, "alpha", clock).run()
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats, store=store)
    observed = ctl.observe()  # the controller read the state ...
    operations.request(store, ENV, "alpha", "pause", now=clock(), reason="look at logs")  # ... a human wrote ...
    from rollout.controller.decide import decide
    action = decide(observed)
    assert action is not None
    from delivery.release.state import ConflictError
    from rollout.nomad import NomadConflict
    try:
        ctl.act(observed, action)  # ... and the controller's stale write must not erase the pause
    except (ConflictError, NomadConflict):
        pass
    status = load_status(store.read(ENV, "alpha").state)
    assert status is not None and "Manual" in status.pause_reasons


def test_nomad_500s_and_timeouts_are_retried_without_duplicate_versions(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    controller(fake.address, tmp_path, "quicklook", clock).run()
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    # The register is applied but its answer is lost (500), then reads fail, then a read times out.
    fake.inject("PUT", r"^/v1/job/quicklook-web$", status=500, apply=True)
    fake.inject("POST", r"^/v1/job/quicklook-web$", status=500, apply=True)
    fake.inject("GET", r"^/v1/job/quicklook-web$", status=503, times=2)
    fake.inject("GET", r"/versions$", delay=2.5, times=1)
    status = controller(fake.address, tmp_path, "quicklook", clock).run()
    assert status is not None and status.phase == "Succeeded"
    assert fake.job_versions("quicklook-web") == [0, 1]
    assert fake.count("GET", "/v1/job/quicklook-web/versions") >= 2
