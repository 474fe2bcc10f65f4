"""Recall of a withdrawn version: yank it, roll it back where it runs, list every result it produced, re-run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from delivery import notify
from delivery.audit import AuditEvent, AuditLog, current_actor
from delivery.errors import DeliveryError
from delivery.notify import Notification
from delivery.registry import RegistryClient
from delivery.release.yank import yank_version
from rollout.executions.ledger import Ledger
from rollout.executions.model import Execution, ExecutionRequest
from rollout.executions.rollback import RollbackIncomplete
from rollout.executions.submit import Submitter


class Yanker(Protocol):
    def yank(self, biomarker: str, version: str, reason: str, actor: str) -> str:
        """Yank the version; returns what was done, for the report."""
        ...


class Rollback(Protocol):
    def rollback(self, biomarker: str, version: str, reason: str) -> list[str]:
        """Stop `version` running wherever it does; returns one line per environment acted on."""
        ...


class RegistryYanker:
    """The release issue's yank: an immutable yank record beside the image in the registry."""

    def __init__(self, registry: RegistryClient, image_repository: str) -> None:
        self._registry, self._repository = registry, image_repository

    def yank(self, biomarker: str, version: str, reason: str, actor: str) -> str:
        record, new = yank_version(self._registry, self._repository, version, reason, actor, datetime.now(UTC))
        state = "yanked" if new else "was already yanked"
        return f"{biomarker} {version} ({record.digest}) {state} in {self._registry.host}/{self._repository}"


@dataclass(frozen=True)
class RecallReport:
    """What a quality manager files: the version, why, what was done, and every execution it produced."""

    biomarker: str
    version: str
    reason: str
    actor: str
    at: datetime
    actions: tuple[str, ...]
    problems: tuple[str, ...]
    executions: tuple[Execution, ...]
    resubmitted: tuple[dict[str, Any], ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {"biomarker": self.biomarker, "version": self.version, "reason": self.reason, "actor": self.actor,
                "at": self.at.isoformat(), "actions": list(self.actions), "problems": list(self.problems),
                "executions": [_affected(e) for e in self.executions], "resubmitted": list(self.resubmitted)}

    def text(self) -> str:
        """The same report as plain text."""
        lines = [f"RECALL of {self.biomarker} {self.version}", f"reason: {self.reason}",
                 f"by {self.actor} at {self.at:%Y-%m-%d %H:%M:%S}Z", "", "actions:"]
        lines += [f"  - {a}" for a in self.actions] or ["  (none)"]
        lines += [f"  ! {p}" for p in self.problems]
        lines += ["", f"executions produced by {self.version}: {len(self.executions)}"]
        for e in self.executions:
            a = _affected(e)
            delivered = "delivered to client" if a["delivered"] else "shadow run, not delivered"
            lines.append(f"  {e.id}  {a['created_at']}  {e.record.environment}  {a['status']}  {delivered}")
            lines.append(f"      input {e.record.input_identity}  output {e.record.output_path}")
            lines += [f"      {o.sha256}  {o.path}" for o in e.outputs]
        for r in self.resubmitted:
            lines.append(f"  re-run of {r['original']}: {r.get('execution') or r.get('error')}")
        return "\n".join(lines) + "\n"


def _affected(execution: Execution) -> dict[str, Any]:
    r = execution.record
    return {"id": r.id, "created_at": r.created_at.isoformat(), "environment": r.environment, "route": r.route,
            "delivered": r.route != "shadow", "cohort": r.cohort, "input_identity": r.input_identity,
            "digest": r.digest, "status": execution.status, "output_path": r.output_path,
            "outputs": [o.__dict__ for o in execution.outputs]}


@dataclass(frozen=True)
class Recall:
    ledger: Ledger
    audit: AuditLog
    yanker: Yanker
    rollback: Rollback

    def recall(self, biomarker: str, version: str, reason: str, *, resubmit_with: str | None = None,
               submitter: Submitter | None = None) -> RecallReport:
        """Yank, roll back, list; each step runs even if an earlier one failed, and failures are reported."""
        actor, actions, problems = current_actor(), list[str](), list[str]()
        try:
            actions.append(self.yanker.yank(biomarker, version, reason, actor))
        except DeliveryError as e:
            problems.append(f"yank failed: {e.message}")
        try:
            actions += self.rollback.rollback(biomarker, version, reason)
        except RollbackIncomplete as e:
            actions += e.done
            problems.append(f"rollback incomplete: {e.message}")
        except DeliveryError as e:
            problems.append(f"rollback failed: {e.message}")
        affected = tuple(self.ledger.executions(biomarker=biomarker, version=version))
        rerun = _resubmit(affected, resubmit_with, submitter) if resubmit_with and submitter else ()
        report = RecallReport(biomarker, version, reason, actor, datetime.now(UTC), tuple(actions),
                              tuple(problems), affected, rerun)
        recalled = AuditEvent("recall", f"{biomarker}@{version}", reason, actor, details={
            "executions": [e.id for e in affected], "actions": actions, "problems": problems,
            "resubmit_with": resubmit_with})
        self.audit.append(recalled)
        notify.send(Notification.of(recalled))
        return report


def _resubmit(affected: tuple[Execution, ...], version: str, submitter: Submitter) -> tuple[dict[str, Any], ...]:
    """Re-run every delivered study on the fixed version, outputs beside the recalled ones."""
    out: list[dict[str, Any]] = []
    for e in (x for x in affected if x.record.route != "shadow" and x.record.workflow is None):
        r = e.record
        request = ExecutionRequest(biomarker=r.biomarker, spec=version, input_path=Path(r.input_path),
                                   output_path=Path(f"{r.output_path}.resubmit-{version}"), variant=r.variant,
                                   environment=r.environment, cohort=r.cohort, series_uid=_series_uid(r.input_identity),
                                   request_id=f"recall:{r.id}:{version}")
        try:
            done = submitter.submit(request)
            out.append({"original": r.id, "execution": done.id, "version": done.record.version,
                        "status": done.status, "output_path": done.record.output_path})
        except DeliveryError as err:
            out.append({"original": r.id, "error": err.message})
    return tuple(out)


def _series_uid(identity: str) -> str | None:
    return identity.removeprefix("dicom-series:") if identity.startswith("dicom-series:") else None
