"""What the rollout controller writes to the append-only audit log: every history line and gate verdict it adds.

The rollout status keeps only the current rollout (the next deploy replaces it), so each change the controller
writes is also appended to the audit log, where nothing is ever dropped.
"""

from __future__ import annotations

from delivery.audit import AuditEvent, AuditLog
from rollout.controller.model import RolloutStatus

CONTROLLER = "rollout-controller"


def record_transition(audit: AuditLog | None, before: RolloutStatus | None, after: RolloutStatus) -> None:
    """Append what `after` adds to `before`: new history lines (`rollout-ACTION`) and new gate verdicts (`gate`)."""
    if audit is None:
        return
    for event in _added(before, after):
        audit.append(event)


def _added(before: RolloutStatus | None, after: RolloutStatus) -> list[AuditEvent]:
    subject = f"{after.environment}/{after.biomarker}"
    same = before is not None and before.id == after.id
    old_history = len(before.history) if same and before else 0
    seen = before.gate_results if same and before else ()  # the status keeps only the latest verdicts: compare
    about = {"rollout": after.id, "candidate": after.candidate.version, "phase": after.phase,
             "stable": after.stable.version if after.stable else None}
    out = [AuditEvent(f"rollout-{h.action}", subject, h.message, h.actor, h.at, dict(about))
           for h in after.history[old_history:]]
    out += [AuditEvent("gate", subject, g.message, CONTROLLER, g.at,
                       {**about, "gate": g.name, "verdict": g.verdict, "step": g.step, "measured": g.measured,
                        "threshold": g.threshold})
            for g in after.gate_results if g not in seen]
    return out
