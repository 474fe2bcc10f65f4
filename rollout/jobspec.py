"""Nomad job JSON (API form) for one biomarker variant, built as data: no string templating of the spec.

The task is the container contract (`delivery.contract`) translated for Nomad's docker driver.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from delivery import contract
from delivery.errors import DeliveryError
from delivery.manifest import Biomarker, duration_seconds
from delivery.manifest.model import Service

NS = 1_000_000_000
Track = Literal["stable", "canary"]
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
SPEC_HASH = "delivery.spec-hash"
PORT_LABEL = "http"
# A dispatch names the execution's own study and output folder; the task binds exactly those (Nomad interpolates
# `${NOMAD_META_*}` per dispatched child), so no execution sees another's data.
DISPATCH_META = ("study", "output", "execution_id")
META_STUDY, META_OUTPUT, META_EXECUTION_ID = (f"${{NOMAD_META_{key}}}" for key in DISPATCH_META)


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
    cpu_node_class: str = "cpu"
    gpu_node_class: str = "gpu"
    service_count: int = 2
    canaries: int = 1
    min_healthy_s: int = 10
    healthy_deadline_s: int = 300
    progress_deadline_s: int = 600
    check_interval_s: int = 2
    check_timeout_s: int = 1


def job_id(biomarker: str, variant: str, track: Track = "stable") -> str:
    """`<biomarker>-<variant>` for stable, `<biomarker>-<variant>-canary` for the candidate."""
    return f"{biomarker}-{variant}" + ("-canary" if track == "canary" else "")


def registry_auth_path(job: str) -> str:
    """The Variable holding a job's pull credentials: a job's workload identity reads `nomad/jobs/<job id>` by
    Nomad's implicit policy, and a dispatched child reads its parent's."""
    return f"nomad/jobs/{job}"


def build_job(manifest: Biomarker, variant: str, release: Release, *, track: Track = "stable",
              cluster: ClusterSettings | None = None) -> dict[str, Any]:
    """The Nomad job for `variant` running `release`; batch: a parameterized parent, service: checks + update."""
    cluster = cluster or ClusterSettings()
    if variant not in manifest.variants:
        raise DeliveryError(f"{manifest.name} has no variant {variant!r}",
                            hint=f"Choose one of: {', '.join(sorted(manifest.variants))}.")
    ident = job_id(manifest.name, variant, track)
    gpu = manifest.variants[variant].resources.gpu
    job: dict[str, Any] = {
        "ID": ident, "Name": ident, "Type": manifest.job_type, "Datacenters": list(cluster.datacenters),
        "Constraints": [{"LTarget": "${node.class}", "Operand": "=",
                         "RTarget": cluster.gpu_node_class if gpu else cluster.cpu_node_class}],
        "TaskGroups": [_group(manifest, variant, release, ident, cluster)],
        "Meta": {"biomarker": manifest.name, "variant": variant, "version": release.version,
                 "digest": release.digest, "attestation_digest": release.attestation_digest, "track": track},
    }
    if manifest.service is None:
        job["ParameterizedJob"] = {"Payload": "forbidden", "MetaRequired": list(DISPATCH_META),
                                   "MetaOptional": ["cohort"]}
    job["Meta"][SPEC_HASH] = spec_hash(job)
    return job


def _group(manifest: Biomarker, variant: str, release: Release, ident: str, cluster: ClusterSettings) -> dict[str, Any]:
    """One task group: a batch run fails rather than retry in place; a service gets its port, check and canaries."""
    group: dict[str, Any] = {"Name": variant, "Count": 1, "Tasks": [_task(manifest, variant, release, ident)]}
    if manifest.service is None:
        # Neither restarted nor rescheduled: a re-run would write into an output folder the ledger already judged.
        group["RestartPolicy"] = {"Attempts": 0, "Mode": "fail"}
        group["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    else:
        group.update(_service_group(ident, manifest.service, cluster), Count=cluster.service_count)
    return group


def spec_hash(job: dict[str, Any]) -> str:
    """A short digest of everything we put in a job, so an unchanged spec is recognised on re-runs."""
    meta = {k: v for k, v in (job.get("Meta") or {}).items() if k != SPEC_HASH}
    text = json.dumps({**job, "Meta": meta}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _task(manifest: Biomarker, variant: str, release: Release, ident: str) -> dict[str, Any]:
    """The container contract as a Nomad docker task: per-dispatch binds through `${NOMAD_META_*}`."""
    spec = manifest.variants[variant]
    identity = contract.Identity(manifest.name, release.version, variant, release.reference, release.digest)
    config: dict[str, Any] = {
        "image": f"{release.image}@{release.digest}",
        "command": spec.command[0], "args": list(spec.command[1:]),
        # The password reaches the driver through the template's env file, never through the spec.
        "auth": [{"username": "${REGISTRY_USERNAME}", "password": "${REGISTRY_PASSWORD}",
                  "server_address": release.registry}],
    }
    if manifest.service is not None:
        config["ports"] = [PORT_LABEL]
        env = contract.environment(identity, port=f"${{NOMAD_PORT_{PORT_LABEL}}}", data=False)
    else:
        config["mount"] = [_docker_mount(m) for m in contract.data_mounts(META_STUDY, META_OUTPUT)]
        env = contract.environment(identity, execution_id=META_EXECUTION_ID)
    return {
        "Name": "main", "Driver": "docker", "Config": config, "Env": env, "User": contract.RUN_USER,
        "Resources": _resources(contract.Limits(spec.resources.cpu_mhz, spec.resources.memory_mb, spec.resources.gpu)),
        "Templates": [{"EmbeddedTmpl": _auth_template(registry_auth_path(ident)),
                       "DestPath": "secrets/registry.env", "Envvars": True, "ChangeMode": "restart"}],
        "KillTimeout": 30 * NS,
        "Meta": {"timeout_s": str(duration_seconds(spec.timeout))},
    }


def _resources(limits: contract.Limits) -> dict[str, Any]:
    """Nomad reserves the manifest's MHz and MiB as they are; GPUs are `nvidia/gpu` devices."""
    resources: dict[str, Any] = {"CPU": limits.cpu_mhz, "MemoryMB": limits.memory_mb}
    if limits.gpu:
        resources["Devices"] = [{"Name": "nvidia/gpu", "Count": limits.gpu}]
    return resources


