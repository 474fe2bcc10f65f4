"""Submitting a study: resolve the pin, choose the track, dispatch, record every fact, write provenance.json."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delivery.errors import DeliveryError
from delivery.manifest.model import Biomarker, duration_seconds
from delivery.release.state import ReleaseState, ReleaseStore
from rollout.executions.backend import Backend, Outcome
from rollout.executions.equivalence import Comparison, compare, flatten
from rollout.executions.ledger import Ledger, StoredComparison
from rollout.executions.manifests import ManifestSource, pick_variant
from rollout.executions.model import (
    Execution,
    ExecutionError,
    ExecutionRecord,
    ExecutionRequest,
    JobDescription,
    Resolved,
    Route,
)
from rollout.executions.pins import (
    PinResolver,
    binding_freeze,
    environment_frozen,
    frozen_spec,
    refuse_yanked,
    yank_override,
)
from rollout.executions.routing import choose_track, routing_of
from rollout.executions.sandbox import (
    COMPARISON,
    EXECUTION_LOG,
    PROVENANCE,
    hash_outputs,
    input_identity,
    read_report,
    write_json_atomic,
)

NAMESPACE = uuid.UUID("6f1c2b1e-8d4a-4c55-9a57-0d1b5e2c9f10")  # execution ids derived from client request ids
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Planned:
    """One execution about to run: its immutable record and the job it runs."""

    record: ExecutionRecord
    job: JobDescription
    yank_override: Mapping[str, str] | None = None  # a yanked version run anyway: who, why (ledger, provenance)


@dataclass(frozen=True)
class Submission:
    """What a submit produced: the execution whose result is returned, and the paired shadow run if any."""

    execution: Execution
    shadow: Execution | None = None
    comparison: Comparison | None = None


def execution_id(request_id: str | None) -> str:
    """A fresh id, or one derived from the client's request id so a retried submit is the same execution."""
    return str(uuid.uuid5(NAMESPACE, request_id)) if request_id else str(uuid.uuid4())


