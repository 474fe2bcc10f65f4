"""Workflows: linked steps (convert → segment → quantify) whose inputs are earlier steps' outputs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from delivery.manifest.model import Biomarker
from rollout.executions.model import Execution, ExecutionError, ExecutionRequest
from rollout.executions.submit import Submitter


@dataclass(frozen=True)
class WorkflowRun:
    """The steps that ran, in order; `failed_step` names where it stopped (with its log tail)."""

    workflow: str
    executions: tuple[Execution, ...]
    failed_step: str | None = None
    log_tail: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.failed_step is None

    def as_json(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "succeeded": self.succeeded, "failed_step": self.failed_step,
                "log_tail": list(self.log_tail), "steps": [e.as_json() for e in self.executions]}


def run_workflow(submitter: Submitter, manifest: Biomarker, request: ExecutionRequest, name: str) -> WorkflowRun:
    """Run each step when its input exists, all on the build the first step resolved; stop at the first failure.

    Step outputs go to `<out>/<step>/`; a failure leaves every earlier step's outputs in place.
    """
    workflow = manifest.workflows.get(name)
    if workflow is None:
        known = ", ".join(manifest.workflows) or "none"
        raise ExecutionError(f"{manifest.name} has no workflow {name!r}", hint=f"Workflows declared: {known}.")
    done: list[Execution] = []
    spec = request.spec
    for step in workflow.steps:
        source = request.input_path if step.input == "study" else request.output_path / step.input
        if not _has_files(source):
            return WorkflowRun(name, tuple(done), step.name, (f"input of step {step.name} is missing: {source}",))
        step_request = replace(request, spec=spec, variant=step.variant, input_path=source,
                               output_path=request.output_path / step.name,
                               request_id=f"{request.request_id}/{step.name}" if request.request_id else None)
        execution = submitter.run(step_request, workflow=(name, step.name)).execution
        done.append(execution)
        if not execution.succeeded:
            return WorkflowRun(name, tuple(done), step.name, tuple(execution.latest("log_tail") or ()))
        spec = execution.record.version  # every later step runs the same build
    return WorkflowRun(name, tuple(done))


def _has_files(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(p.is_file() for p in path.rglob("*")))
