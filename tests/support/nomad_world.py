"""Builders for rollout tests: manifests, releases, a fixed clock and a controller wired to the fake Nomad."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from delivery.manifest import Biomarker, parse_manifest
from delivery.release.state import SqliteReleaseStore
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.loop import Controller
from rollout.controller.model import ReleaseRef
from rollout.jobspec import Release
from rollout.nomad import NomadClient, NomadSettings

ENV = "prod"

BATCH = """\
apiVersion: delivery/v1
kind: Biomarker
name: alpha
description: A tiny test biomarker.
owners: ["@imaging/alpha"]
image: biomarkers/alpha
job_type: batch
test:
  command: ["true"]
variants:
  fast:
    command: ["quantify", "/data/input"]
    resources: {cpu_mhz: 500, memory_mb: 128}
rollout:
  steps:
    - set_weight: 10
    - analysis: {gates: [success-rate, runtime, equivalence], min_executions: 3}
    - set_weight: 50
    - analysis: {gates: [success-rate, runtime], min_executions: 3}
    - set_weight: 100
    - promote: {}
  gates:
    min_success_rate: 0.9
    equivalence:
      volume_ml: {relative: 0.01}
"""

SERVICE = """\
apiVersion: delivery/v1
kind: Biomarker
name: quicklook
description: Interactive preview.
owners: ["@imaging/alpha"]
image: biomarkers/quicklook
job_type: service
service: {port: 8080}
test:
  command: ["true"]
variants:
  web:
    command: ["serve"]
    resources: {cpu_mhz: 500, memory_mb: 128, gpu: GPU}
rollout:
  steps:
    - analysis: {gates: [health], min_executions: 1}
    - promote: {}
"""


def manifest(text: str = BATCH, *, gpu: int = 0) -> Biomarker:
    return parse_manifest(text.replace("GPU", str(gpu)).encode(), "biomarker.yaml")


def release(name: str, version: str) -> Release:
    digest = "sha256:" + (version.replace(".", "") * 64)[:64].ljust(64, "0")
    return Release(name, version, digest, f"registry.test/biomarkers/{name}")


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 10, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Verifier:
    """Accepts every image except those listed as unsigned (records what it saw)."""

    unsigned: set[str] = field(default_factory=set)
    seen: list[str] = field(default_factory=list)

    def verify(self, ref: ReleaseRef) -> str:
        from rollout.provenance import ProvenanceRejected

        self.seen.append(ref.digest)
        if ref.digest in self.unsigned:
            raise ProvenanceRejected(f"no valid attestation for {ref.digest}")
        return "sha256:" + "a" * 64


def client(address: str, **kw: object) -> NomadClient:
    return NomadClient(NomadSettings(address=address, timeout=2.0), sleep=lambda s: None, **kw)  # type: ignore[arg-type]


def controller(address: str, tmp: Path, name: str, clock: Clock, stats: InMemoryExecutionStats | None = None,
               verifier: Verifier | None = None, store: SqliteReleaseStore | None = None) -> Controller:
    return Controller(environment=ENV, biomarker=name, scheduler=client(address),
                      store=store or SqliteReleaseStore(tmp / "release-state.sqlite"),
                      verifier=verifier or Verifier(), stats=stats or InMemoryExecutionStats(), clock=clock)
