"""One audit trail, readable: `rollout history` and `delivery audit` read the append-only audit log, so a later
rollout drops nothing (deploys, promotions, rollbacks, gate verdicts, freezes and their expiry), with filters."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from delivery.cli import main as delivery
from rollout.cli import main as rollout
from rollout.compose import compose
from rollout.controller import operations
from tests.support.nomad_world import BATCH, ENV, Clock, Verifier, manifest, release


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "DELIVERY_DATABASE_URL", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_ACTOR", "rm-tester")
    monkeypatch.setenv("DELIVERY_ENV", ENV)
    return tmp_path / "home"


def _rollout(home: Path, version: str, clock: Clock) -> None:
    """Deploy and drive a batch rollout as `rollout deploy` and the controller service do: the configuration's
    store, scheduler, ledger and audit log (only the verifier accepts the test's unsigned releases)."""
    m, c = manifest(BATCH), compose()
    operations.start_rollout(store=c.store, scheduler=c.scheduler, manifest=m, variant="fast",
                             release=release(m.name, version), environment=ENV, now=clock(), audit=c.audit(),
                             actor="deployer")
    c.controller_for(ENV, m.name, verifier=Verifier(), clock=clock).run()


def _json(capsys: pytest.CaptureFixture[str], main: Any, *argv: str) -> list[dict[str, Any]]:
    assert main([*argv, "--json"]) == 0
    out: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return out


def _rolled_out_three_times(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    _rollout(home, "1.0.0", clock)
    clock.advance(3600)
    _rollout(home, "1.1.0", clock)  # waits at its analysis step: the gates have no executions to judge
    assert rollout(["rollback", "alpha", "--reason", "QC drift"]) == 1
    assert rollout(["freeze", "alpha", "--reason", "audit week", "--owner", "qa", "--hours", "0.0002"]) == 0
    time.sleep(1.0)  # the freeze expires (0.72 s): nobody writes that, the trail derives it from the freeze
    clock.advance(3600)
    _rollout(home, "1.2.0", clock)  # the rollout status now holds only this rollout
    capsys.readouterr()


def test_history_keeps_every_rollout_gate_and_freeze_after_the_next_deploy(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _rolled_out_three_times(home, capsys)
    events = _json(capsys, rollout, "history", "alpha")
    deploys = [e["details"]["candidate"] for e in events if e["action"] == "rollout-deploy"]
    assert deploys == ["1.0.0", "1.1.0", "1.2.0"]
    assert all(e["actor"] == "deployer" for e in events if e["action"] == "rollout-deploy")
    rollback = next(e for e in events if e["action"] == "rollout-rollback")
    assert (rollback["actor"], rollback["reason"]) == ("rm-tester", "QC drift")
    gates = [e for e in events if e["action"] == "gate"]
    assert gates and {"gate", "verdict", "measured", "threshold"} <= set(gates[0]["details"])
    assert [e["reason"] for e in events if e["action"] == "rollout-aborted"] == ["QC drift"]
    freeze = [(e["action"], e["actor"]) for e in events if e["action"].startswith("freeze")]
    assert freeze == [("freeze", "rm-tester"), ("freeze-expired", "clock")]


def test_history_and_delivery_audit_filter_by_actor_time_and_environment(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _rolled_out_three_times(home, capsys)
    mine = _json(capsys, rollout, "history", "alpha", "--actor", "rm-tester")
    assert [e["action"] for e in mine] == ["rollout-rollback", "freeze"]
    early = _json(capsys, rollout, "history", "alpha", "--until", "2026-03-02T10:30")
    assert [e["details"].get("candidate") for e in early if e["action"] == "rollout-deploy"] == ["1.0.0"]
    assert _json(capsys, rollout, "history", "alpha", "--env", "elsewhere") == []
    assert len(_json(capsys, rollout, "history", "alpha", "--env", "elsewhere", "--all")) > 3
    audited = _json(capsys, delivery, "audit", "--biomarker", "alpha", "--env", ENV)
    assert audited == _json(capsys, rollout, "history", "alpha")
    assert _json(capsys, delivery, "audit", "--biomarker", "beta") == []


def test_a_bad_time_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        delivery(["audit", "--since", "last tuesday"])
    assert exited.value.code == 2 and "--since" in capsys.readouterr().err
