"""A recall is announced to webhook receivers, even when its yank failed (the report says what happened)."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.errors import DeliveryError
from rollout.executions.ledger import Ledger
from rollout.executions.recall import Recall
from tests.support.executions_builders import RecordingRollback
from tests.support.notify_receiver import notify_receiver

SECRET = "recall-hook-secret"


class RefusingYanker:
    """A registry that will not take the yank record."""

    def yank(self, biomarker: str, version: str, reason: str, actor: str) -> str:
        raise DeliveryError("registry refused the yank record")


def test_a_recall_is_announced_with_its_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    recall = Recall(Ledger(url), AuditLog(url), RefusingYanker(), RecordingRollback())
    with notify_receiver(SECRET) as receiver:
        monkeypatch.setenv("DELIVERY_NOTIFY_URLS", receiver.url)
        monkeypatch.setenv("DELIVERY_NOTIFY_SECRET", SECRET)
        monkeypatch.delenv("DELIVERY_NOTIFY_SECRET_ENV", raising=False)
        monkeypatch.delenv("DELIVERY_NOTIFIERS", raising=False)
        recall.recall("alpha", "2.0.0", "left-lung volume off by a third")
    assert receiver.events() == ["recall"]
    body = receiver.received[0].body
    assert body["subject"] == "alpha@2.0.0" and body["reason"] == "left-lung volume off by a third"
    assert body["details"]["problems"] == ["yank failed: registry refused the yank record"]
