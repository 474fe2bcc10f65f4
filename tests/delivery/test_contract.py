"""One container contract, three translations: the CI test stage, the local Docker backend and the Nomad task give
a biomarker the same CPUs, memory, folders and environment names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from delivery import contract
from delivery.ci.record import RunRecord
from delivery.ci.stages import StageEnv, confined_container
from delivery.docker import ContainerJob
from delivery.manifest import Biomarker
from rollout.executions.local_docker import container_job
from rollout.executions.model import JobDescription
from rollout.jobspec import build_job
from tests.support.nomad_world import BATCH, manifest, release

HOST_CPUS = 64  # a large host, so that no translation clamps to the machine running the tests


@pytest.fixture(autouse=True)
def large_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: HOST_CPUS)


def alpha(cpu_mhz: int, memory_mb: int) -> Biomarker:
    return manifest(BATCH.replace("{cpu_mhz: 500, memory_mb: 128}", f"{{cpu_mhz: {cpu_mhz}, memory_mb: {memory_mb}}}"))


def stage_container(tmp_path: Path, biomarker: Biomarker) -> ContainerJob:
    env = StageEnv(tmp_path, RunRecord.open(tmp_path / "work"), None, biomarker, None, None)  # type: ignore[arg-type]
    return confined_container(env, "img", ("true",), tmp_path / "reports", gpu=False)


def local_container(tmp_path: Path, biomarker: Biomarker, n: int = 1) -> ContainerJob:
    rel = release(biomarker.name, "1.0.0")
    variant = biomarker.variants["fast"]
    job = JobDescription(biomarker.name, "fast", rel.reference, tuple(variant.command), tmp_path / f"in{n}",
                         tmp_path / f"out{n}", variant.resources.cpu_mhz, variant.resources.memory_mb,
                         labels={"execution": f"ex-{n}", "version": "1.0.0"})
    return container_job(job, f"{rel.image}@{rel.digest}", "1000:1000", f"ex-{n}", "stable")


def nomad_task(biomarker: Biomarker) -> dict[str, Any]:
    task: dict[str, Any] = build_job(biomarker, "fast", release(biomarker.name, "1.0.0"))["TaskGroups"][0]["Tasks"][0]
    return task


@pytest.mark.parametrize(("cpu_mhz", "cpus"), [(2000, 1.0), (3000, 1.5), (8000, 4.0)])
def test_the_cpu_and_memory_conversion_is_the_same_in_all_three_translations(tmp_path: Path, cpu_mhz: int,
                                                                             cpus: float) -> None:
    biomarker = alpha(cpu_mhz, 1536)
    stage, local = stage_container(tmp_path, biomarker), local_container(tmp_path, biomarker)
    nomad = nomad_task(biomarker)
    assert stage.nano_cpus == local.nano_cpus == int(cpus * 1e9)  # the local backend once counted 1000 MHz a CPU
    assert nomad["Resources"]["CPU"] == cpu_mhz == cpus * contract.MHZ_PER_CPU
    assert stage.memory_bytes == local.memory_bytes == nomad["Resources"]["MemoryMB"] * 2**20 == 1536 * 2**20


def test_a_tiny_reservation_still_gets_a_share_of_a_cpu_and_no_more_than_the_host() -> None:
    assert contract.Limits(100, 64).nano_cpus() == 50_000_000
    assert contract.Limits(256_000, 64).nano_cpus(HOST_CPUS) == HOST_CPUS * 10**9
    assert contract.Limits(100, 64).nano_cpus(2, at_least=0.5) == 500_000_000  # the test stage's floor


def test_local_and_nomad_executions_get_the_same_folders_and_environment_names(tmp_path: Path) -> None:
    biomarker = alpha(2000, 256)
    local, nomad = local_container(tmp_path, biomarker), nomad_task(biomarker)
    local_binds = {m.target: m.read_only for m in local.mounts}
    nomad_binds = {m["target"]: m["readonly"] for m in nomad["Config"]["mount"]}
    assert local_binds == nomad_binds == {"/data/input": True, "/data/output": False}
    assert set(local.environment or {}) == set(nomad["Env"])
    fixed = {k: v for k, v in nomad["Env"].items() if "${" not in v}
    assert fixed == {k: v for k, v in (local.environment or {}).items() if k in fixed}
    assert fixed["BIOMARKER_INPUT"] == "/data/input" and fixed["BIOMARKER_OUTPUT"] == "/data/output"
    assert fixed["BIOMARKER_IMAGE_DIGEST"] == release("alpha", "1.0.0").digest
    assert (local.environment or {})["BIOMARKER_EXECUTION_ID"] == "ex-1"


def test_two_local_executions_bind_their_own_folders(tmp_path: Path) -> None:
    one, two = local_container(tmp_path, alpha(2000, 256), 1), local_container(tmp_path, alpha(2000, 256), 2)
    assert {m.source for m in one.mounts} == {(tmp_path / "in1").resolve(), (tmp_path / "out1").resolve()}
    assert not {m.source for m in one.mounts} & {m.source for m in two.mounts}


def test_the_test_stage_mounts_test_data_read_only_and_reports_writable(tmp_path: Path) -> None:
    biomarker = alpha(2000, 256)
    data = biomarker.test.model_copy(update={"data": "tests/data"})
    stage = stage_container(tmp_path, biomarker.model_copy(update={"test": data}))
    assert {m.target: m.read_only for m in stage.mounts} == {contract.REPORTS_DIR: False, contract.TEST_DATA_DIR: True}
    assert (stage.environment or {})[contract.REPORTS_ENV] == contract.REPORTS_DIR
