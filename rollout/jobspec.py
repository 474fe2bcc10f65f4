"""Nomad job JSON (API form) for one biomarker variant, built as data: no string templating of the spec."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from delivery.errors import DeliveryError
from delivery.manifest import Biomarker, duration_seconds

NS = 1_000_000_000
Track = Literal["stable", "canary"]
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
SPEC_HASH = "delivery.spec-hash"


@dataclass(frozen=True)
class Release:
    """The image a rollout moves onto the cluster, pinned by digest."""

    biomarker: str
    version: str
    digest: str
    image: str
    attestation_digest: str = ""

    def __post_init__(self) -> None:
        if not _DIGEST.match(self.digest):
            raise DeliveryError(f"image digest {self.digest!r} is not sha256:<64 hex>",
                                hint="Pass the digest printed by `delivery promote` or `delivery resolve`.")

    @property
    def reference(self) -> str:
        """`REGISTRY/IMAGE:VERSION@sha256:…`: the tag is informative, the digest is what runs."""
        return f"{self.image}:{self.version}@{self.digest}"

    @property
    def registry(self) -> str:
        """The registry host the image is pulled from."""
        return self.image.split("/", 1)[0]


@dataclass(frozen=True)
class ClusterSettings:
    """Cluster-wide choices that are not in a biomarker manifest."""

    datacenters: tuple[str, ...] = ("*",)
    data_volume: str = "biomarker-data"
    registry_auth_variable: str = "nomad/jobs/registry-auth"
    cpu_node_class: str = "cpu"
    gpu_node_class: str = "gpu"
    service_count: int = 2
    canaries: int = 1
    min_healthy_s: int = 10
    healthy_deadline_s: int = 300
    progress_deadline_s: int = 600


def job_id(biomarker: str, variant: str, track: Track = "stable") -> str:
    """`<biomarker>-<variant>` for stable, `<biomarker>-<variant>-canary` for the candidate."""
    return f"{biomarker}-{variant}" + ("-canary" if track == "canary" else "")


def build_job(manifest: Biomarker, variant: str, release: Release, *, track: Track = "stable",
              cluster: ClusterSettings | None = None) -> dict[str, Any]:
    """The Nomad job for `variant` running `release`; batch: a parameterized parent, service: an update block."""
    cluster = cluster or ClusterSettings()
    if variant not in manifest.variants:
        raise DeliveryError(f"{manifest.name} has no variant {variant!r}",
                            hint=f"Choose one of: {', '.join(sorted(manifest.variants))}.")
    spec = manifest.variants[variant]
    gpu = spec.resources.gpu
    group: dict[str, Any] = {
        "Name": variant, "Count": cluster.service_count if manifest.job_type == "service" else 1,
        "Volumes": {"data": {"Name": "data", "Type": "host", "Source": cluster.data_volume, "ReadOnly": False}},
        "Tasks": [_task(manifest, variant, release, cluster)],
        "RestartPolicy": {"Attempts": 0, "Mode": "fail"} if manifest.job_type == "batch" else None,
    }
    job: dict[str, Any] = {
        "ID": job_id(manifest.name, variant, track), "Name": job_id(manifest.name, variant, track),
        "Type": manifest.job_type, "Datacenters": list(cluster.datacenters),
        "Constraints": [{"LTarget": "${node.class}", "Operand": "=",
                         "RTarget": cluster.gpu_node_class if gpu else cluster.cpu_node_class}],
        "TaskGroups": [group],
        "Meta": {"biomarker": manifest.name, "variant": variant, "version": release.version,
                 "digest": release.digest, "attestation_digest": release.attestation_digest, "track": track},
    }
    if manifest.job_type == "batch":
        job["ParameterizedJob"] = {"Payload": "forbidden", "MetaRequired": ["study"],
                                   "MetaOptional": ["execution_id", "cohort", "output"]}
    else:
        group["Update"] = _update_block(cluster)
    job["Meta"][SPEC_HASH] = spec_hash(job)
    return job


def spec_hash(job: dict[str, Any]) -> str:
    """A short digest of everything we put in a job, so an unchanged spec is recognised on re-runs."""
    meta = {k: v for k, v in (job.get("Meta") or {}).items() if k != SPEC_HASH}
    text = json.dumps({**job, "Meta": meta}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _task(manifest: Biomarker, variant: str, release: Release, cluster: ClusterSettings) -> dict[str, Any]:
    spec = manifest.variants[variant]
    config: dict[str, Any] = {
        "image": f"{release.image}@{release.digest}",
        "command": spec.command[0], "args": list(spec.command[1:]),
        # The password reaches the driver through the template's env file, never through the spec.
        "auth": [{"username": "${REGISTRY_USERNAME}", "password": "${REGISTRY_PASSWORD}",
                  "server_address": release.registry}],
    }
    if manifest.service is not None:
        config["ports"] = ["http"]
    devices = [{"Name": "nvidia/gpu", "Count": spec.resources.gpu}] if spec.resources.gpu else None
    return {
        "Name": "main", "Driver": "docker", "Config": config,
        "Env": {"BIOMARKER": manifest.name, "BIOMARKER_VERSION": release.version, "BIOMARKER_VARIANT": variant},
        "Resources": {"CPU": spec.resources.cpu_mhz, "MemoryMB": spec.resources.memory_mb, "Devices": devices},
        "VolumeMounts": [{"Volume": "data", "Destination": "/data", "ReadOnly": False}],
        "Templates": [{"EmbeddedTmpl": _auth_template(cluster.registry_auth_variable),
                       "DestPath": "secrets/registry.env", "Envvars": True, "ChangeMode": "restart"}],
        "KillTimeout": 30 * NS,
        "Meta": {"timeout_s": str(duration_seconds(spec.timeout))},
    }


def _auth_template(variable: str) -> str:
    """Nomad template reading registry credentials from a Variable (the path is validated, not user text)."""
    if not re.fullmatch(r"[A-Za-z0-9/_.-]+", variable):
        raise DeliveryError(f"registry auth variable path {variable!r} has characters Nomad paths do not allow")
    return (f'{{{{ with nomadVar "{variable}" }}}}REGISTRY_USERNAME={{{{ .username }}}}\n'
            "REGISTRY_PASSWORD={{ .password }}\n{{ end }}")


def _update_block(cluster: ClusterSettings) -> dict[str, Any]:
    return {"MaxParallel": 1, "Canary": cluster.canaries, "AutoRevert": True, "AutoPromote": False,
            "HealthCheck": "task_states", "MinHealthyTime": cluster.min_healthy_s * NS,
            "HealthyDeadline": cluster.healthy_deadline_s * NS, "ProgressDeadline": cluster.progress_deadline_s * NS}
