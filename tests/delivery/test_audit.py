"""The audit log is append-only, ordered, filterable, and never stores a secret."""

from __future__ import annotations

from pathlib import Path

from delivery.audit import AuditEvent, AuditLog, AuditQuery
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


def test_the_trail_filters_by_biomarker_environment_and_actor_and_a_recall_holds_everywhere(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    log.append(AuditEvent("promote", "hospital-a/emphysema:stable", "go-live", actor="rm"))
    log.append(AuditEvent("yank", "hospital-b/emphysema:1.0.0", "wrong mask", actor="qa"))
    log.append(AuditEvent("recall", "emphysema@1.0.0", "wrong mask", actor="qa"))
    log.append(AuditEvent("promote", "hospital-a/airways:stable", "go-live", actor="rm"))
    in_a = log.read(AuditQuery(biomarker="emphysema", environment="hospital-a"))
    assert [(e.action, e.environment) for e in in_a] == [("promote", "hospital-a"), ("recall", None)]
    assert [e.biomarker for e in log.read(AuditQuery(actor="rm"))] == ["emphysema", "airways"]
