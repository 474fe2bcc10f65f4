"""The `biomarker.yaml` model: validated once at the edge, immutable after."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

API_VERSION = "delivery/v1"

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# OCI distribution repository name grammar (path components separated by "/").
IMAGE_PATH = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
DURATION = r"^[1-9][0-9]{0,5}(s|m|h)$"
OWNER = r"^(@[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(/[A-Za-z0-9._-]+)?|[^@\s]+@[^@\s]+\.[^@\s]+)$"
BUILD_ARG = r"^[A-Za-z_][A-Za-z0-9_]*$"
METRIC = r"^[a-z_][a-z0-9_.]*$"

Name = Annotated[str, StringConstraints(pattern=DNS_LABEL, min_length=1, max_length=40)]
ImagePath = Annotated[str, StringConstraints(pattern=IMAGE_PATH, max_length=200)]
Duration = Annotated[str, StringConstraints(pattern=DURATION)]


def _inside_repository(value: str) -> str:
    """Paths in a manifest stay inside the repository: relative, no `..`, no backslashes."""
    if value.startswith("/") or ".." in value.split("/") or "\\" in value or "\x00" in value:
        raise ValueError("must be a relative path inside the repository (no leading `/`, no `..`)")
    return value


RelPath = Annotated[str, StringConstraints(min_length=1, max_length=255), AfterValidator(_inside_repository)]
BuildArgName = Annotated[str, StringConstraints(pattern=BUILD_ARG)]
BuildArgValue = Annotated[str, StringConstraints(max_length=4096)]
Arg = Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=r"^[^\x00]*$")]
Argv = Annotated[list[Arg], Field(min_length=1, max_length=256)]

_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration_seconds(value: str) -> int:
    """Seconds in a validated duration such as `90s`, `10m` or `2h`."""
    match = re.fullmatch(DURATION, value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(value[:-1]) * _UNITS[value[-1]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Build(_Strict):
    """How the image is built from the repository."""

    dockerfile: RelPath = Field("Dockerfile", description="Dockerfile path, relative to the repository root.")
    context: RelPath = Field(".", description="Build context folder, relative to the repository root.")
    args: dict[BuildArgName, BuildArgValue] = Field(
        default_factory=dict, description="Build arguments (BASE_IMAGE is supplied by the pipeline)."
    )
    target: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] | None = Field(
        None, description="Multi-stage target to build."
    )


class TestResources(_Strict):
    """CPU and memory limits of the test container (GPUs come from the GPU test's own request)."""

    cpu_mhz: int = Field(ge=100, le=256_000, description="CPU limit in MHz (2000 MHz = one CPU).")
    memory_mb: int = Field(ge=32, le=1_048_576, description="Memory limit in MiB.")


class Resources(TestResources):
    """What one execution of a variant reserves on a node."""

    cpu_mhz: int = Field(ge=100, le=256_000, description="CPU reservation in MHz (Nomad `cpu`).")
    gpu: int = Field(0, ge=0, le=8, description="Number of NVIDIA GPUs.")


class TestSpec(_Strict):
    """Tests run inside the built image, without network, on a read-only root."""

    command: Argv = Field(description="Command (argv list) run inside the built image.")
    gpu_command: Argv | None = Field(None, description="Command run on a GPU agent with an NVIDIA device.")
    data: RelPath | None = Field(None, description="Repository folder mounted read-only at /data/test.")
    timeout: Duration = Field("15m", description="Wall-clock limit, e.g. 90s, 15m, 2h.")
    resources: TestResources | None = Field(
        None, description="Limits of the test container; absent: the largest variant's CPU and memory."
    )


Severity = Literal["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


class ScanSpec(_Strict):
    """The scan gate's policy; `delivery ci scan` flags and environment variables override it."""

    severity: list[Severity] | None = Field(
        None, min_length=1, max_length=5,
        description="Severities whose findings close the gate, e.g. [CRITICAL, HIGH]; absent: HIGH and above.",
    )
    ignore_file: RelPath | None = Field(
        None, description="Audited ignore file (id, reason, expires), relative to the repository; "
                          "absent: scan-ignore.yaml.",
    )
    require_vuln_db: bool = Field(
        True, description="Fail the scan when vulnerabilities could not be scanned (no DB, a DB older than "
                          "max_db_age, a scanner error). false: non-release builds only warn (local experiments); "
                          "release-tag builds always fail unless --allow-unscanned --reason.",
    )
    max_db_age: Duration = Field("168h", description="Oldest vulnerability DB a scan counts as scanned, e.g. 72h; "
                                                     "older: stale.")

    @model_validator(mode="after")
    def _no_repeats(self) -> ScanSpec:
        if self.severity is not None and len(set(self.severity)) != len(self.severity):
            raise ValueError("`severity` lists a severity twice")
        return self


class Variant(_Strict):
    """One way to run the biomarker (e.g. `fast`, `accurate`)."""

    command: Argv = Field(description="Command (argv list); reads /data/input, writes /data/output.")
    resources: Resources
    timeout: Duration = Field("30m", description="Wall-clock limit of one execution.")
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class Service(_Strict):
    """Network endpoint of a `service` biomarker."""

    port: int = Field(ge=1, le=65535)
    health_path: Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._~/-]*$")] = "/healthz"


class SetWeightStep(_Strict):
    """Route this percentage of new executions to the candidate."""

    set_weight: int = Field(ge=0, le=100)


class PauseSpec(_Strict):
    duration: Duration | None = Field(None, description="Resume by itself after this; absent: wait for a human.")


class PauseStep(_Strict):
    """Wait for a duration, or for `rollout resume`."""

    pause: PauseSpec


GateName = Literal["health", "success-rate", "runtime", "equivalence"]


def _default_gates() -> list[GateName]:
    return ["success-rate", "runtime", "equivalence"]


class AnalysisSpec(_Strict):
    gates: list[GateName] = Field(default_factory=_default_gates, min_length=1)
    min_executions: int = Field(5, ge=1, le=100_000)


class AnalysisStep(_Strict):
    """Run the gates on the candidate's executions since the last step."""

    analysis: AnalysisSpec


class PromoteSpec(_Strict):
    pass


class PromoteStep(_Strict):
    """Make the candidate the new stable version."""

    promote: PromoteSpec


_STEP_TAGS = ("set_weight", "pause", "analysis", "promote")


def _step_tag(value: object) -> str | None:
    """A step is a one-key mapping; its key is its kind."""
    keys = value.keys() if isinstance(value, dict) else [f for f in _STEP_TAGS if hasattr(value, f)]
    tags = [k for k in keys if k in _STEP_TAGS]
    return tags[0] if len(tags) == 1 else None


Step = Annotated[
    Annotated[SetWeightStep, Tag("set_weight")]
    | Annotated[PauseStep, Tag("pause")]
    | Annotated[AnalysisStep, Tag("analysis")]
    | Annotated[PromoteStep, Tag("promote")],
    Discriminator(
        _step_tag,
        custom_error_type="step_kind",
        custom_error_message="a step is one of `set_weight: N`, `pause: {...}`, `analysis: {...}`, `promote: {}`",
    ),
]


class Tolerance(_Strict):
    """How far a candidate's metric may drift from stable on the same study."""

    absolute: float | None = Field(None, ge=0)
    relative: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_bound(self) -> Tolerance:
        if self.absolute is None and self.relative is None:
            raise ValueError("give `absolute` or `relative` (or both)")
        return self


class Gates(_Strict):
    """Thresholds the analysis gates apply to candidate executions."""

    min_success_rate: float = Field(0.99, ge=0, le=1, description="Candidate success rate floor.")
    max_runtime_ratio: float = Field(1.5, gt=0, description="Candidate/stable median runtime ceiling.")
    equivalence: dict[Annotated[str, StringConstraints(pattern=METRIC)], Tolerance] = Field(
        default_factory=dict, description="Per-metric tolerance on paired runs (report.json keys)."
    )
    reference_studies: list[RelPath] = Field(
        default_factory=list, description="Repository paths of studies run on both versions."
    )


def _default_steps() -> list[Step]:
    return [
        SetWeightStep(set_weight=10),
        AnalysisStep(analysis=AnalysisSpec()),
        SetWeightStep(set_weight=50),
        AnalysisStep(analysis=AnalysisSpec()),
        PromoteStep(promote=PromoteSpec()),
    ]


class Rollout(_Strict):
    """Progressive rollout plan: tagged steps and the gates they run."""

    steps: list[Step] = Field(default_factory=_default_steps, min_length=1, max_length=50)
    gates: Gates = Field(default_factory=Gates)


class WorkflowStep(_Strict):
    """One step of a workflow: a variant run on the study or on an earlier step's outputs."""

    name: Name
    variant: Name = Field(description="Variant (command and resources) this step runs.")
    input: Name | Literal["study"] = Field(
        "study", description="`study` (the submitted input) or the name of an earlier step whose outputs it reads."
    )


class Workflow(_Strict):
    """Linked steps (e.g. convert → segment → quantify); each runs when its input exists."""

    steps: list[WorkflowStep] = Field(min_length=1, max_length=20)
    description: Annotated[str, StringConstraints(max_length=500)] = ""

    @model_validator(mode="after")
    def _inputs_come_first(self) -> Workflow:
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"step `{step.name}` appears twice")
            if step.input != "study" and step.input not in seen:
                raise ValueError(f"step `{step.name}` reads `{step.input}`, which is not an earlier step")
            seen.add(step.name)
        return self