def _docker_mount(mount: contract.DataMount) -> dict[str, Any]:
    """One entry of the docker driver's `mount` list (needs `volumes.enabled` on the clients for binds)."""
    return {"type": "bind", "source": mount.source, "target": mount.target, "readonly": mount.read_only}


def _auth_template(variable: str) -> str:
    """Nomad template reading registry credentials from a Variable (the path is validated, not user text)."""
    if not re.fullmatch(r"[A-Za-z0-9/_.-]+", variable):
        raise DeliveryError(f"registry auth variable path {variable!r} has characters Nomad paths do not allow")
    return (f'{{{{ with nomadVar "{variable}" }}}}REGISTRY_USERNAME={{{{ .username }}}}\n'
            "REGISTRY_PASSWORD={{ .password }}\n{{ end }}")


def _service_group(ident: str, service: Service, cluster: ClusterSettings) -> dict[str, Any]:
    """A service's group: a dynamic port mapped to the manifest's port, a health check on it, and canaries."""
    check = {"Name": PORT_LABEL, "Type": "http", "Path": service.health_path, "PortLabel": PORT_LABEL,
             "Interval": cluster.check_interval_s * NS, "Timeout": cluster.check_timeout_s * NS}
    return {
        "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": PORT_LABEL, "To": service.port}]}],
        "Services": [{"Name": ident, "PortLabel": PORT_LABEL, "Provider": "nomad", "Checks": [check]}],
        "Update": _update_block(cluster),
    }


def _update_block(cluster: ClusterSettings) -> dict[str, Any]:
    return {"MaxParallel": 1, "Canary": cluster.canaries, "AutoRevert": True, "AutoPromote": False,
            "HealthCheck": "checks", "MinHealthyTime": cluster.min_healthy_s * NS,
            "HealthyDeadline": cluster.healthy_deadline_s * NS, "ProgressDeadline": cluster.progress_deadline_s * NS}