class Submitter:
    """The Python API of `rollout submit`."""

    def __init__(self, *, ledger: Ledger, store: ReleaseStore, resolver: PinResolver, manifests: ManifestSource,
                 backend: Backend, shadow_root: Path, paired: bool = True, clock: Clock | None = None) -> None:
        self.ledger, self.backend = ledger, backend
        self._store, self._resolver, self._manifests = store, resolver, manifests
        self._shadow_root, self._paired = shadow_root, paired
        self._clock = clock or (lambda: datetime.now(UTC))

    def manifest(self, biomarker: str) -> Biomarker:
        """The manifest submissions of `biomarker` run by."""
        return self._manifests.manifest(biomarker)

    def submit(self, request: ExecutionRequest, *, wait: bool = True) -> Execution:
        """Run one study; returns the execution whose result the client gets."""
        return self.run(request, wait=wait).execution

    def run(self, request: ExecutionRequest, *, wait: bool = True,
            workflow: tuple[str, str] | None = None) -> Submission:
        """Plan (or find the already-recorded plan of a retried request), dispatch, wait, record, compare."""
        manifest = self._manifests.manifest(request.biomarker)
        plan = self._recorded_plan(request, manifest) or self._plan(request, manifest, workflow)
        fresh = [self.ledger.record(item.record, ("submitted", _submitted(item))) for item in plan]
        primary_job = self._dispatch(plan[0], fatal=True, fresh=fresh[0])
        shadow_job = self._dispatch(plan[1], fatal=False, fresh=fresh[1]) if len(plan) > 1 else None
        if not wait:
            return Submission(self.ledger.get(plan[0].record.id))
        primary = self._collect(plan[0], primary_job)
        if len(plan) == 1:
            return Submission(primary)
        shadow = self._collect(plan[1], shadow_job)
        return Submission(primary, shadow, self._compare(primary, shadow, manifest))

    def wait(self, execution_id: str) -> Submission:
        """Collect an execution dispatched without waiting (and its paired run): outcome, outputs, provenance.json,
        comparison. One that already finished is returned as recorded; nothing is appended twice by one caller."""
        found = self.ledger.get(execution_id)
        manifest = self._manifests.manifest(found.record.biomarker)
        paired = found.record.paired_execution_id
        records = [found.record] + ([self.ledger.get(paired).record] if paired else [])
        records.sort(key=lambda r: r.route == "shadow")  # the delivered run first, as `run` returns it
        done = [self._await(Planned(r, job_for(r, manifest))) for r in records]
        if len(done) == 1:
            return Submission(done[0])
        recorded = self.ledger.comparisons(biomarker=found.record.biomarker, candidate_version=done[1].record.version)
        if any(c.candidate_execution_id == done[1].id for c in recorded):
            return Submission(done[0], done[1])
        return Submission(done[0], done[1], self._compare(done[0], done[1], manifest))

    def _await(self, item: Planned) -> Execution:
        current = self.ledger.get(item.record.id)
        if current.finished:
            return current
        job_id = current.latest("backend_job_id") or self.backend.find(item.record.id, item.job)
        if job_id is None:
            raise ExecutionError(f"execution {item.record.id} was never dispatched",
                                 hint="Submit it again with the same --request-id.")
        return self._collect(item, str(job_id))

    # -- planning -------------------------------------------------------------------------------------------

    def _plan(self, request: ExecutionRequest, manifest: Biomarker, workflow: tuple[str, str] | None) -> list[Planned]:
        _fresh_output(request.output_path)
        identity = _identity(request)
        primary_id = execution_id(request.request_id)
        # One read per submission: the freeze checks, the route and every pin judge the same snapshot (a promotion
        # between reads could otherwise pair one state's route with another's version), and it costs one round trip.
        state = self._store.read(request.environment, request.biomarker).state
        freeze = binding_freeze(state, request.cohort, self._clock())
        make = _RecordMaker(request, manifest, identity, self._clock(), self.backend.name, workflow)
        resolve = _Pins(self._resolver, state, manifest.image, request.biomarker, request.yank_override)
        if freeze is not None:
            resolved = resolve(frozen_spec(request.spec, freeze))
            scope = f"cohort {freeze.cohort}" if freeze.cohort else request.environment
            rule = f"freeze {freeze.id} of {scope} at {freeze.version} (asked {request.spec}; {resolved.rule})"
            return [make(primary_id, replace(resolved, rule=rule), "stable")]
        track, rollout_id = "stable", None
        if request.spec == "stable" and not environment_frozen(state, self._clock()):
            routing = routing_of(state)
            track, rollout_id = choose_track(routing, identity), routing.rollout_id
        if track == "stable":
            return [make(primary_id, resolve(request.spec), "stable")]
        candidate = resolve("candidate", delivered=False)  # a shadow run's result never reaches the client
        if not self._paired:
            if candidate.yanked is not None:  # a recalled candidate is never delivered: this study stays on stable
                return [make(primary_id, resolve(request.spec), "stable")]
            return [make(primary_id, candidate, "candidate", rollout_id=rollout_id)]
        shadow_id = str(uuid.uuid5(NAMESPACE, f"{primary_id}/shadow"))
        stable = resolve("stable")
        return [make(primary_id, stable, "stable", paired=shadow_id, rollout_id=rollout_id),
                make(shadow_id, candidate, "shadow", paired=primary_id, rollout_id=rollout_id,
                     output=self._shadow_root / shadow_id)]

    def _recorded_plan(self, request: ExecutionRequest, manifest: Biomarker) -> list[Planned] | None:
        """A retried request re-runs exactly what was recorded the first time, whatever moved since."""
        if not request.request_id:
            return None
        found = self.ledger.find(execution_id(request.request_id))
        if found is None:
            return None
        records = [found.record]
        paired = self.ledger.find(found.record.paired_execution_id) if found.record.paired_execution_id else None
        if paired is not None:
            records.append(paired.record)
        return [Planned(r, job_for(r, manifest)) for r in records]

    # -- running --------------------------------------------------------------------------------------------

    def _dispatch(self, item: Planned, *, fatal: bool, fresh: bool) -> str | None:
        """Dispatch with the execution id as idempotency token; a repeated dispatch finds the same job."""
        known: str | None = None
        if not fresh:  # a retried request: finished ones stay finished, dispatched ones are found again
            current = self.ledger.get(item.record.id)
            if current.finished:
                return None
            known = current.latest("backend_job_id")
        try:
            job_id = self.backend.dispatch(item.record.id, item.job, item.record.route)
        except DeliveryError as e:
            self.ledger.record_outcome(item.record.id, "dispatch_failed", {"reason": e.message})
            if fatal:
                raise
            return None
        if job_id != known:
            self.ledger.append(item.record.id, "dispatched", {"backend_job_id": job_id, "attempt": 1})
        return job_id

    def _collect(self, item: Planned, job_id: str | None) -> Execution:
        """Wait for the job (retrying once on node loss), then record the outcome and write provenance.json."""
        if job_id is None:
            return self.ledger.get(item.record.id)
        outcome = self.backend.wait(job_id, item.job)
        for node in outcome.lost_nodes:
            self.ledger.append(item.record.id, "lost", {"node": node, "reason": "node lost; retried once"})
        jobs = [job_id]
        if outcome.status == "lost" and outcome.retry:
            outcome, retried = self._retry_lost(item, outcome)
            jobs.append(retried)
        finished = self._finish(item, outcome)
        for job in jobs:  # only now: until the outcome is recorded, the job is what a resume collects
            self.backend.release(job, item.job)
        return finished

    def _retry_lost(self, item: Planned, lost: Outcome) -> tuple[Outcome, str]:
        self.ledger.append(item.record.id, "lost", {"node": lost.node, "reason": lost.reason or "node lost"})
        job_id = self.backend.dispatch(f"{item.record.id}.retry-1", item.job, item.record.route)
        self.ledger.append(item.record.id, "dispatched", {"backend_job_id": job_id, "attempt": 2})
        again = self.backend.wait(job_id, item.job)
        if again.status == "lost":
            return replace(again, status="failed", reason="node lost twice; not retried again"), job_id
        return again, job_id

    def _finish(self, item: Planned, outcome: Outcome) -> Execution:
        out = Path(item.record.output_path)
        outputs = hash_outputs(out)
        details = {"exit_code": outcome.exit_code, "duration_s": outcome.duration_s, "node": outcome.node,
                   "gpu": outcome.gpu, "reason": outcome.reason, "log_tail": list(outcome.log_tail),
                   "outputs": [o.__dict__ for o in outputs], **({"final": True} if outcome.status == "lost" else {})}
        if not self.ledger.record_outcome(item.record.id, outcome.status, details):
            return self.ledger.get(item.record.id)  # another collector recorded it (and wrote provenance.json)
        if outcome.status != "succeeded" and out.is_dir():
            (out / EXECUTION_LOG).write_text("\n".join(outcome.log_tail) + "\n", encoding="utf-8")
        finished = self.ledger.get(item.record.id)
        write_json_atomic(out / PROVENANCE, provenance(finished))
        return finished

    def _compare(self, primary: Execution, shadow: Execution, manifest: Biomarker) -> Comparison | None:
        """Equivalence of the paired runs, recorded in the ledger and as comparison.json beside the shadow outputs."""
        if not (primary.succeeded and shadow.succeeded):
            return None
        try:
            stable = read_report(Path(primary.record.output_path))
            candidate = read_report(Path(shadow.record.output_path))
        except ExecutionError as e:
            self.ledger.append(shadow.id, "comparison_failed", {"reason": e.message})
            return None
        result = compare(stable, candidate, manifest.rollout.gates.equivalence)
        document = {"stable_execution_id": primary.id, "candidate_execution_id": shadow.id,
                    "stable_version": primary.record.version, "candidate_version": shadow.record.version,
                    "input_identity": primary.record.input_identity, **result.as_json(),
                    "stable_metrics": flatten(stable), "candidate_metrics": flatten(candidate)}
        self.ledger.record_comparison(StoredComparison(
            self._clock(), primary.record.biomarker, primary.id, shadow.id, primary.record.version,
            shadow.record.version, result.passed, document))
        write_json_atomic(Path(shadow.record.output_path) / COMPARISON, document)
        return result


