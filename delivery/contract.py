"""The container contract: what every biomarker container receives, on every backend, defined once.

A container sees its study read-only at `/data/input` and writes its results to `/data/output`; both are bound per
execution, so an execution sees only its own study and writes only its own output folder. Its environment names what
runs (`BIOMARKER*`), where to read and write, its execution id and, for a service, the port to listen on. Its limits
come from the manifest in Nomad's units (MHz, MiB, GPUs) and are converted here, once, for engines that limit CPUs.

Translations: the CI test stage (`delivery.ci.stages`), the local Docker backend (`rollout.executions.local_docker`)
and the Nomad task (`rollout.jobspec`). They differ only in where a mount's source comes from (a host folder, or
`${NOMAD_META_study}` interpolated by Nomad per dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_DIR = "/data/input"
OUTPUT_DIR = "/data/output"
TEST_DATA_DIR = "/data/test"  # the test stage: the manifest's `test.data`, read-only
REPORTS_DIR = "/data/reports"  # the test stage: where JUnit XML and other reports go
MHZ_PER_CPU = 2000  # the manifest's unit: "2000 MHz = one CPU" (Nomad reserves MHz, an engine limits CPUs)
MIN_NANO_CPUS = 10_000_000  # the engine refuses less than 0.01 CPU
# Executions run unprivileged as `nobody`, numerically (scratch images have no /etc/passwd); the output folder
# each execution gets is made writable for it, and the study must be readable by it.
RUN_USER = "65534:65534"
OUTPUT_MODE = 0o777

# Environment variable names a biomarker container receives.
BIOMARKER = "BIOMARKER"
BIOMARKER_VERSION = "BIOMARKER_VERSION"
BIOMARKER_VARIANT = "BIOMARKER_VARIANT"
BIOMARKER_IMAGE = "BIOMARKER_IMAGE"  # REGISTRY/IMAGE:VERSION@sha256:… it runs as
BIOMARKER_IMAGE_DIGEST = "BIOMARKER_IMAGE_DIGEST"  # so a report can name the build that produced it
BIOMARKER_INPUT = "BIOMARKER_INPUT"
BIOMARKER_OUTPUT = "BIOMARKER_OUTPUT"
BIOMARKER_EXECUTION_ID = "BIOMARKER_EXECUTION_ID"  # executions only
BIOMARKER_PORT = "BIOMARKER_PORT"  # service biomarkers only
REPORTS_ENV = "DELIVERY_REPORTS"  # the test stage only


@dataclass(frozen=True)
class Identity:
    """Which build a container runs: biomarker, version, variant and the digest-pinned image."""

    biomarker: str
    version: str
    variant: str
    image: str  # REGISTRY/IMAGE:VERSION@sha256:…
    digest: str


@dataclass(frozen=True)
class DataMount:
    """A bind of a host folder (or a scheduler's interpolation of one) into the container."""

    source: str
    target: str
    read_only: bool


@dataclass(frozen=True)
class Limits:
    """A container's resources in the manifest's units: CPU MHz, memory MiB, NVIDIA GPUs."""

    cpu_mhz: int
    memory_mb: int
    gpu: int = 0

    @property
    def memory_bytes(self) -> int:
        """The memory limit in bytes (MiB, like Nomad's MemoryMB)."""
        return self.memory_mb * 2**20

    def cpus(self, host_cpus: int | None = None, *, at_least: float = 0.0) -> float:
        """Whole CPUs for an engine: `cpu_mhz / MHZ_PER_CPU`, at least `at_least`, at most the host's CPUs."""
        wanted = max(at_least, self.cpu_mhz / MHZ_PER_CPU)
        return min(wanted, float(host_cpus)) if host_cpus else wanted

    def nano_cpus(self, host_cpus: int | None = None, *, at_least: float = 0.0) -> int:
        """The Docker engine's `NanoCpus` for these limits."""
        return max(int(self.cpus(host_cpus, at_least=at_least) * 1e9), MIN_NANO_CPUS)


def data_mounts(input_source: str, output_source: str) -> tuple[DataMount, DataMount]:
    """The study read-only at INPUT_DIR, the execution's own output folder writable at OUTPUT_DIR."""
    return (DataMount(input_source, INPUT_DIR, read_only=True), DataMount(output_source, OUTPUT_DIR, read_only=False))


def environment(identity: Identity, *, execution_id: str | None = None, port: str | None = None,
                data: bool = True) -> dict[str, str]:
    """The environment a biomarker container receives: execution id for executions, port for services, the data
    folders only where they are mounted (`data`)."""
    env = {BIOMARKER: identity.biomarker, BIOMARKER_VERSION: identity.version, BIOMARKER_VARIANT: identity.variant,
           BIOMARKER_IMAGE: identity.image, BIOMARKER_IMAGE_DIGEST: identity.digest}
    if data:
        env.update({BIOMARKER_INPUT: INPUT_DIR, BIOMARKER_OUTPUT: OUTPUT_DIR})
    if execution_id is not None:
        env[BIOMARKER_EXECUTION_ID] = execution_id
    if port is not None:
        env[BIOMARKER_PORT] = port
    return env
