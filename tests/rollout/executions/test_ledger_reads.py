"""The latest executions are read newest first with the limit in SQL, by the API, the status page and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollout.cli import main
from rollout.executions.ledger import Ledger
from rollout.executions.model import ExecutionRecord

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _record(n: int, environment: str = "local") -> ExecutionRecord:
    digest = "sha256:" + "cd" * 32
    return ExecutionRecord(
        id=f"ex-{n:03d}", created_at=START + timedelta(minutes=n), actor="client", biomarker="alpha",
        variant="fast", environment=environment, input_identity="sha256:" + "0" * 64, pin_requested="alpha@1.0.0",
        version="1.0.0", digest=digest, reference=f"r/alpha:1.0.0@{digest}", resolution_rule="exact",
        route="stable", backend="docker", output_path="/out", input_path="/in")


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("DELIVERY_DATABASE_URL", url)
    found = Ledger(url)
    for n in (7, 3, 12, 1, 9, 5):  # recorded out of order: the order comes from created_at, not insertion
        found.record(_record(n, "trial" if n == 9 else "local"))
    return found


def test_newest_first_returns_the_latest_rows_not_the_oldest(ledger: Ledger) -> None:
    assert [e.id for e in ledger.executions(limit=3, newest_first=True)] == ["ex-012", "ex-009", "ex-007"]
    assert [e.id for e in ledger.executions(limit=3)] == ["ex-001", "ex-003", "ex-005"]
    local = ledger.executions(limit=2, newest_first=True, environment="local")
    assert [e.id for e in local] == ["ex-012", "ex-007"]
    since = ledger.executions(since=START + timedelta(minutes=6), newest_first=True)
    assert [e.id for e in since] == ["ex-012", "ex-009", "ex-007"]


def test_executions_list_shows_the_latest_by_default(ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["executions", "list", "--limit", "2", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["ex-012", "ex-009"]
    assert main(["executions", "list", "--limit", "2", "--oldest-first", "--json"]) == 0
    assert [e["id"] for e in json.loads(capsys.readouterr().out)] == ["ex-001", "ex-003"]
