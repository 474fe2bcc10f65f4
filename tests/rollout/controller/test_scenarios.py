"""Scenario tests of the controller against the fake Nomad (the issue's "done when" list)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.release.state import SqliteReleaseStore
from rollout import freeze
from rollout.controller import operations
from rollout.controller.decide import UpdateStatus
from rollout.controller.gates import InMemoryExecutionStats, PairedOutput
from rollout.controller.loop import Controller
from rollout.controller.model import RolloutStatus
from tests.support.fake_nomad import FakeNomad, Node
from tests.support.nomad_world import BATCH, ENV, SERVICE, Clock, client, controller, manifest, release


@pytest.fixture
def fake() -> Iterator[FakeNomad]:
    with FakeNomad() as f:
        yield f


def deploy(fake: FakeNomad, tmp: Path, text: str, version: str, clock: Clock, *, gpu: int = 0,
           override: str | None = None, audit: AuditLog | None = None) -> RolloutStatus:
    m = manifest(text, gpu=gpu)
    return operations.start_rollout(store=SqliteReleaseStore(tmp / "release-state.sqlite"),
                                    scheduler=client(fake.address), manifest=m, variant=next(iter(m.variants)),
                                    release=release(m.name, version), environment=ENV, now=clock(),
                                    audit=audit, override_reason=override)


def run(ctl: Controller) -> RolloutStatus:
    status = ctl.run()
    assert status is not None
    return status


def feed(stats: InMemoryExecutionStats, clock: Clock, version: str, n: int, *, ok: bool = True,
         runtime: float = 10.0, stable: str = "1.0.0", volume: float = 100.0) -> None:
    for i in range(n):
        stats.record("alpha", version, clock(), ok=ok, runtime_s=runtime)
        stats.record("alpha", stable, clock(), ok=True, runtime_s=10.0)
        stats.record_pair("alpha", version, stable, clock(),
                          PairedOutput(f"study-{i}", {"volume_ml": volume}, {"volume_ml": 100.0}))


def batch_to_stable(fake: FakeNomad, tmp: Path, clock: Clock) -> None:
    deploy(fake, tmp, BATCH, "1.0.0", clock)
    assert run(controller(fake.address, tmp, "alpha", clock)).phase == "Succeeded"


def test_batch_candidate_goes_through_10_50_100_with_gates_and_is_promoted(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    weights: list[int] = []
    ctl.on_action = lambda a: weights.append(a.status.weight) if isinstance(a, UpdateStatus) else None
    for _ in range(2):
        assert run(ctl).phase == "Progressing"  # waiting for the analysis step's executions
        clock.advance(60)
        feed(stats, clock, "1.1.0", 3)
    status = run(ctl)
    assert [w for i, w in enumerate(weights) if i == 0 or w != weights[i - 1]] == [10, 50, 100, 0]
    assert status.phase == "Succeeded" and status.stable is not None and status.stable.version == "1.1.0"
    stable = client(fake.address).job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.1.0" and stable.stable
    assert fake.job_versions("alpha-fast") == [0, 1]
    canary = client(fake.address).job("alpha-fast-canary").value
    assert canary is not None and canary.stop


def test_failing_gate_rolls_back_and_stops_the_candidate(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    run(ctl)
    clock.advance(60)
    feed(stats, clock, "1.1.0", 3, volume=120.0)  # 20 % off: outside the 1 % tolerance
    status = run(ctl)
    assert status.phase == "RolledBack" and status.failure_reason == "GateFailed"
    assert status.weight == 0
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.reason == "GateFailed" and "equivalence" in degraded.message
    canary = client(fake.address).job("alpha-fast-canary").value
    assert canary is not None and canary.stop
    stable = client(fake.address).job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.0.0"


def test_rollback_after_promotion_reverts_the_stable_job_even_during_a_freeze(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    for _ in range(4):
        run(ctl)
        clock.advance(60)
        feed(stats, clock, "1.1.0", 3)
    assert run(ctl).phase == "Succeeded"
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    operations.add_freeze(store, ENV, "alpha", freeze.new_freeze(reason="trial", owner="qa", now=clock()), None)
    operations.request(store, ENV, "alpha", "rollback", now=clock(), reason="bad numbers")
    status = run(ctl)
    assert status.phase == "RolledBack"
    stable = client(fake.address).job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.0.0" and stable.stable
    assert fake.job_versions("alpha-fast") == [0, 1, 2]  # revert = a new version from v0's spec


def test_deploy_refused_during_freeze_and_allowed_with_audited_override(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    batch_to_stable(fake, tmp_path, clock)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    operations.add_freeze(store, ENV, "alpha", freeze.new_freeze(reason="audit week", owner="qa", now=clock()), None)
    with pytest.raises(freeze.FrozenError, match="audit week"):
        deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    status = deploy(fake, tmp_path, BATCH, "1.1.0", clock, override="hotfix CVE", audit=audit)
    assert status.freeze_override == "hotfix CVE"
    events = audit.events(action="freeze-override")
    assert [e.reason for e in events] == ["hotfix CVE"] and events[0].subject == f"{ENV}/alpha"
    assert run(controller(fake.address, tmp_path, "alpha", clock)).weight == 10


def test_freeze_added_mid_rollout_pauses_promotion_until_lifted(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    run(ctl)
    item = freeze.new_freeze(reason="release freeze", owner="rm", now=clock())
    operations.add_freeze(store, ENV, "alpha", item, None)
    clock.advance(60)
    feed(stats, clock, "1.1.0", 3)
    status = run(ctl)
    assert status.phase == "Paused" and "Frozen" in status.pause_reasons and status.exit_code() == 3
    operations.remove_freeze(store, ENV, "alpha", item.id, None)
    assert run(ctl).weight == 50


def test_trial_pin_survives_a_promotion(fake: FakeNomad, tmp_path: Path) -> None:
    clock, stats = Clock(), InMemoryExecutionStats()
    batch_to_stable(fake, tmp_path, clock)
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    pin = freeze.new_freeze(reason="trial NCT-1", owner="trial-lead", now=clock(), version="1.0.0", cohort="nct-1")
    operations.add_freeze(store, ENV, "alpha", pin, None)
    deploy(fake, tmp_path, BATCH, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "alpha", clock, stats)
    for _ in range(4):
        run(ctl)
        clock.advance(60)
        feed(stats, clock, "1.1.0", 3)
    status = run(ctl)
    assert status.phase == "Succeeded" and status.stable is not None and status.stable.version == "1.1.0"
    state = store.read(ENV, "alpha").state
    assert freeze.pinned_version(state, clock(), cohort="nct-1") == "1.0.0"
    assert freeze.pinned_version(state, clock()) is None
    assert [f.id for f in state.freezes] == [pin.id]


def test_healthy_service_canary_is_promoted(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    assert run(controller(fake.address, tmp_path, "quicklook", clock)).phase == "Succeeded"
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    status = run(controller(fake.address, tmp_path, "quicklook", clock))
    assert status.phase == "Succeeded" and status.exit_code() == 0
    versions = client(fake.address).versions("quicklook-web")
    assert versions[0].meta_value("version") == "1.1.0" and versions[0].stable
    deps = client(fake.address).deployments("quicklook-web")
    assert deps[-1].status == "successful" and deps[-1].groups[0].promoted


def test_unhealthy_service_canary_is_auto_reverted_and_reported(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    run(controller(fake.address, tmp_path, "quicklook", clock))
    bad = release("quicklook", "1.1.0")
    fake.image_health[f"{bad.image}@{bad.digest}"] = False
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    status = run(controller(fake.address, tmp_path, "quicklook", clock))
    assert status.phase == "RolledBack" and status.exit_code() == 1
    completed = next(c for c in status.conditions if c.type == "Completed")
    assert completed.reason == "AutoReverted" and "rolling back to job version 0" in completed.message
    current = client(fake.address).job("quicklook-web").value
    assert current is not None and current.meta_value("version") == "1.0.0"


def test_node_lost_mid_rollout_is_not_a_failure(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    run(controller(fake.address, tmp_path, "quicklook", clock))
    fake.default_health = None  # canaries wait for the test to report health
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    ctl = controller(fake.address, tmp_path, "quicklook", clock)
    assert run(ctl).phase == "Progressing"
    canary = next(a for a in fake.allocs_of("quicklook-web") if (a["DeploymentStatus"] or {}).get("Canary"))
    fake.lose_node(canary["NodeID"])
    assert run(ctl).phase == "Progressing"
    replacement = next(a for a in fake.allocs_of("quicklook-web") if (a["DeploymentStatus"] or {}).get("Canary"))
    assert replacement["PreviousAllocation"] == canary["ID"]
    fake.default_health = True
    fake.set_alloc_health(replacement["ID"], True)
    assert run(ctl).phase == "Succeeded"


def test_no_gpu_capacity_ends_in_our_own_timeout(tmp_path: Path) -> None:
    clock = Clock()
    nodes = [Node("n-gpu", "gpu-1", "gpu", 2)]  # room for the two stable allocations, not a canary
    with FakeNomad(nodes=nodes) as fake:
        deploy(fake, tmp_path, SERVICE, "1.0.0", clock, gpu=1)
        ctl = controller(fake.address, tmp_path, "quicklook", clock)
        assert run(ctl).phase == "Succeeded"
        deploy(fake, tmp_path, SERVICE, "1.1.0", clock, gpu=1)
        assert run(ctl).phase == "Progressing"  # canary cannot be placed: the only GPU is busy
        dep = client(fake.address).deployments("quicklook-web")[-1]
        assert dep.status == "running" and dep.groups[0].require_progress_by is None  # Nomad would wait forever
        clock.advance(timedelta(minutes=16).total_seconds())
        status = run(ctl)
        assert status.phase == "RolledBack" and status.failure_reason == "NoCapacity"


def test_rollback_of_a_promoted_service_promotes_the_reverts_own_canary(fake: FakeNomad, tmp_path: Path) -> None:
    clock = Clock()
    deploy(fake, tmp_path, SERVICE, "1.0.0", clock)
    ctl = controller(fake.address, tmp_path, "quicklook", clock)
    run(ctl)
    deploy(fake, tmp_path, SERVICE, "1.1.0", clock)
    assert run(ctl).phase == "Succeeded"
    store = SqliteReleaseStore(tmp_path / "release-state.sqlite")
    operations.request(store, ENV, "quicklook", "rollback", now=clock(), reason="QC drift")
    status = run(ctl)  # the revert is a destructive change: Nomad canaries it again and waits for promotion
    assert status.phase == "RolledBack" and status.exit_code() == 1
    revert = client(fake.address).deployments("quicklook-web")[-1]
    assert revert.status == "successful" and revert.groups[0].desired_canaries == 1 and revert.groups[0].promoted
    current = client(fake.address).job("quicklook-web").value
    assert current is not None and current.meta_value("version") == "1.0.0" and current.stable