class Biomarker(_Strict):
    """A biomarker repository's `biomarker.yaml`."""

    api_version: Literal["delivery/v1"] = Field(alias="apiVersion")
    kind: Literal["Biomarker"]
    name: Name = Field(description="DNS label, at most 40 characters; names jobs and images.")
    description: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    owners: list[Annotated[str, StringConstraints(pattern=OWNER)]] = Field(
        min_length=1, description="E-mail addresses or @github-handles (or @org/team)."
    )
    image: ImagePath = Field(description="Repository path in the private registry, e.g. biomarkers/emphysema.")
    job_type: Literal["batch", "service"] = "batch"
    pipeline: Literal["generated", "custom"] = Field(
        "generated", description="`custom`: the repository keeps its own Jenkinsfile; only the job is generated."
    )
    build: Build = Field(default_factory=Build)
    test: TestSpec
    scan: ScanSpec = Field(default_factory=ScanSpec)
    variants: dict[Name, Variant] = Field(min_length=1)
    service: Service | None = None
    rollout: Rollout = Field(default_factory=Rollout)
    workflows: dict[Name, Workflow] = Field(
        default_factory=dict, description="Named chains of variants whose inputs are earlier steps' outputs."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    @model_validator(mode="after")
    def _service_needs_endpoint(self) -> Biomarker:
        if self.job_type == "service" and self.service is None:
            raise ValueError("job_type `service` needs a `service` section with `port`")
        if self.job_type == "batch" and self.service is not None:
            raise ValueError("`service` is only valid with job_type `service`")
        for name, workflow in self.workflows.items():
            unknown = [s.variant for s in workflow.steps if s.variant not in self.variants]
            if unknown:
                raise ValueError(f"workflow `{name}` uses undeclared variant(s): {', '.join(unknown)}")
        return self
