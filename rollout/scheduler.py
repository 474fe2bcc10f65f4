"""The `rollout.scheduler` plugin interface: where job versions live (Nomad, or a local record)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from rollout.nomad import Blocking, Deployment, JobView, NomadConflict, RegisterResult, _job_view


class Scheduler(Protocol):
    """What the controller needs from a scheduler; `rollout.nomad.NomadClient` is the production one."""

    def job(self, job_id: str, *, index: int = 0, wait: float | None = None) -> Blocking[JobView | None]: ...

    def versions(self, job_id: str) -> tuple[JobView, ...]: ...

    def register(self, spec: dict[str, Any], *, enforce_index: int) -> RegisterResult: ...

    def revert(self, job_id: str, version: int, *, enforce_prior_version: int) -> RegisterResult: ...

    def mark_stable(self, job_id: str, version: int) -> None: ...

    def deregister(self, job_id: str) -> None: ...

    def deployments(self, job_id: str) -> tuple[Deployment, ...]: ...

    def latest_deployment(self, job_id: str, *, index: int = 0,
                          wait: float | None = None) -> Blocking[Deployment | None]: ...


class LocalScheduler:
    """Embedded default: records the batch tracks' job versions in a JSON file; runs nothing itself.

    Executions on the local Docker engine come from the execution issue (8); this keeps the versions,
    revert and stable semantics of Nomad so the same controller drives both. No deployments (batch only).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        if not self.path.exists():
            return {}
        data: dict[str, list[dict[str, Any]]] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        tmp.replace(self.path)

    def job(self, job_id: str, *, index: int = 0, wait: float | None = None) -> Blocking[JobView | None]:
        """The newest version of a track."""
        versions = self._load().get(job_id) or []
        return Blocking(_job_view(versions[-1]) if versions else None, len(versions))

    def versions(self, job_id: str) -> tuple[JobView, ...]:
        """Every version, newest first."""
        return tuple(_job_view(v) for v in reversed(self._load().get(job_id) or []))

    def register(self, spec: dict[str, Any], *, enforce_index: int) -> RegisterResult:
        """Append a version when the spec changed, with Nomad's EnforceIndex semantics."""
        with self._lock:
            data = self._load()
            versions = data.setdefault(spec["ID"], [])
            current = versions[-1] if versions else None
            if (current["JobModifyIndex"] if current else 0) != enforce_index:
                raise NomadConflict(f"local job {spec['ID']} changed since it was read")
            new = {**spec, "Stop": bool(spec.get("Stop"))}  # stored normalised, so compare normalised
            if current is None or _body(current) != _body(new):
                n = len(versions)
                versions.append({**new, "Version": n, "Stable": False, "JobModifyIndex": n + 1, "ModifyIndex": n + 1})
                self._save(data)
            return RegisterResult("", versions[-1]["JobModifyIndex"], len(versions))

    def revert(self, job_id: str, version: int, *, enforce_prior_version: int) -> RegisterResult:
        """A new version from an old one's spec."""
        versions = self._load().get(job_id) or []
        if not versions or versions[-1]["Version"] != enforce_prior_version:
            raise NomadConflict(f"local job {job_id} moved on")
        return self.register(_body(versions[version]), enforce_index=versions[-1]["JobModifyIndex"])

    def mark_stable(self, job_id: str, version: int) -> None:
        """Mark one version stable."""
        with self._lock:
            data = self._load()
            data[job_id][version]["Stable"] = True
            self._save(data)

    def deregister(self, job_id: str) -> None:
        """Stop a track (a new version with Stop=true, like Nomad)."""
        current = self.job(job_id).value
        if current is not None and not current.stop:
            self.register({**_body(current.as_dict()), "Stop": True}, enforce_index=current.job_modify_index)

    def deployments(self, job_id: str) -> tuple[Deployment, ...]:
        """Batch tracks have no deployments."""
        return ()

    def latest_deployment(self, job_id: str, *, index: int = 0,
                          wait: float | None = None) -> Blocking[Deployment | None]:
        """Batch tracks have no deployments."""
        return Blocking(None, 0)


def _body(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in {"Version", "Stable", "JobModifyIndex", "ModifyIndex"}}
