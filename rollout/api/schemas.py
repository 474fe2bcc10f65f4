"""Request and response bodies of the API: validated once at the edge, strict (unknown fields are refused)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Versions, channels, ranges (`^1.4`, `>=1.2 <2 || 3.x`) and digests: printable ASCII, no quotes or slashes.
PIN = r"^[A-Za-z0-9@^~<>=|*.+:_ -]{1,200}$"
INPUT = r"^[A-Za-z0-9._-][A-Za-z0-9._/ -]{0,1023}$"
LABEL = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SERIES_UID = r"^[0-9][0-9.]{0,63}$"
IDEMPOTENCY_KEY = r"^[A-Za-z0-9._:-]{1,128}$"
ApiStatus = Literal["queued", "running", "succeeded", "failed"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SubmitRequest(_Body):
    """One study to run on a pinned build."""

    biomarker: str = Field(pattern=NAME, description="biomarker name, e.g. emphysema")
    pin: str = Field(pattern=PIN, description="version, range, channel or digest: 1.4.2, ^1.4, stable, sha256:…")
    input: str = Field(pattern=INPUT, description="study file or folder, relative to the service's input root")
    variant: str | None = Field(None, pattern=NAME, description="variant (default: the manifest's first)")
    cohort: str | None = Field(None, pattern=LABEL, description="trial cohort; its version freeze wins")
    environment: str | None = Field(None, pattern=NAME, description="environment (default: the service's first)")
    series_uid: str | None = Field(None, pattern=SERIES_UID, description="DICOM SeriesInstanceUID of the study")
    allow_yanked: bool = Field(False, description="run a yanked (recalled) version anyway: developers only, with "
                                                  "a reason; recorded in the ledger and provenance.json")
    reason: str | None = Field(None, min_length=1, max_length=500, pattern=r"\S",
                               description="why a yanked version must run (with allow_yanked)")


class ResolveRequest(_Body):
    """A pin to resolve without running anything."""

    biomarker: str = Field(pattern=NAME)
    pin: str = Field(pattern=PIN)
    environment: str | None = Field(None, pattern=NAME)
    cohort: str | None = Field(None, pattern=LABEL)


class FreezeRequest(_Body):
    """An ad-hoc freeze of one biomarker in one environment."""

    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")
    hours: float | None = Field(None, gt=0, le=24 * 90, description="expires after this many hours (default never)")
    version: str | None = Field(None, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?$",
                                description="version pin (ASCII digits)")
    cohort: str | None = Field(None, pattern=LABEL, description="trial cohort: pins only that cohort")
    environment: str | None = Field(None, pattern=NAME)


class RolloutRequest(_Body):
    """Why a human acts on a rollout."""

    reason: str = Field("", max_length=500)
    environment: str | None = Field(None, pattern=NAME)


class Problem(BaseModel):
    """What went wrong, where, and what to do next."""

    error: str
    hint: str | None = None
    field: str | None = None


class ExecutionView(BaseModel):
    """An execution as a client sees it: pin, exact build, route, status and timings (no server paths)."""

    id: str
    status: ApiStatus
    ledger_status: str
    biomarker: str
    variant: str
    environment: str
    pin: str
    version: str
    digest: str
    reference: str
    rule: str
    route: str
    backend: str
    cohort: str | None
    input: str | None = Field(description="the input reference as submitted (root-relative); null outside the root")
    input_identity: str
    paired_execution_id: str | None
    created_at: datetime
    dispatched_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    exit_code: int | None
    reason: str | None
    links: dict[str, str]


class ExecutionList(BaseModel):
    executions: list[ExecutionView]


class ResultsView(BaseModel):
    """The report a biomarker wrote and the provenance tying it to the exact build."""

    execution_id: str
    status: ApiStatus
    report: dict[str, Any] | None
    provenance: dict[str, Any]
    log_tail: list[str]


class Resolution(BaseModel):
    reference: str
    version: str
    digest: str
    rule: str
    attestation_digest: str | None
    warnings: list[str]


class BiomarkerSummary(BaseModel):
    name: str
    description: str
    image: str
    variants: list[str]
    channels: dict[str, dict[str, str]] = Field(description="environment -> channel -> version")


class BiomarkerList(BaseModel):
    biomarkers: list[BiomarkerSummary]


class YankView(BaseModel):
    reason: str
    actor: str
    at: datetime


class FreezeView(BaseModel):
    id: str
    environment: str
    reason: str
    owner: str
    created_at: datetime
    expires_at: datetime | None
    version: str | None
    cohort: str | None
    recurring: str | None
    active: bool


class VersionView(BaseModel):
    version: str
    digest: str
    channels: list[str] = Field(description="ENV/CHANNEL pins holding this version")
    yanked: YankView | None
    frozen_by: list[str] = Field(description="ids of freezes pinning this version")


class VersionList(BaseModel):
    biomarker: str
    image: str
    versions: list[VersionView]
    freezes: list[FreezeView]


class RolloutView(BaseModel):
    biomarker: str
    environment: str
    rollout: dict[str, Any] | None


class RecallView(BaseModel):
    subject: str
    reason: str
    actor: str
    at: datetime
    details: dict[str, Any]


class RecallList(BaseModel):
    recalls: list[RecallView]


class AuditEntry(BaseModel):
    """One audited action: what, on which biomarker in which environment, who, when and why."""

    at: datetime
    action: str
    subject: str
    environment: str | None
    biomarker: str
    actor: str
    reason: str
    details: dict[str, Any]


class AuditList(BaseModel):
    events: list[AuditEntry]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
