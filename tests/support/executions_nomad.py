"""Parameterized parent jobs on the fake Nomad, and a fixed pin table standing in for the release side."""

from __future__ import annotations

from typing import Any

from delivery.release.state import ReleaseState
from rollout.executions.model import Resolved
from rollout.executions.pins import PinError
from rollout.jobspec import Release, Track, build_job
from rollout.nomad import NomadClient
from tests.support.executions_builders import manifest

DIGESTS = {"1.0.0": "sha256:" + "1" * 64, "2.0.0": "sha256:" + "2" * 64}
IMAGE = "registry.test/biomarkers/alpha"


def parent_spec(job_id: str, version: str, *, legacy: bool = False) -> dict[str, Any]:
    """The parameterized parent the rollout controller deploys (`rollout.jobspec.build_job`) for one digest."""
    track: Track = "canary" if job_id.endswith("-canary") else "stable"
    spec = build_job(manifest("alpha"), "fast", Release("alpha", version, DIGESTS[version], IMAGE), track=track)
    if legacy:  # a parent deployed before executions had their own binds: `study` required, the rest optional
        spec["ParameterizedJob"].update(MetaRequired=["study"], MetaOptional=["execution_id", "cohort", "output"])
    return spec


def register_tracks(client: NomadClient, stable: str, candidate: str | None = None, *,
                    legacy: bool = False) -> None:
    client.register(parent_spec("alpha-fast", stable, legacy=legacy), enforce_index=0)
    if candidate:
        client.register(parent_spec("alpha-fast-canary", candidate), enforce_index=0)


class FixedPins:
    """A `PinResolver` over a fixed table: exact versions and the release state's channels, no registry."""

    def resolve(self, spec: str, *, release: ReleaseState, image_repository: str) -> Resolved:
        version = spec
        pin = release.channels.get(spec)
        if pin is not None:
            version = pin.version
        if version not in DIGESTS:
            raise PinError(f"no version {spec}")
        return Resolved(f"{IMAGE}:{version}@{DIGESTS[version]}", version, DIGESTS[version], f"table {spec}")
