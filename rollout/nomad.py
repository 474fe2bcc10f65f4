"""Nomad adapter: python-nomad where it works, raw HTTP for blocking queries and dispatch idempotency.

Results are our own frozen value types; errors are `NomadError` subclasses classified by status code.
Nomad answers compare-and-set failures (EnforceIndex, EnforcePriorVersion, writes on a terminal deployment)
with a plain 500, so those are told apart by the documented message prefixes, exactly as the Nomad CLI's
`-check-index` does (reference/nomad-api.md §1.1, §5) — the one place where text is inspected.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import nomad
import requests
from nomad.api import exceptions as nomad_exc

from delivery.errors import ExternalServiceError
from delivery.secrets import Secret, from_env

T = TypeVar("T")
Json = dict[str, Any]
_CONFLICT_PREFIXES = ("Enforcing job modify index", "Current job has version", "can't promote terminal",
                      "can't fail terminal", "can't pause terminal", "can't resume terminal",
                      "can't set health of allocations for a terminal", "can't revert to current version")


class NomadError(ExternalServiceError):
    """Nomad refused or failed a request."""

    service = "Nomad"
    retryable = False


class NomadBadRequest(NomadError):
    """400: the request itself is malformed (a bug on our side)."""


class NomadUnauthorized(NomadError):
    """403: the ACL token is missing, unknown or lacks a capability."""


class NomadNotFound(NomadError):
    """404: the job, deployment or variable does not exist."""


class NomadConflict(NomadError):
    """A compare-and-set write lost a race (EnforceIndex, cas, prior version, terminal deployment)."""


class NomadUnavailable(NomadError):
    """5xx or transport failure/timeout; safe to retry where the call is idempotent."""

    retryable = True


@dataclass(frozen=True)
class NomadSettings:
    """Where and how to reach Nomad; token never printed."""

    address: str
    token: Secret | None = None
    namespace: str = "default"
    region: str | None = None
    verify: bool | str = True
    timeout: float = 10.0

    @classmethod
    def from_env(cls, address: str | None = None, *, namespace: str | None = None,
                 region: str | None = None) -> NomadSettings:
        """Flags win over `NOMAD_ADDR`, `NOMAD_TOKEN`(`_FILE`), `NOMAD_NAMESPACE`, `NOMAD_REGION`, `NOMAD_CACERT`."""
        addr = address or os.environ.get("NOMAD_ADDR") or "http://127.0.0.1:4646"
        verify: bool | str = os.environ.get("NOMAD_CACERT") or True
        if os.environ.get("NOMAD_SKIP_VERIFY", "").lower() in {"1", "true"}:
            verify = False
        return cls(address=addr.rstrip("/"), token=from_env("NOMAD_TOKEN", required=False),
                   namespace=namespace or os.environ.get("NOMAD_NAMESPACE") or "default",
                   region=region or os.environ.get("NOMAD_REGION") or None, verify=verify)


@dataclass(frozen=True)
class Blocking(Generic[T]):
    """A read and the `X-Nomad-Index` to pass to the next blocking query."""

    value: T
    index: int


@dataclass(frozen=True)
class JobView:
    """One job version as Nomad returns it; `spec` is the canonical JSON text."""

    id: str
    type: str
    version: int
    stable: bool
    stop: bool
    job_modify_index: int
    modify_index: int
    meta: tuple[tuple[str, str], ...]
    spec: str = field(repr=False)

    def meta_value(self, key: str) -> str | None:
        """One `Meta` entry."""
        return dict(self.meta).get(key)

    def as_dict(self) -> Json:
        """The job JSON (a fresh copy each call)."""
        data: Json = json.loads(self.spec)
        return data


@dataclass(frozen=True)
class RegisterResult:
    eval_id: str
    job_modify_index: int
    index: int


@dataclass(frozen=True)
class DeploymentGroup:
    name: str
    auto_revert: bool
    promoted: bool
    desired_canaries: int
    desired_total: int
    placed_canaries: int
    placed: int
    healthy: int
    unhealthy: int
    require_progress_by: str | None


@dataclass(frozen=True)
class Deployment:
    id: str
    job_id: str
    job_version: int
    status: str
    description: str
    groups: tuple[DeploymentGroup, ...]
    create_index: int
    modify_index: int

    @property
    def terminal(self) -> bool:
        """successful, failed or cancelled."""
        return self.status in {"successful", "failed", "cancelled"}


@dataclass(frozen=True)
class Allocation:
    id: str
    job_id: str
    job_version: int
    task_group: str
    node_id: str
    client_status: str
    desired_status: str
    healthy: bool | None
    canary: bool


@dataclass(frozen=True)
class Plan:
    job_modify_index: int
    diff_type: str
    failed_groups: tuple[str, ...]


@dataclass(frozen=True)
class Dispatched:
    job_id: str
    eval_id: str
    index: int


@dataclass(frozen=True)
class Variable:
    path: str
    items: tuple[tuple[str, str], ...]
    modify_index: int

    def get(self, key: str) -> str | None:
        """One item of the variable."""
        return dict(self.items).get(key)


def classify(status: int, text: str) -> NomadError:
    """Our error for a Nomad HTTP status and plain-text body."""
    message = f"Nomad answered {status}: {text.strip()[:500]}"
    if status == 400:
        return NomadBadRequest(message, status=status, hint="This is a bug in the request; report it.")
    if status == 403:
        return NomadUnauthorized(message, status=status,
                                 hint="Check NOMAD_TOKEN and that its policy grants this capability.")
    if status == 404:
        return NomadNotFound(message, status=status)
    if status == 409 or (status == 500 and text.startswith(_CONFLICT_PREFIXES)):
        return NomadConflict(message, status=status, hint="Someone else changed it; read again and retry.")
    if status >= 500:
        return NomadUnavailable(message, status=status, hint="Nomad is failing; retry later.")
    return NomadError(message, status=status)


class NomadClient:
    """Typed client of the Nomad HTTP API used by the rollout controller."""

    def __init__(self, settings: NomadSettings, *, attempts: int = 4, backoff: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.attempts, self.backoff, self._sleep = attempts, backoff, sleep
        self.session = requests.Session()
        self.session.verify = settings.verify
        token = settings.token.reveal() if settings.token else None
        self.api = nomad.Nomad(address=settings.address, token=token, namespace=settings.namespace,
                               region=settings.region, verify=settings.verify, timeout=settings.timeout,
                               session=self.session)

    # ---------------------------------------------------------------- plumbing
    def _call(self, what: str, fn: Callable[[], T], *, retry: bool) -> T:
        """Run one request; retry with jittered backoff only when `retry` says the call is idempotent."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except nomad_exc.BaseNomadException as e:
                error = self._translate(what, e.nomad_resp)
                cause: Exception = e
            except requests.RequestException as e:  # TimeoutNomadException is one of these
                error = NomadUnavailable(f"{what}: cannot reach Nomad at {self.settings.address}: {type(e).__name__}",
                                         hint="Check NOMAD_ADDR and the network; retry later.")
                cause = e
            if not (retry and error.retryable) or attempt == self.attempts - 1:
                raise error from cause
            self._sleep(self.backoff * (2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter only
        raise AssertionError("unreachable")

    def _translate(self, what: str, resp: object) -> NomadError:
        if isinstance(resp, requests.Response):
            error = classify(resp.status_code, resp.text)
            error.message = f"{what}: {error.message}"
            return error
        return NomadUnavailable(f"{what}: cannot reach Nomad at {self.settings.address}: {type(resp).__name__}",
                                hint="Check NOMAD_ADDR and the network; retry later.")

    def _raw(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Json | None = None,
             timeout: float | None = None) -> requests.Response:
        headers = {"X-Nomad-Token": self.settings.token.reveal()} if self.settings.token else {}
        query = {"namespace": self.settings.namespace, **(params or {})}
        if self.settings.region:
            query["region"] = self.settings.region
        resp = self.session.request(method, f"{self.settings.address}/v1/{path}", params=query, json=body,
                                    headers=headers, timeout=timeout or self.settings.timeout)
        if not resp.ok:
            raise nomad_exc.BaseNomadException(resp)
        return resp

    def _blocking(self, what: str, path: str, index: int, wait: float | None,
                  query: Json | None = None) -> Blocking[Any]:
        params: Json = dict(query or {})
        timeout = self.settings.timeout
        if index and wait:
            params.update(index=index, wait=f"{int(wait * 1000)}ms")
            timeout += wait * 1.1
        resp = self._call(what, lambda: self._raw("GET", path, params=params, timeout=timeout), retry=True)
        return Blocking(resp.json(), int(resp.headers.get("X-Nomad-Index", "0")))

    # ---------------------------------------------------------------- jobs
    def job(self, job_id: str, *, index: int = 0, wait: float | None = None) -> Blocking[JobView | None]:
        """The current version of a job (None when absent); blocks while `index` is current.

        Raises:
            NomadError: Nomad failed after retries or refused the token.
        """
        try:
            got = self._blocking(f"read job {job_id}", f"job/{job_id}", index, wait)
        except NomadNotFound:
            return Blocking(None, 0)
        return Blocking(_job_view(got.value), got.index)

    def versions(self, job_id: str) -> tuple[JobView, ...]:
        """Every retained version, newest first (empty when the job does not exist).

        Raises:
            NomadError: Nomad failed after retries.
        """
        try:
            data = self._call(f"read versions of {job_id}", lambda: self.api.job.get_versions(job_id), retry=True)
        except NomadNotFound:
            return ()
        return tuple(_job_view(v) for v in data["Versions"])

    def register(self, spec: Json, *, enforce_index: int) -> RegisterResult:
        """Register a job only if its JobModifyIndex is still `enforce_index` (0: only if absent).

        Raises:
            NomadConflict: someone registered in between (no version was created by this call).
            NomadError: Nomad failed after retries; a retried attempt can never add a second version.
        """
        body = {"Job": spec, "EnforceIndex": True, "JobModifyIndex": enforce_index}
        data = self._call(f"register job {spec['ID']}", lambda: self.api.job.register_job(spec["ID"], body),
                          retry=True)
        return RegisterResult(data["EvalID"], int(data["JobModifyIndex"]), int(data["Index"]))

    def revert(self, job_id: str, version: int, *, enforce_prior_version: int) -> RegisterResult:
        """Register version `version`'s spec as a new version, if the current version is still the one seen.

        Raises:
            NomadConflict: the job moved on since it was read.
            NomadError: Nomad failed after retries.
        """
        data = self._call(f"revert {job_id} to version {version}",
                          lambda: self.api.job.revert_job(job_id, version, enforce_prior_version), retry=True)
        return RegisterResult(data["EvalID"], int(data["JobModifyIndex"]), int(data["Index"]))

    def mark_stable(self, job_id: str, version: int) -> None:
        """Mark a version stable (idempotent).

        Raises:
            NomadError: unknown version or Nomad failed after retries.
        """
        self._call(f"mark {job_id} v{version} stable", lambda: self.api.job.stable_job(job_id, version, True),
                   retry=True)

    def plan(self, spec: Json) -> Plan:
        """Dry-run a registration: diff type, the JobModifyIndex to enforce, groups that cannot be placed.

        Raises:
            NomadError: invalid job or Nomad failed after retries.
        """
        data = self._call(f"plan job {spec['ID']}",
                          lambda: self.api.job.plan_job(spec["ID"], {"Job": spec}, diff=True), retry=True)
        failed = tuple(sorted((data.get("FailedTGAllocs") or {}).keys()))
        return Plan(int(data["JobModifyIndex"]), str((data.get("Diff") or {}).get("Type", "")), failed)

    def deregister(self, job_id: str) -> None:
        """Stop a job (keeps its history; idempotent).

        Raises:
            NomadError: Nomad failed after retries.
        """
        self._call(f"stop job {job_id}", lambda: self.api.job.deregister_job(job_id), retry=True)

    def dispatch(self, job_id: str, *, meta: Mapping[str, str], idempotency_token: str) -> Dispatched:
        """Dispatch a parameterized job; the token makes retries return the same child.

        Raises:
            NomadError: Nomad refused the dispatch or failed after retries.
        """
        def call() -> requests.Response:
            return self._raw("POST", f"job/{job_id}/dispatch", params={"idempotency_token": idempotency_token},
                             body={"JobID": job_id, "Meta": dict(meta)})

        data = self._call(f"dispatch {job_id}", call, retry=True).json()
        return Dispatched(data["DispatchedJobID"], data["EvalID"], int(data["Index"]))

    def allocations(self, job_id: str) -> tuple[Allocation, ...]:
        """Allocations of a job, oldest first.

        Raises:
            NomadError: Nomad failed after retries.
        """
        data = self._call(f"list allocations of {job_id}", lambda: self.api.job.get_allocations(job_id), retry=True)
        return tuple(_alloc(a) for a in data)

    # ---------------------------------------------------------------- deployments
    def latest_deployment(self, job_id: str, *, index: int = 0,
                          wait: float | None = None) -> Blocking[Deployment | None]:
        """The job's newest deployment (None for batch jobs), blocking while `index` is current.

        Raises:
            NomadError: Nomad failed after retries.
        """
        got = self._blocking(f"read deployment of {job_id}", f"job/{job_id}/deployment", index, wait)
        return Blocking(_deployment(got.value) if got.value else None, got.index)

    def deployments(self, job_id: str) -> tuple[Deployment, ...]:
        """All deployments of a job, oldest first.

        Raises:
            NomadError: Nomad failed after retries.
        """
        data = self._call(f"list deployments of {job_id}", lambda: self.api.job.get_deployments(job_id), retry=True)
        return tuple(sorted((_deployment(d) for d in data), key=lambda d: d.create_index))

    def promote(self, deployment_id: str) -> None:
        """Promote every canary group.

        Raises:
            NomadConflict: the deployment is already terminal.
            NomadError: canaries unhealthy, or Nomad failed after retries.
        """
        self._call(f"promote deployment {deployment_id}",
                   lambda: self.api.deployment.promote_deployment_all(deployment_id), retry=True)

    def fail(self, deployment_id: str) -> None:
        """Mark a deployment failed (Nomad auto-reverts when the group asks for it).

        Raises:
            NomadConflict: the deployment is already terminal.
            NomadError: Nomad failed after retries.
        """
        self._call(f"fail deployment {deployment_id}", lambda: self.api.deployment.fail_deployment(deployment_id),
                   retry=True)

    def pause(self, deployment_id: str, pause: bool) -> None:
        """Pause or resume a deployment.

        Raises:
            NomadConflict: the deployment is already terminal.
            NomadError: Nomad failed after retries.
        """
        self._call(f"pause deployment {deployment_id}",
                   lambda: self.api.deployment.pause_deployment(deployment_id, pause), retry=True)

    # ---------------------------------------------------------------- variables
    def variable(self, path: str, *, index: int = 0, wait: float | None = None) -> Blocking[Variable | None]:
        """A Nomad Variable (None when absent).

        Raises:
            NomadError: Nomad failed after retries.
        """
        try:
            got = self._blocking(f"read variable {path}", f"var/{path}", index, wait)
        except NomadNotFound:
            return Blocking(None, 0)
        return Blocking(_variable(got.value), got.index)

    def put_variable(self, path: str, items: Mapping[str, str], *, cas: int) -> Variable:
        """Write a Variable only if its ModifyIndex is still `cas` (0: only if absent).

        Raises:
            NomadConflict: someone wrote in between.
            NomadError: Nomad failed after retries.
        """
        body = {"Namespace": self.settings.namespace, "Path": path, "Items": dict(items)}
        data = self._call(f"write variable {path}",
                          lambda: self.api.variable.create_variable(path, body, cas=cas), retry=True)
        return _variable(data)

    def variables_index(self, prefix: str, *, index: int = 0, wait: float | None = None) -> int:
        """The index of the Variables under `prefix`; blocks while `index` is current (a write there wakes it).

        Raises:
            NomadError: Nomad failed after retries.
        """
        return self._blocking(f"watch variables {prefix}", "vars", index, wait, {"prefix": prefix}).index

    def variable_paths(self, prefix: str) -> tuple[str, ...]:
        """Paths of the Variables under `prefix`.

        Raises:
            NomadError: Nomad failed after retries.
        """
        resp = self._call(f"list variables {prefix}", lambda: self._raw("GET", "vars", params={"prefix": prefix}),
                          retry=True)
        return tuple(str(v["Path"]) for v in resp.json())

    # ---------------------------------------------------------------- ACL policies and namespaces
    def acl_policy(self, name: str) -> AclPolicy | None:
        """An ACL policy (None when absent); Nomad lets only a management token read any policy.

        Raises:
            NomadUnauthorized: the token is not a management token (or unknown).
            NomadError: Nomad failed after retries.
        """
        try:
            resp = self._call(f"read ACL policy {name}", lambda: self._raw("GET", f"acl/policy/{name}"), retry=True)
        except NomadNotFound:
            return None
        return _acl_policy(resp.json())

    def put_acl_policy(self, policy: AclPolicy) -> None:
        """Create or replace an ACL policy (`POST /v1/acl/policy/:name`, idempotent).

        Raises:
            NomadBadRequest: Nomad refused the policy (its text says why, e.g. rules that do not parse).
            NomadUnauthorized: the token is not a management token.
            NomadError: Nomad failed after retries.
        """
        body: Json = {"Name": policy.name, "Description": policy.description, "Rules": policy.rules}
        if policy.job_acl:
            body["JobACL"] = dict(policy.job_acl)
        self._call(f"write ACL policy {policy.name}",
                   lambda: self._raw("POST", f"acl/policy/{policy.name}", body=body), retry=True)

    def delete_acl_policy(self, name: str) -> None:
        """Delete an ACL policy.

        Raises:
            NomadUnauthorized: the token is not a management token.
            NomadError: Nomad failed after retries.
        """
        self._call(f"delete ACL policy {name}", lambda: self._raw("DELETE", f"acl/policy/{name}"), retry=True)

    def namespace(self, name: str) -> NamespaceView | None:
        """A namespace (None when absent).

        Raises:
            NomadError: Nomad refused the token or failed after retries.
        """
        try:
            resp = self._call(f"read namespace {name}", lambda: self._raw("GET", f"namespace/{name}"), retry=True)
        except NomadNotFound:
            return None
        data = resp.json()
        return NamespaceView(name=str(data["Name"]), description=str(data.get("Description") or ""),
                             modify_index=int(data.get("ModifyIndex", 0)))

    def put_namespace(self, name: str, description: str) -> None:
        """Create or replace a namespace (`POST /v1/namespace/:name`; replaces every field, so create only).

        Raises:
            NomadUnauthorized: the token is not a management token.
            NomadError: Nomad refused it or failed after retries.
        """
        body: Json = {"Name": name, "Description": description}
        self._call(f"write namespace {name}", lambda: self._raw("POST", f"namespace/{name}", body=body), retry=True)


@dataclass(frozen=True)
class AclPolicy:
    """A Nomad ACL policy as the ACL API holds it; `job_acl` binds it to a job's workload identity."""

    name: str
    description: str
    rules: str
    job_acl: tuple[tuple[str, str], ...] = ()
    modify_index: int = 0

    def same_as(self, other: AclPolicy) -> bool:
        """Equal in everything a write would set (indexes aside)."""
        return (self.description, self.rules, self.job_acl) == (other.description, other.rules, other.job_acl)


@dataclass(frozen=True)
class NamespaceView:
    name: str
    description: str
    modify_index: int = 0


def _acl_policy(data: Json) -> AclPolicy:
    job_acl = data.get("JobACL") or {}
    return AclPolicy(name=str(data["Name"]), description=str(data.get("Description") or ""),
                     rules=str(data.get("Rules") or ""),
                     job_acl=tuple(sorted((str(k), str(v)) for k, v in job_acl.items() if v)),
                     modify_index=int(data.get("ModifyIndex", 0)))


def _job_view(data: Json) -> JobView:
    meta = data.get("Meta") or {}
    return JobView(id=data["ID"], type=data.get("Type", "service"), version=int(data.get("Version", 0)),
                   stable=bool(data.get("Stable")), stop=bool(data.get("Stop")),
                   job_modify_index=int(data.get("JobModifyIndex", 0)), modify_index=int(data.get("ModifyIndex", 0)),
                   meta=tuple(sorted((str(k), str(v)) for k, v in meta.items())),
                   spec=json.dumps(data, sort_keys=True))


def _deployment(data: Json) -> Deployment:
    groups = tuple(
        DeploymentGroup(name=name, auto_revert=bool(g.get("AutoRevert")), promoted=bool(g.get("Promoted")),
                        desired_canaries=int(g.get("DesiredCanaries", 0)), desired_total=int(g.get("DesiredTotal", 0)),
                        placed_canaries=len(g.get("PlacedCanaries") or []), placed=int(g.get("PlacedAllocs", 0)),
                        healthy=int(g.get("HealthyAllocs", 0)), unhealthy=int(g.get("UnhealthyAllocs", 0)),
                        require_progress_by=g.get("RequireProgressBy"))
        for name, g in sorted((data.get("TaskGroups") or {}).items()))
    return Deployment(id=data["ID"], job_id=data["JobID"], job_version=int(data["JobVersion"]),
                      status=data["Status"], description=data.get("StatusDescription", ""), groups=groups,
                      create_index=int(data.get("CreateIndex", 0)), modify_index=int(data.get("ModifyIndex", 0)))


def _alloc(data: Json) -> Allocation:
    status = data.get("DeploymentStatus") or {}
    return Allocation(id=data["ID"], job_id=data["JobID"], job_version=int(data.get("JobVersion", 0)),
                      task_group=data.get("TaskGroup", ""), node_id=data.get("NodeID", ""),
                      client_status=data.get("ClientStatus", ""), desired_status=data.get("DesiredStatus", ""),
                      healthy=status.get("Healthy"), canary=bool(status.get("Canary")))


def _variable(data: Json) -> Variable:
    items = data.get("Items") or {}
    return Variable(path=data["Path"], items=tuple(sorted((str(k), str(v)) for k, v in items.items())),
                    modify_index=int(data.get("ModifyIndex", 0)))
