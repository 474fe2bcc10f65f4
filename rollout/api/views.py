"""Domain values (executions, registry views, release state) turned into the API's response bodies."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from delivery.release.resolve import RegistryView
from delivery.release.state import Freeze, ReleaseState
from rollout import freeze as freezes
from rollout.api.schemas import ApiStatus, ExecutionView, FreezeView, ResultsView, VersionView, YankView
from rollout.executions.model import Execution
from rollout.executions.sandbox import PROVENANCE
from rollout.executions.submit import provenance

STATUS: dict[str, ApiStatus] = {"submitted": "queued", "dispatched": "running", "lost": "running",
                                "succeeded": "succeeded", "failed": "failed", "timed_out": "failed",
                                "dispatch_failed": "failed"}
TERMINAL = {"succeeded", "failed", "timed_out", "dispatch_failed"}


def api_status(execution: Execution) -> ApiStatus:
    """queued → running → succeeded | failed, from the ledger's events."""
    if execution.status == "lost" and execution.finished:  # the container vanished: the result is unknown
        return "failed"
    return STATUS.get(execution.status, "running")


def _event_time(execution: Execution, kinds: set[str]) -> datetime | None:
    return next((e.at for e in execution.events if e.kind in kinds), None)


def input_reference(execution: Execution, input_root: Path) -> str | None:
    """The root-relative reference the client submitted (None for studies submitted outside the API's root)."""
    try:
        return Path(execution.record.input_path).relative_to(input_root).as_posix()
    except ValueError:
        return None


def execution_view(execution: Execution, input_root: Path) -> ExecutionView:
    r = execution.record
    terminal = next((e for e in reversed(execution.events) if e.kind in TERMINAL or e.details.get("final")), None)
    base = f"/v1/executions/{r.id}"
    return ExecutionView(
        id=r.id, status=api_status(execution), ledger_status=execution.status, biomarker=r.biomarker,
        variant=r.variant, environment=r.environment, pin=r.pin_requested, version=r.version, digest=r.digest,
        reference=r.reference, rule=r.resolution_rule, route=r.route, backend=r.backend, cohort=r.cohort,
        input=input_reference(execution, input_root), input_identity=r.input_identity,
        paired_execution_id=r.paired_execution_id, created_at=r.created_at,
        dispatched_at=_event_time(execution, {"dispatched"}), finished_at=terminal.at if terminal else None,
        duration_s=execution.latest("duration_s"), exit_code=execution.latest("exit_code"),
        reason=(terminal.details.get("reason") or None) if terminal else None,
        links={"self": base, "results": f"{base}/results"})


def results_view(execution: Execution) -> ResultsView:
    """report.json (when the run succeeded) and provenance.json (written next to the outputs, else rebuilt)."""
    out = Path(execution.record.output_path)
    report = _json_file(out / "report.json") if execution.succeeded else None
    recorded = _json_file(out / PROVENANCE)
    return ResultsView(execution_id=execution.id, status=api_status(execution), report=report,
                       provenance=recorded if recorded is not None else provenance(execution),
                       log_tail=[] if execution.succeeded else list(execution.latest("log_tail") or []))


def _json_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def freeze_view(item: Freeze, environment: str, now: datetime) -> FreezeView:
    recurring = f"{item.cron} for {item.duration_s}s ({item.timezone or 'UTC'})" if item.cron else None
    return FreezeView(id=item.id, environment=environment, reason=item.reason, owner=item.owner,
                      created_at=item.created_at, expires_at=item.expires_at, version=item.version,
                      cohort=item.cohort, recurring=recurring, active=freezes.is_active(item, now))


def version_views(view: RegistryView, states: list[ReleaseState], now: datetime) -> list[VersionView]:
    """Every version tag, newest first, with the channels holding it, its yank record and freezes pinning it."""
    out = []
    for _, tag in sorted(view.versions().items(), key=lambda kv: kv[0], reverse=True):
        name = tag.replace("_", "+")
        yank = view.yanks.get(tag)
        channels = [f"{s.environment}/{channel}" for s in states for channel, pin in sorted(s.channels.items())
                    if pin.version == name]
        frozen = [f.id for s in states for f in s.freezes if f.version == name and freezes.is_active(f, now)]
        out.append(VersionView(version=name, digest=view.tags[tag], channels=channels, frozen_by=frozen,
                               yanked=YankView(reason=yank.reason, actor=yank.actor, at=yank.at) if yank else None))
    return out
