"""The audit log is append-only, ordered, filterable, and never stores a secret."""

from __future__ import annotations

from pathlib import Path

from delivery.audit import AuditEvent, AuditLog
from delivery.secrets import Secret


def test_events_come_back_in_order_and_scrubbed(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    token = Secret("tok-" + "9" * 20)
    log.append(AuditEvent("promote", "emphysema@1.0.0", reason="trial go-live", actor="rm"))
    log.append(AuditEvent("force", "emphysema@1.0.1", reason=f"used {token.reveal()}", actor="rm",
                          details={"header": f"Bearer {token.reveal()}"}))
    events = AuditLog(f"sqlite:///{tmp_path / 'ledger.sqlite'}").events(subject_prefix="emphysema")
    assert [e.action for e in events] == ["promote", "force"]
    assert token.reveal() not in events[1].reason
    assert token.reveal() not in events[1].details["header"]
    assert [e.action for e in log.events(action="force")] == ["force"]
