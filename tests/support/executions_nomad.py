"""Parameterized parent jobs on the fake Nomad, and a fixed pin table standing in for the release side."""

from __future__ import annotations

from delivery.release.state import SqliteReleaseStore
from rollout.executions.model import Resolved
from rollout.executions.pins import PinError
from rollout.nomad import NomadClient

DIGESTS = {"1.0.0": "sha256:" + "1" * 64, "2.0.0": "sha256:" + "2" * 64}
IMAGE = "registry.test/biomarkers/alpha"


def parent_spec(job_id: str, version: str) -> dict[str, object]:
    """A minimal parameterized batch parent fixed to one digest (the rollout controller writes the real ones)."""
    task = {"Name": "main", "Driver": "docker", "Config": {"image": f"{IMAGE}@{DIGESTS[version]}"},
            "Resources": {"CPU": 500, "MemoryMB": 64}}
    return {"ID": job_id, "Name": job_id, "Type": "batch", "Datacenters": ["*"],
            "TaskGroups": [{"Name": "fast", "Count": 1, "Tasks": [task]}],
            "ParameterizedJob": {"Payload": "forbidden", "MetaRequired": ["study"],
                                 "MetaOptional": ["execution_id", "output"]},
            "Meta": {"digest": DIGESTS[version], "version": version}}


def register_tracks(client: NomadClient, stable: str, candidate: str | None = None) -> None:
    client.register(parent_spec("alpha-fast", stable), enforce_index=0)
    if candidate:
        client.register(parent_spec("alpha-fast-canary", candidate), enforce_index=0)


class FixedPins:
    """A `PinResolver` over a fixed table: exact versions and the store's channels, no registry."""

    def __init__(self, store: SqliteReleaseStore) -> None:
        self._store = store

    def resolve(self, biomarker: str, spec: str, *, environment: str, image_repository: str) -> Resolved:
        version = spec
        pin = self._store.read(environment, biomarker).state.channels.get(spec)
        if pin is not None:
            version = pin.version
        if version not in DIGESTS:
            raise PinError(f"no version {spec}")
        return Resolved(f"{IMAGE}:{version}@{DIGESTS[version]}", version, DIGESTS[version], f"table {spec}")
