"""`delivery gc` learns from the ledger which digests ran recently, through its entry point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from delivery.commands.gc import recent_executions
from rollout.executions.ledger import Ledger
from rollout.executions.model import ExecutionRecord

DIGEST = "sha256:" + "cd" * 32


def _record(created_at: datetime, digest: str) -> ExecutionRecord:
    return ExecutionRecord(
        id=f"ex-{created_at.timestamp():.0f}", created_at=created_at, actor="client", biomarker="alpha",
        variant="fast", environment="local", input_identity="sha256:" + "0" * 64, pin_requested="alpha@^1",
        version="1.1.0-rc.1", digest=digest, reference=f"r/alpha:1.1.0-rc.1@{digest}", resolution_rule="range",
        route="stable", backend="docker", output_path="/out", input_path="/in",
    )


def test_gc_sees_digests_the_ledger_recorded_within_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    monkeypatch.setenv("DELIVERY_DATABASE_URL", url)
    now = datetime.now(UTC)
    Ledger(url).record(_record(now - timedelta(days=2), DIGEST))
    Ledger(url).record(_record(now - timedelta(days=90), "sha256:" + "ef" * 32))
    assert recent_executions().digests_used_since(now - timedelta(days=30)) == {DIGEST}
