"""Value types of executions: what to run (JobDescription), what was asked (request), what happened (Execution)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from delivery.audit import current_actor
from delivery.errors import DeliveryError
from delivery.release.yank import YankRecord

Route = Literal["stable", "candidate", "shadow"]
Status = Literal["submitted", "dispatched", "succeeded", "failed", "timed_out", "lost", "dispatch_failed"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "timed_out", "dispatch_failed"})
REFERENCE = re.compile(r"^(?P<repository>[^@\s]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?@(?P<digest>sha256:[0-9a-f]{64})$")


class ExecutionError(DeliveryError):
    """An execution could not be resolved, dispatched or completed."""


class ExecutionNotFound(ExecutionError):
    """No execution with that id is in the ledger."""


def split_reference(reference: str) -> tuple[str, str]:
    """`REGISTRY/IMAGE:VERSION@sha256:…` → (`REGISTRY/IMAGE`, `sha256:…`)."""
    match = REFERENCE.match(reference)
    if match is None:
        raise ExecutionError(f"{reference!r} is not a pinned image reference (REGISTRY/IMAGE:VERSION@sha256:…)")
    return match["repository"], match["digest"]


@dataclass(frozen=True)
class JobDescription:
    """Everything the reference architecture asks of a job: image, argv, sandbox, CPU, memory, GPU, type."""

    biomarker: str
    variant: str
    image: str
    argv: tuple[str, ...]
    input_path: Path
    output_path: Path
    cpu_mhz: int
    memory_mb: int
    gpu: int = 0
    job_type: Literal["batch", "service"] = "batch"
    timeout_s: int = 1800
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        split_reference(self.image)  # a job only ever runs a digest-pinned image

    @property
    def digest(self) -> str:
        """The image digest this job runs, byte for byte."""
        return split_reference(self.image)[1]

    @property
    def repository(self) -> str:
        """`REGISTRY/IMAGE` without tag or digest."""
        return split_reference(self.image)[0]


@dataclass(frozen=True)
class ExecutionRequest:
    """What a client asks for: a biomarker pin, a study, where outputs go."""

    biomarker: str
    spec: str
    input_path: Path
    output_path: Path
    variant: str | None = None
    environment: str = "local"
    cohort: str | None = None
    series_uid: str | None = None
    request_id: str | None = None
    actor: str = field(default_factory=current_actor)
    yank_override: str | None = None  # why a yanked (recalled) version may run anyway; None refuses one


@dataclass(frozen=True)
class OutputFile:
    """One file an execution wrote, by path relative to its output folder."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Resolved:
    """A pin resolved to an exact build."""

    reference: str
    version: str
    digest: str
    rule: str
    attestation_digest: str | None = None
    warnings: tuple[str, ...] = ()
    yanked: YankRecord | None = None


@dataclass(frozen=True)
class ExecutionRecord:
    """The facts fixed when an execution is created; never changed afterwards."""

    id: str
    created_at: datetime
    actor: str
    biomarker: str
    variant: str
    environment: str
    input_identity: str
    pin_requested: str
    version: str
    digest: str
    reference: str
    resolution_rule: str
    route: Route
    backend: str
    output_path: str
    input_path: str
    attestation_digest: str | None = None
    cohort: str | None = None
    paired_execution_id: str | None = None
    rollout_id: str | None = None
    workflow: str | None = None
    workflow_step: str | None = None


@dataclass(frozen=True)
class ExecutionEvent:
    """One appended status fact."""

    at: datetime
    kind: str
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Execution:
    """An execution as the ledger knows it now: its record plus every event, folded."""

    record: ExecutionRecord
    events: tuple[ExecutionEvent, ...] = ()

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def status(self) -> str:
        """The latest status event's kind (`submitted` when nothing happened yet)."""
        kinds = [e.kind for e in self.events if e.kind in _STATUS_EVENTS]
        return kinds[-1] if kinds else "submitted"

    @property
    def finished(self) -> bool:
        """An outcome is recorded: a terminal status, or a loss recorded as final (a vanished local container)."""
        last = next((e for e in reversed(self.events) if e.kind in _STATUS_EVENTS), None)
        if last is None or last.kind in TERMINAL:
            return last is not None
        return last.kind == "lost" and bool(last.details.get("final"))

    def latest(self, key: str) -> Any:
        """The most recent value of `key` in any event's details."""
        for event in reversed(self.events):
            if key in event.details:
                return event.details[key]
        return None

    @property
    def outputs(self) -> tuple[OutputFile, ...]:
        return tuple(OutputFile(**o) for o in self.latest("outputs") or ())

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready document: record fields, folded state, and the event history."""
        doc: dict[str, Any] = {k: getattr(self.record, k) for k in self.record.__dataclass_fields__}
        doc["created_at"] = self.record.created_at.isoformat()
        doc.update(status=self.status, backend_job_id=self.latest("backend_job_id"), node=self.latest("node"),
                   gpu=self.latest("gpu"), exit_code=self.latest("exit_code"), duration_s=self.latest("duration_s"),
                   outputs=[o.__dict__ for o in self.outputs])
        doc["events"] = [{"at": e.at.isoformat(), "kind": e.kind, **e.details} for e in self.events]
        return doc


_STATUS_EVENTS = frozenset({"dispatched", "succeeded", "failed", "timed_out", "lost", "dispatch_failed"})