def _submitted(item: Planned) -> dict[str, Any]:
    """The first ledger event of an execution: its input, and the override if it runs a yanked version."""
    details: dict[str, Any] = {"input_identity": item.record.input_identity}
    if item.yank_override:
        details["yank_override"] = dict(item.yank_override)
    return details


def _identity(request: ExecutionRequest) -> str:
    """The input's identity; a study that cannot be walked is the client's problem, named inside the study (the
    server's paths never reach an API response)."""
    try:
        return input_identity(request.input_path, request.series_uid)
    except OSError as e:
        inside = Path(str(e.filename or request.input_path))
        where = inside.relative_to(request.input_path) if inside.is_relative_to(request.input_path) else inside.name
        raise ExecutionError(f"cannot read the input study ({where}: {e.strerror or type(e).__name__})",
                             hint="Check that every file and folder of the study is readable.") from e


def _fresh_output(out: Path) -> None:
    """A new execution writes into a new or empty folder: every file in it is hashed into its provenance, and a
    stale report.json would be served as its result."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExecutionError(f"output folder {out} is not empty",
                             hint="Pass a new or empty folder to --out (a retry with the same --request-id "
                                  "reuses its own folder).")


@dataclass(frozen=True)
class _Pins:
    """Resolves specs of one submission against the release state it read once."""

    resolver: PinResolver
    release: ReleaseState
    image: str
    biomarker: str
    override: str | None

    def __call__(self, spec: str, *, delivered: bool = True) -> Resolved:
        """The pin; one whose result is delivered must not be yanked unless the request overrides it."""
        resolved = self.resolver.resolve(spec, release=self.release, image_repository=self.image)
        return refuse_yanked(resolved, self.biomarker, self.override) if delivered else resolved


@dataclass(frozen=True)
class _RecordMaker:
    request: ExecutionRequest
    manifest: Biomarker
    identity: str
    now: datetime
    backend: str
    workflow: tuple[str, str] | None

    def __call__(self, id_: str, resolved: Resolved, route: Route, *, paired: str | None = None,
                 rollout_id: str | None = None, output: Path | None = None) -> Planned:
        variant, _ = pick_variant(self.manifest, self.request.variant)
        r = self.request
        record = ExecutionRecord(
            id=id_, created_at=self.now, actor=r.actor, biomarker=r.biomarker, variant=variant,
            environment=r.environment, input_identity=self.identity, pin_requested=f"{r.biomarker}@{r.spec}",
            version=resolved.version, digest=resolved.digest, reference=resolved.reference,
            resolution_rule=resolved.rule, route=route, backend=self.backend,
            output_path=str((output or r.output_path).resolve()), input_path=str(r.input_path.resolve()),
            attestation_digest=resolved.attestation_digest, cohort=r.cohort, paired_execution_id=paired,
            rollout_id=rollout_id, workflow=self.workflow[0] if self.workflow else None,
            workflow_step=self.workflow[1] if self.workflow else None)
        return Planned(record, job_for(record, self.manifest), yank_override(resolved, r.yank_override, r.actor))


def job_for(record: ExecutionRecord, manifest: Biomarker) -> JobDescription:
    """The job a record runs: its pinned image plus the variant's command and resources."""
    _, variant = pick_variant(manifest, record.variant)
    labels = {"execution": record.id, "route": record.route, "version": record.version}
    return JobDescription(
        biomarker=record.biomarker, variant=record.variant, image=record.reference, argv=tuple(variant.command),
        input_path=Path(record.input_path), output_path=Path(record.output_path),
        cpu_mhz=variant.resources.cpu_mhz, memory_mb=variant.resources.memory_mb, gpu=variant.resources.gpu,
        job_type=manifest.job_type, timeout_s=duration_seconds(variant.timeout), labels=labels)


PROVENANCE_FIELDS = ("biomarker", "variant", "version", "digest", "reference", "attestation_digest", "route",
                     "backend", "environment", "cohort", "input_identity", "pin_requested", "resolution_rule",
                     "paired_execution_id", "rollout_id", "workflow", "workflow_step", "actor")
FOLDED_FIELDS = ("status", "backend_job_id", "node", "gpu", "exit_code", "duration_s", "outputs")


def provenance(execution: Execution) -> dict[str, Any]:
    """The provenance.json document: which exact build produced these outputs, from which input, how."""
    doc: dict[str, Any] = {"execution_id": execution.id, "created_at": execution.record.created_at.isoformat()}
    doc.update({k: getattr(execution.record, k) for k in PROVENANCE_FIELDS})
    folded = execution.as_json()
    doc.update({k: folded[k] for k in FOLDED_FIELDS})
    doc["yank_override"] = execution.latest("yank_override")  # a recalled version run anyway: who, why
    return doc


def describe(submission: Submission) -> Mapping[str, Any]:
    """A JSON summary of a submission for the CLI."""
    doc: dict[str, Any] = {"execution": submission.execution.as_json()}
    if submission.shadow is not None:
        doc["shadow"] = submission.shadow.as_json()
    if submission.comparison is not None:
        doc["comparison"] = submission.comparison.as_json()
    return doc
