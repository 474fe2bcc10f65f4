"""A stateful fake of the Nomad HTTP API on a loopback port, faithful to `reference/nomad-api.md` §10.

It models what the rollout controller relies on: job versions, EnforceIndex compare-and-set, revert/stable,
plan, deregister, parameterized dispatch with idempotency tokens, evaluations, allocations, service
deployments with canaries/promotion/auto-revert, Variables with `cas`, blocking queries, ACL tokens and
Nomad's status codes with plain-text errors. Scheduling is synchronous (an eval completes inside the write
that created it); test hooks drive allocation health, batch outcomes, node loss/drain, GPU capacity,
the fake's own clock (progress deadlines) and injected HTTP failures/delays.

Deliberate simplifications (documented in docs/rollout.md): CPU/memory are not bin-packed (only GPUs are);
an unhealthy allocation counts as "reschedules exhausted"; the reconciler handles one rollout concern at
a time per group; body keys are matched case-insensitively on the request wrapper, not inside `Job`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support import fake_nomad_acl, nomad_openapi

Json = dict[str, Any]
NS = 1_000_000_000
MAX_BLOCK_S = 300.0
MAX_PAYLOAD = 16384
TRACKED_VERSIONS = 6
SPEC_IGNORED = {"Status", "StatusDescription", "Stable", "Version", "CreateIndex", "ModifyIndex",
                "JobModifyIndex", "SubmitTime", "VersionTag"}
DEFAULT_UPDATE: Json = {"Stagger": 30 * NS, "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * NS,
                        "HealthyDeadline": 300 * NS, "ProgressDeadline": 600 * NS, "AutoRevert": False,
                        "AutoPromote": False, "Canary": 0}
ENFORCE = "Enforcing job modify index"
TERMINAL_DEPLOY = {"successful", "failed", "cancelled"}
TERMINAL_ALLOC = {"complete", "failed", "lost"}
ALL_CAPS = frozenset({"list-jobs", "read-job", "submit-job", "dispatch-job", "revert-job", "stable-job",
                      "plan-job", "promote-deployment", "fail-deployment", "pause-deployment", "deregister-job",
                      "variables-read", "variables-write"})


class HTTPError(Exception):
    """A Nomad error response: status code plus the exact plain-text body."""

    def __init__(self, status: int, text: str, body: Json | None = None) -> None:
        super().__init__(text)
        self.status, self.text, self.body = status, text, body


def multierror(*errors: str) -> str:
    """Nomad's go-multierror text, which the server returns verbatim for validation failures."""
    noun = "error" if len(errors) == 1 else "errors"
    items = "".join(f"\t* {e}\n" for e in errors)
    return f"{len(errors)} {noun} occurred:\n{items}\n"


def parse_duration(text: str) -> float:
    """A Go duration (`30s`, `5m`, `1m30s`, `250ms`) in seconds; ValueError when malformed."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    return sum(float(n) * units[u] for n, u in parts)


def _ci(body: Json, key: str, default: Any = None) -> Any:
    """Go's encoding/json matches struct keys case-insensitively."""
    for k, v in body.items():
        if k.lower() == key.lower():
            return v
    return default


def _typed(body: Json, key: str, kind: type | tuple[type, ...], go: str) -> Any:
    value = _ci(body, key)
    if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
        raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into Go struct field .{key} of type {go}")
    return value


def _spec(job: Json) -> Json:
    return {k: v for k, v in job.items() if k not in SPEC_IGNORED and not k.startswith("_")}


def _tasks_part(job: Json, group: Json) -> Any:
    """What `tasksUpdated` compares: everything but Count/Update/Scaling, plus the job's Meta."""
    return ({k: v for k, v in group.items() if k not in {"Count", "Update", "Scaling"}}, job.get("Meta"))


Route = tuple[Callable[..., Any], set[str], str, Callable[[], int] | None]


@dataclass
class Injection:
    method: str
    path: re.Pattern[str]
    status: int
    text: str
    times: int
    apply: bool
    delay: float


@dataclass
class Node:
    id: str
    name: str
    node_class: str
    gpus: int
    status: str = "ready"
    eligible: bool = True
    drain: bool = False
    attributes: dict[str, str] = field(default_factory=dict)  # `${attr.*}`, e.g. {"kernel.name": "linux"}
    meta: dict[str, str] = field(default_factory=dict)  # `${meta.*}`
    datacenter: str = "dc1"


class AllocDriver(Protocol):
    """Runs placed allocations for real (tests/support/nomad_docker.py); every call is made under `fake.cond`."""

    def attach(self, fake: FakeNomad) -> None: ...

    def place(self, alloc: Json, job: Json, group: Json, node: Node) -> None: ...

    def release(self, alloc_id: str) -> None: ...

    def close(self) -> None: ...


@dataclass
class State:
    index: int = 10
    jobs: dict[str, Json] = field(default_factory=dict)
    versions: dict[str, list[Json]] = field(default_factory=dict)
    evals: dict[str, Json] = field(default_factory=dict)
    allocs: dict[str, Json] = field(default_factory=dict)
    deployments: dict[str, Json] = field(default_factory=dict)
    variables: dict[str, Json] = field(default_factory=dict)
    tables: dict[str, int] = field(default_factory=dict)


class FakeNomad:
    """The fake cluster; `with FakeNomad() as fake:` serves it at `fake.address`."""

    def __init__(self, *, tokens: dict[str, frozenset[str] | None] | None = None, region: str = "global",
                 nodes: list[Node] | None = None, default_health: bool | None = True,
                 driver: AllocDriver | None = None) -> None:
        """`driver`: run allocations as real containers (`nomad_docker.DockerDriver`); health then comes from the
        tasks and checks, not from `default_health`/`image_health`/`batch_outcome`, and the clock runs in real
        time (times the driver's `speed`)."""
        self.tokens = tokens
        self.region = region
        self.state = State()
        self.cond = threading.Condition()
        self.nodes = {n.id: n for n in (nodes or default_nodes())}
        self.image_health: dict[str, bool | None] = {}
        self.default_health = default_health
        self.batch_outcome: dict[str, str] = {}
        self.reject_job_registration = False
        self.driver = driver
        self._now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) if driver is None else datetime.now(UTC)
        self._t0 = time.monotonic()
        self.injections: list[Injection] = []
        self.request_log: list[tuple[str, str]] = []
        self.conformance, self.conformance_problems = True, list[str]()  # see `handle`: Nomad's OpenAPI document
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def now(self) -> datetime:
        """The cluster clock: fixed until `advance` without a driver, real time (times `speed`) with one."""
        if self.driver is None:
            return self._now
        elapsed = (time.monotonic() - self._t0) * float(getattr(self.driver, "speed", 1.0))
        return self._now + timedelta(seconds=elapsed)

    @now.setter
    def now(self, value: datetime) -> None:
        self._now += value - self.now

    # ---------------------------------------------------------------- server lifecycle
    def __enter__(self) -> FakeNomad:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            nomad = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        if self.driver is not None:
            self.driver.attach(self)
            threading.Thread(target=self._tick, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            with self.cond:
                self.cond.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.driver is not None:
            self.driver.close()  # removes every container this fake started
        if self.conformance_problems:
            problems, self.conformance_problems = self.conformance_problems, []
            raise AssertionError(nomad_openapi.report(problems))

    def _tick(self) -> None:
        """Real-time clock (driver mode): deployment progress deadlines fire without `advance`."""
        while self._server is not None:
            time.sleep(0.2)
            with self.cond:
                before = [d["Status"] for d in self.state.deployments.values()]
                for dep in list(self.state.deployments.values()):
                    self._check_deadline(dep)
                if before != [d["Status"] for d in self.state.deployments.values()]:
                    self._commit("allocs", "deployments", "jobs")

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---------------------------------------------------------------- test hooks
    def inject(self, method: str, path: str, *, status: int = 500, text: str = "rpc error: injected",
               times: int = 1, apply: bool = False, delay: float = 0.0) -> None:
        """Make the next `times` requests matching METHOD and a path regex fail (after applying, if `apply`)."""
        with self.cond:
            self.injections.append(Injection(method, re.compile(path), status, text, times, apply, delay))

    def set_alloc_health(self, alloc_id: str, healthy: bool) -> None:
        """What the Nomad client reports after MinHealthyTime (or a failing task)."""
        with self.cond:
            self._set_health(self.state.allocs[alloc_id], healthy)
            self._commit("allocs", "deployments", "jobs")

    def finish_alloc(self, alloc_id: str, status: str = "complete") -> None:
        """A batch allocation's tasks ended (`complete` or `failed`)."""
        with self.cond:
            alloc = self.state.allocs[alloc_id]
            alloc["ClientStatus"] = status
            alloc["TaskStates"] = _task_states(alloc, "dead", failed=status == "failed")
            self._touch(alloc)
            self._release(alloc)
            self._commit("allocs", "jobs")

    def add_node(self, node_class: str = "gpu", gpus: int = 1) -> str:
        """Elastic scale-up: a node joins; blocked evaluations are retried."""
        with self.cond:
            node = Node(_uuid(), f"node-{len(self.nodes) + 1}", node_class, gpus)
            self.nodes[node.id] = node
            self._retry_blocked()
            self._commit("allocs", "deployments", "evals", "jobs")
            return node.id

    def lose_node(self, node_id: str) -> None:
        """Missed heartbeats: the node is down, its allocations lost and replaced elsewhere."""
        with self.cond:
            self.nodes[node_id].status = "down"
            self._evacuate(node_id, lost=True)
            self._commit("allocs", "deployments", "evals", "jobs")

    def drain_node(self, node_id: str) -> None:
        """Drain: ineligible node, its allocations migrated (replacement first, then old one completes)."""
        with self.cond:
            node = self.nodes[node_id]
            node.eligible, node.drain = False, True
            self._evacuate(node_id, lost=False)
            self._commit("allocs", "deployments", "evals", "jobs")

    def advance(self, seconds: float) -> None:
        """Move the fake cluster's clock; deployment progress deadlines fire."""
        with self.cond:
            self.now += timedelta(seconds=seconds)
            for dep in list(self.state.deployments.values()):
                self._check_deadline(dep)
            self._commit("allocs", "deployments", "jobs")

    def job_versions(self, job_id: str, namespace: str = "default") -> list[int]:
        """All retained version numbers, oldest first (for assertions)."""
        with self.cond:
            return sorted(v["Version"] for v in self.state.versions.get(_key(namespace, job_id), []))

    def allocs_of(self, job_id: str, *, live: bool = True) -> list[Json]:
        with self.cond:
            return [copy.deepcopy(a) for a in self.state.allocs.values() if a["JobID"] == job_id
                    and (not live or (a["ClientStatus"] not in TERMINAL_ALLOC and a["DesiredStatus"] == "run"))]

    def read_variable(self, path: str, namespace: str = "default") -> Json | None:
        """The stored Variable (a copy), or None."""
        with self.cond:
            return copy.deepcopy(self.state.variables.get(_key(namespace, path)))

    def wait_until(self, predicate: Callable[[], object], timeout: float = 30.0) -> bool:
        """Block until `predicate()` (evaluated under the lock after every change) is truthy, or the timeout passes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def count(self, method: str | None = None, prefix: str = "") -> int:
        return sum(1 for m, p in self.request_log if (method is None or m == method) and p.startswith(prefix))

    # ---------------------------------------------------------------- HTTP entry
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, int]:
        """Serve a request; every request and answer is checked against Nomad's own description (a violation
        answers 500 with the problems and fails the test when the fake stops)."""
        status, payload, index = self._handle(method, raw_path, headers, body)
        problems = nomad_openapi.exchange_problems(method, urlsplit(raw_path).path, body, status, _public(payload)) \
            if self.conformance else []
        if problems:
            with self.cond:
                self.conformance_problems += problems
            return 500, nomad_openapi.report(problems), index
        return status, payload, index

    def _handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, int]:
        url = urlsplit(raw_path)
        path = url.path
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.cond:
            self.request_log.append((method, path))
            injection = self._take_injection(method, path)
        if injection and injection.delay:
            time.sleep(injection.delay)
        if injection and not injection.apply:
            return injection.status, injection.text, self.state.index
        try:
            status, payload, index = self._dispatch(method, path, query, headers, body)
        except HTTPError as e:
            if injection:
                return injection.status, injection.text, self.state.index
            return e.status, e.body if e.body is not None else e.text, self.state.index
        if injection:
            return injection.status, injection.text, index
        return status, payload, index

    def _take_injection(self, method: str, path: str) -> Injection | None:
        for inj in self.injections:
            if inj.method == method and inj.path.search(path) and inj.times > 0:
                inj.times -= 1
                return inj
        return None

    def _dispatch(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes) -> tuple[int, Any, int]:
        route = self._route(method, path)
        if route is None:
            raise HTTPError(404, "Invalid URL")
        handler, allowed, capability, table = route
        if method not in allowed:
            raise HTTPError(405, "Invalid method")
        self._authorize(headers, capability)
        if query.get("region") not in (None, "", self.region):
            raise HTTPError(500, "No path to region")
        if method == "GET":
            return self._blocking(lambda: handler(query, None), table, query)
        optional = method == "DELETE" or path.startswith("/v1/deployment/fail/") or path.endswith("/stop")
        payload = self._body(body, required=not optional)
        with self.cond:
            result = handler(query, payload)
            return 200, result, self.state.index

    def _body(self, body: bytes, *, required: bool) -> Json:
        if not body.strip():
            if required:
                raise HTTPError(400, "Request body is empty")
            return {}
        try:
            data = json.loads(body)
        except json.JSONDecodeError as e:
            raise HTTPError(400, f"invalid character in JSON: {e.msg}") from e
        if not isinstance(data, dict):
            raise HTTPError(400, f"json: cannot unmarshal {type(data).__name__} into Go value of type struct")
        return data

    def _authorize(self, headers: dict[str, str], capability: str) -> None:
        if self.tokens is None:
            return
        token = headers.get("x-nomad-token") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token:
            raise HTTPError(403, "Permission denied")
        if token not in self.tokens:
            raise HTTPError(403, "ACL token not found")
        caps = self.tokens[token]
        if caps is not None and capability not in caps:
            raise HTTPError(403, "Permission denied")

    def _blocking(self, read: Callable[[], tuple[Any, int]], table: Callable[[], int] | None,
                  query: dict[str, str]) -> tuple[int, Any, int]:
        try:
            wanted = int(query.get("index", "0") or "0")
        except ValueError as e:
            raise HTTPError(400, "Invalid index") from e
        try:
            wait = min(parse_duration(query["wait"]) if "wait" in query else MAX_BLOCK_S, MAX_BLOCK_S)
        except ValueError as e:
            raise HTTPError(400, "Invalid wait time") from e
        deadline = time.monotonic() + wait
        with self.cond:
            while wanted and table is not None and table() <= wanted:
                left = deadline - time.monotonic()
                if left <= 0 or self._server is None:
                    break
                self.cond.wait(left)
            payload, index = read()
            return 200, payload, max(index, 1)

    # ---------------------------------------------------------------- routing
    def _route(self, method: str, path: str) -> Route | None:
        get, write = {"GET"}, {"PUT", "POST"}
        t = self._table
        if path.startswith(("/v1/acl/policy/", "/v1/namespace/")):
            return fake_nomad_acl.route(self, method, path)  # ACL policies and namespaces
        if path == "/v1/jobs":
            return (self._list_jobs if method == "GET" else self._register), get | write, \
                "list-jobs" if method == "GET" else "submit-job", t("jobs")
        if path.startswith("/v1/job/"):
            return self._job_route(unquote(path[len("/v1/job/"):]), method)
        if path == "/v1/deployments":
            return self._list_deployments, get, "read-job", t("deployments")
        for prefix, fn, cap in (("/v1/deployment/promote/", self._promote, "promote-deployment"),
                                ("/v1/deployment/fail/", self._fail, "fail-deployment"),
                                ("/v1/deployment/pause/", self._pause, "pause-deployment"),
                                ("/v1/deployment/allocation-health/", self._alloc_health, "promote-deployment")):
            if path.startswith(prefix):
                dep_id = path[len(prefix):]
                return (lambda q, b, d=dep_id, f=fn: f(d, b)), write, cap, None
        if path.startswith("/v1/deployment/allocations/"):
            dep_id = path.rsplit("/", 1)[1]
            return (lambda q, b: (self._deployment_allocs(dep_id), t("allocs")())), get, "read-job", t("allocs")
        if path.startswith("/v1/deployment/"):
            dep_id = path.rsplit("/", 1)[1]
            return (lambda q, b: self._get_deployment(dep_id)), get, "read-job", lambda: self._dep_index(dep_id)
        if path.startswith("/v1/evaluation/"):
            rest = path[len("/v1/evaluation/"):]
            if rest.endswith("/allocations"):
                eid = rest[: -len("/allocations")]
                return (lambda q, b: ([_stub(a) for a in self.state.allocs.values() if a["EvalID"] == eid],
                                      t("allocs")())), get, "read-job", t("allocs")
            return (lambda q, b: self._get_eval(rest)), get, "read-job", t("evals")
        if path.startswith("/v1/allocation/") and path.endswith("/stop"):
            aid = path[len("/v1/allocation/"):-len("/stop")]
            return (lambda q, b: self._stop_alloc_api(aid)), write, "alloc-lifecycle", None
        if path.startswith("/v1/allocation/") and path.endswith("/services"):
            aid = path[len("/v1/allocation/"):-len("/services")]
            return (lambda q, b: (self._registrations(aid), t("allocs")())), get, "read-job", t("allocs")
        if path.startswith("/v1/allocation/"):
            aid = path.rsplit("/", 1)[1]
            return (lambda q, b: self._get_alloc(aid)), get, "read-job", t("allocs")
        if path == "/v1/vars":
            return self._list_vars, get, "variables-read", t("variables")
        if path.startswith("/v1/var/"):
            var = path[len("/v1/var/"):]
            cap = "variables-read" if method == "GET" else "variables-write"
            return ((lambda q, b: self._var(method, var, q, b)), get | write | {"DELETE"}, cap,
                    lambda: self._var_index(var))
        return None

    def _job_route(self, rest: str, method: str) -> Route:
        get, write, t = {"GET"}, {"PUT", "POST"}, self._table
        suffixes: list[tuple[str, Callable[..., Any], set[str], str, str]] = [
            ("/versions", self._versions, get, "read-job", "jobs"),
            ("/revert", self._revert, write, "revert-job", ""),
            ("/stable", self._stable, write, "stable-job", ""),
            ("/plan", self._plan, write, "plan-job", ""),
            ("/dispatch", self._dispatch_job, write, "dispatch-job", ""),
            ("/allocations", self._job_allocs, get, "read-job", "allocs"),
            ("/evaluations", self._job_evals, get, "read-job", "evals"),
            ("/deployments", self._job_deployments, get, "read-job", "deployments"),
            ("/deployment", self._job_latest_deployment, get, "read-job", "deployments"),
            ("/summary", self._summary, get, "read-job", "jobs"),
        ]
        for suffix, fn, methods, cap, table in suffixes:
            if rest.endswith(suffix):
                job_id = rest[: -len(suffix)]
                return (lambda q, b, j=job_id, f=fn: f(j, q, b)), methods, cap, t(table) if table else None
        if method == "DELETE":
            return (lambda q, b: self._deregister(rest, q)), {"DELETE"}, "deregister-job", None
        if method == "GET":
            return (lambda q, b: self._get_job(rest, q)), get | write | {"DELETE"}, "read-job", \
                lambda: self._job_index(rest)
        return (lambda q, b: self._register(q, b, path_id=rest)), write, "submit-job", None

    def _table(self, name: str) -> Callable[[], int]:
        return lambda: self.state.tables.get(name, 1)

    def _commit(self, *tables: str) -> int:
        """Bump the raft index for a write and wake blocking queries."""
        self.state.index += 1
        for t in tables:
            self.state.tables[t] = self.state.index
        self.cond.notify_all()
        return self.state.index

    # ---------------------------------------------------------------- jobs
    def _ns(self, query: dict[str, str], body: Json | None = None, job: Json | None = None) -> str:
        return (query.get("namespace") or (body and _ci(body, "Namespace")) or (job and job.get("Namespace"))
                or "default")

    def _get_job(self, job_id: str, query: dict[str, str]) -> tuple[Json, int]:
        job = self.state.jobs.get(_key(self._ns(query), job_id))
        if job is None:
            raise HTTPError(404, "job not found")
        return self._with_status(job), job["ModifyIndex"]

    def _job_index(self, job_id: str) -> int:
        jobs = [j for k, j in self.state.jobs.items() if k.endswith("\x00" + job_id)]
        return jobs[0]["ModifyIndex"] if jobs else self.state.tables.get("jobs", 1)

    def _list_jobs(self, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        prefix = query.get("prefix", "")
        ns = self._ns(query)
        stubs = [self._job_stub(j) for k, j in sorted(self.state.jobs.items())
                 if j["ID"].startswith(prefix) and (ns == "*" or j["Namespace"] == ns)]
        return stubs, self.state.tables.get("jobs", 1)

    def _job_stub(self, job: Json) -> Json:
        full = self._with_status(job)
        keys = ("ID", "ParentID", "Name", "Namespace", "Datacenters", "Type", "Priority", "Stop", "Status",
                "StatusDescription", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime", "Meta")
        stub = {k: full.get(k) for k in keys}
        stub["Periodic"] = job.get("Periodic") is not None
        stub["ParameterizedJob"] = job.get("ParameterizedJob") is not None
        stub["JobSummary"] = self._summary_of(job)
        return stub

    def _register(self, query: dict[str, str], body: Json, path_id: str | None = None) -> Json:
        job = _ci(body, "Job")
        if not isinstance(job, dict):
            raise HTTPError(400, "Job must be specified")
        if not job.get("ID"):
            raise HTTPError(400, "Job ID hasn't been provided")
        if path_id is not None and path_id != job["ID"]:
            raise HTTPError(400, "Job ID does not match name")
        if self.reject_job_registration:
            raise HTTPError(403, "Job registration, dispatch, and scale are disabled by the scheduler configuration")
        enforce = _typed(body, "EnforceIndex", bool, "bool")
        modify = _typed(body, "JobModifyIndex", int, "uint64") or 0
        job = self._canonicalize(copy.deepcopy(job), self._ns(query, body, job))
        self._validate(job)
        key = _key(job["Namespace"], job["ID"])
        existing = self.state.jobs.get(key)
        if enforce:
            self._enforce(existing, int(modify))
        preserve = bool(_typed(body, "PreserveCounts", bool, "bool"))
        return self._upsert(job, existing, triggered_by="job-register", preserve_counts=preserve)

    def _enforce(self, existing: Json | None, modify: int) -> None:
        if modify == 0 and existing is not None:
            raise HTTPError(500, f"{ENFORCE} 0: job already exists")
        if modify and existing is None:
            raise HTTPError(500, f"{ENFORCE} {modify}: job does not exist")
        if modify and existing is not None and existing["JobModifyIndex"] != modify:
            raise HTTPError(500, f"{ENFORCE} {modify}: job exists with conflicting job modify index: "
                                 f"{existing['JobModifyIndex']}")

    def _upsert(self, job: Json, existing: Json | None, *, triggered_by: str, preserve_counts: bool = False) -> Json:
        """Store a job; a new version only when the spec changed, then schedule it."""
        changed = existing is None or _spec(existing) != _spec(job)
        if preserve_counts and existing is not None:
            _preserve_counts(existing, job)  # after the change check: a Count-only change still versions (#20497)
        index = self._commit("jobs")
        if changed:
            job["Version"] = existing["Version"] + 1 if existing else 0
            job["Stable"] = bool(job.get("Stable")) and triggered_by == "deployment-watcher"
            job["CreateIndex"] = existing["CreateIndex"] if existing else index
            job["ModifyIndex"] = job["JobModifyIndex"] = index
            job["SubmitTime"] = int(self.now.timestamp() * NS)
            self.state.jobs[_key(job["Namespace"], job["ID"])] = job
            self._add_version(job)
        else:
            assert existing is not None
            existing["ModifyIndex"] = index
            job = existing
        if job.get("Periodic") or job.get("ParameterizedJob"):
            return _register_response("", 0, job["JobModifyIndex"], index)
        ev = self._new_eval(job, triggered_by)
        self._schedule(job, ev)
        self._commit("jobs", "allocs", "deployments", "evals")
        return _register_response(ev["ID"], ev["CreateIndex"], job["JobModifyIndex"], self.state.index)

    def _add_version(self, job: Json) -> None:
        versions = self.state.versions.setdefault(_key(job["Namespace"], job["ID"]), [])
        versions.append(copy.deepcopy(job))
        while len(versions) > TRACKED_VERSIONS:
            stable = [v for v in versions if v["Stable"]]
            keep = stable[-1]["Version"] if stable else None
            drop = next(v for v in versions if v["Version"] != keep)
            versions.remove(drop)

    def _canonicalize(self, job: Json, namespace: str) -> Json:
        job.setdefault("Name", job["ID"])
        job["Type"] = job.get("Type") or "service"
        job["Namespace"] = namespace
        if job.get("Region") in (None, "", "global"):
            job["Region"] = self.region
        job["Priority"] = job.get("Priority") or 50
        job["Datacenters"] = job.get("Datacenters") or ["*"]
        job["NodePool"] = job.get("NodePool") or "default"
        for key in ("Meta", "Constraints", "Affinities", "Spreads", "Periodic", "ParameterizedJob", "ParentID",
                    "Payload", "Multiregion", "VersionTag"):
            job.setdefault(key, None)
        job["Stop"] = bool(job.get("Stop"))
        job["Dispatched"] = bool(job.get("Dispatched"))
        job_update = job.get("Update")
        for group in job.get("TaskGroups") or []:
            group["Count"] = 1 if group.get("Count") is None else group["Count"]
            group.setdefault("Meta", None)
            group.setdefault("Constraints", None)
            group.setdefault("Volumes", None)
            if job["Type"] in {"service", "system"}:
                merged = {**DEFAULT_UPDATE, **(job_update or {}), **(group.get("Update") or {})}
                group["Update"] = merged
            for task in group.get("Tasks") or []:
                res = task.setdefault("Resources", {}) or {}
                task["Resources"] = {"CPU": 100, "MemoryMB": 300, "Devices": None, **res}
                task.setdefault("Templates", None)
                task.setdefault("Env", None)
                task.setdefault("VolumeMounts", None)
        if job["Type"] in {"service", "system"}:
            base = {**DEFAULT_UPDATE, **(job_update or {})}
            job["Update"] = {"Stagger": base["Stagger"], "MaxParallel": base["MaxParallel"]}
        return job

    def _validate(self, job: Json) -> None:
        errors: list[str] = []
        if job["Type"] not in {"service", "batch", "system", "sysbatch"}:
            errors.append(f'Invalid job type: "{job["Type"]}"')
        groups = job.get("TaskGroups") or []
        if not groups:
            errors.append("Missing job task groups")
        if job["Type"] in {"batch", "sysbatch"} and job.get("Update"):
            errors.append(f'Job type "{job["Type"]}" does not allow update block')
        if job["Type"] not in {"batch", "sysbatch"}:
            for kind in ("Periodic", "ParameterizedJob"):
                if job.get(kind):
                    name = "Periodic" if kind == "Periodic" else "Parameterized"
                    errors.append(f"{name} can only be used with \"batch\" or \"sysbatch\" scheduler")
        for group in groups:
            if not group.get("Name"):
                errors.append("Missing task group name")
            if not group.get("Tasks"):
                errors.append(f"Task group {group.get('Name')} validation failed: Missing tasks for task group")
            for task in group.get("Tasks") or []:
                if not task.get("Name") or not task.get("Driver"):
                    errors.append(f"Task group {group.get('Name')} validation failed: Missing task name or driver")
            errors.extend(_update_errors(group.get("Update")))
        if errors:
            raise HTTPError(500, multierror(*errors))

    def _with_status(self, job: Json) -> Json:
        out = copy.deepcopy(job)
        out["Status"] = self._job_status(job)
        out["StatusDescription"] = ""
        return out

    def _job_status(self, job: Json) -> str:
        if job.get("Periodic") or job.get("ParameterizedJob"):
            return "dead" if job["Stop"] else "running"
        allocs = [a for a in self.state.allocs.values() if a["JobID"] == job["ID"]]
        if any(a["ClientStatus"] not in TERMINAL_ALLOC and a["DesiredStatus"] == "run" for a in allocs):
            return "running"
        if any(d["JobID"] == job["ID"] and d["Status"] not in TERMINAL_DEPLOY for d in self.state.deployments.values()):
            return "running"
        if not allocs and not job["Stop"]:
            return "pending"
        return "dead"

    def _versions(self, job_id: str, query: dict[str, str], _: Any) -> tuple[Json, int]:
        versions = self.state.versions.get(_key(self._ns(query), job_id))
        if not versions:
            raise HTTPError(404, "job versions not found")
        ordered = sorted(versions, key=lambda v: -v["Version"])
        diffs = None
        if query.get("diffs", "").lower() in {"true", "1", "t"}:
            diffs = [_diff(ordered[i + 1], ordered[i]) for i in range(len(ordered) - 1)]
        index = max(v["ModifyIndex"] for v in ordered)
        return {"Versions": copy.deepcopy(ordered), "Diffs": diffs, "Index": index}, index

    def _revert(self, job_id: str, query: dict[str, str], body: Json) -> Json:
        if not _ci(body, "JobID"):
            raise HTTPError(400, "JobID must be specified")
        if _ci(body, "JobID") != job_id:
            raise HTTPError(400, "Job ID does not match")
        ns = self._ns(query)
        current = self.state.jobs.get(_key(ns, job_id))
        if current is None:
            raise HTTPError(500, f'job "{job_id}" not found')
        target_v = _typed(body, "JobVersion", int, "uint64") or 0
        prior = _typed(body, "EnforcePriorVersion", int, "*uint64")
        if target_v == current["Version"]:
            raise HTTPError(500, "can't revert to current version")
        target = self._version(ns, job_id, target_v)
        if prior is not None and prior != current["Version"]:
            raise HTTPError(500, f"Current job has version {current['Version']}; enforcing version {prior}")
        job = copy.deepcopy(target)
        job["Stable"] = False
        job["VersionTag"] = None
        return self._upsert(job, current, triggered_by="job-register")

    def _version(self, ns: str, job_id: str, version: int) -> Json:
        for v in self.state.versions.get(_key(ns, job_id), []):
            if v["Version"] == version:
                return v
        raise HTTPError(500, f'job "{job_id}" in namespace "{ns}" at version {version} not found')

    def _stable(self, job_id: str, query: dict[str, str], body: Json) -> Json:
        if _ci(body, "JobID") != job_id:
            raise HTTPError(400, "Job ID does not match")
        ns = self._ns(query)
        version = self._version(ns, job_id, _typed(body, "JobVersion", int, "uint64") or 0)
        stable = bool(_typed(body, "Stable", bool, "bool"))
        self._mark_stable(ns, job_id, version["Version"], stable)
        return {"Index": self._commit("jobs")}

    def _mark_stable(self, ns: str, job_id: str, version: int, stable: bool) -> None:
        for v in self.state.versions.get(_key(ns, job_id), []):
            if v["Version"] == version:
                v["Stable"] = stable
        job = self.state.jobs[_key(ns, job_id)]
        if job["Version"] == version:
            job["Stable"] = stable
        job["ModifyIndex"] = self.state.index + 1

    def _plan(self, job_id: str, query: dict[str, str], body: Json) -> Json:
        job = _ci(body, "Job")
        if not isinstance(job, dict):
            raise HTTPError(400, "Job must be specified")
        if not job.get("ID"):
            raise HTTPError(400, "Job must have a valid ID")
        if job["ID"] != job_id:
            raise HTTPError(400, "Job ID does not match")
        job = self._canonicalize(copy.deepcopy(job), self._ns(query, body, job))
        self._validate(job)
        existing = self.state.jobs.get(_key(job["Namespace"], job_id))
        updates: Json = {}
        failed: Json = {}
        for group in job["TaskGroups"]:
            updates[group["Name"]] = self._plan_group(existing, job, group)
            short = self._capacity_shortfall(job, group, updates[group["Name"]])
            if short:
                failed[group["Name"]] = short
        diff = _diff(existing, job) if _ci(body, "Diff") else None
        return {"Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
                "FailedTGAllocs": failed or None, "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
                "CreatedEvals": None, "Diff": diff, "NextPeriodicLaunch": None, "Warnings": "", "Index": 0}

    def _plan_group(self, existing: Json | None, job: Json, group: Json) -> Json:
        counts = dict.fromkeys(("Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate", "Canary",
                                "Preemptions", "Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater"), 0)
        if job["Type"] == "batch" and (job.get("ParameterizedJob") or job.get("Periodic")):
            return counts
        live = [a for a in self._live(job["ID"]) if a["TaskGroup"] == group["Name"]]
        old_group = _group(existing, group["Name"]) if existing else None
        if not live or old_group is None:
            counts["Place"] = group["Count"]
        elif _tasks_part(existing or {}, old_group) != _tasks_part(job, group):
            canary = (group.get("Update") or {}).get("Canary", 0)
            counts["Canary"] = canary
            counts["DestructiveUpdate"] = 0 if canary else len(live)
            counts["Ignore"] = len(live) if canary else 0
        elif _spec(existing or {}) != _spec(job):
            counts["InPlaceUpdate"] = len(live)
        else:
            counts["Ignore"] = len(live)
        return counts

    def _capacity_shortfall(self, job: Json, group: Json, counts: Json) -> Json | None:
        wanted = counts["Place"] + counts["Canary"] + counts["DestructiveUpdate"]
        gpus = _gpus(group)
        if not wanted or not gpus:
            return None
        free = sum(self._free_gpus(n) // gpus for n in self._feasible(job, group))
        if free >= wanted:
            return None
        return _failed_metrics(len(self.nodes), len(self._feasible(job, group)))

    def _deregister(self, job_id: str, query: dict[str, str]) -> Json:
        ns = self._ns(query)
        key = _key(ns, job_id)
        job = self.state.jobs.get(key)
        if job is None:
            return {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0, "VolumeEvalID": "",
                    "VolumeEvalIndex": 0, "Index": 0}
        purge = query.get("purge", "").lower() in {"true", "1", "t"}
        if purge:
            del self.state.jobs[key]
            self.state.versions.pop(key, None)
            self._stop_job(job, "alloc not needed due to job purge")
            index = self._commit("jobs", "allocs", "deployments")
            return {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": index, "VolumeEvalID": "",
                    "VolumeEvalIndex": 0, "Index": index}
        stopped = copy.deepcopy(job)
        stopped["Stop"] = True
        out = self._upsert(stopped, job, triggered_by="job-deregister")
        out.pop("Warnings", None)  # JobDeregisterResponse has none (nomad-api.md §1.7)
        return {**out, "VolumeEvalID": "", "VolumeEvalIndex": 0}

    def _dispatch_job(self, job_id: str, query: dict[str, str], body: Json) -> Json:
        ns = self._ns(query)
        parent = self.state.jobs.get(_key(ns, job_id))
        if _ci(body, "JobID") not in (None, job_id):
            raise HTTPError(400, "Job ID does not match")
        if parent is None:
            raise HTTPError(500, "parameterized job not found")
        if not parent.get("ParameterizedJob"):
            raise HTTPError(500, f'Specified job "{job_id}" is not a parameterized job')
        if parent["Stop"]:
            raise HTTPError(500, f'Specified job "{job_id}" is stopped')
        if self.reject_job_registration:
            raise HTTPError(403, "Job registration, dispatch, and scale are disabled by the scheduler configuration")
        token = query.get("idempotency_token") or _ci(body, "IdempotencyToken") or ""
        for child in self.state.jobs.values():
            if token and child.get("ParentID") == job_id and child.get("DispatchIdempotencyToken") == token:
                return {"DispatchedJobID": child["ID"], "EvalID": "", "EvalCreateIndex": 0,
                        "JobCreateIndex": child["CreateIndex"], "Index": child["CreateIndex"]}
        meta = _ci(body, "Meta") or {}
        payload = _ci(body, "Payload")
        self._check_dispatch(parent, meta, payload)
        child = copy.deepcopy(parent)
        suffix = f"{int(self.now.timestamp())}-{uuid.uuid4().hex[:8]}"
        prefix = _ci(body, "IdPrefixTemplate")
        child_id = f"{job_id}/dispatch-{prefix + '-' if prefix else ''}{suffix}"
        child.update({"ID": child_id, "Name": child_id, "ParentID": job_id, "Dispatched": True,
                      "ParameterizedJob": None, "DispatchIdempotencyToken": token or None,
                      "Meta": {**(parent.get("Meta") or {}), **meta}, "Payload": payload})
        index = self._commit("jobs")
        child["CreateIndex"] = child["ModifyIndex"] = child["JobModifyIndex"] = index
        self.state.jobs[_key(ns, child_id)] = child
        ev = self._new_eval(child, "job-register")
        self._schedule(child, ev)
        index = self._commit("jobs", "allocs", "evals")
        return {"DispatchedJobID": child_id, "EvalID": ev["ID"], "EvalCreateIndex": ev["CreateIndex"],
                "JobCreateIndex": child["CreateIndex"], "Index": index}

    def _check_dispatch(self, parent: Json, meta: Json, payload: str | None) -> None:
        spec = parent["ParameterizedJob"]
        mode = spec.get("Payload") or "optional"
        if mode == "required" and not payload:
            raise HTTPError(500, "Payload is not provided but required by parameterized job")
        if mode == "forbidden" and payload:
            raise HTTPError(500, "Payload provided but forbidden by parameterized job")
        if payload and len(base64.b64decode(payload)) > MAX_PAYLOAD:
            raise HTTPError(500, f"Payload exceeds maximum size; {len(base64.b64decode(payload))} > {MAX_PAYLOAD}")
        allowed = set(spec.get("MetaRequired") or []) | set(spec.get("MetaOptional") or [])
        extra = sorted(set(meta) - allowed)
        if extra:
            raise HTTPError(500, f"Dispatch request included unpermitted metadata keys: {extra}")
        missing = sorted(set(spec.get("MetaRequired") or []) - set(meta))
        if missing:
            raise HTTPError(500, f"Dispatch did not provide required meta keys: {missing}")

    def _summary(self, job_id: str, query: dict[str, str], _: Any) -> tuple[Json, int]:
        job = self.state.jobs.get(_key(self._ns(query), job_id))
        if job is None:
            raise HTTPError(404, "job not found")
        return self._summary_of(job), job["ModifyIndex"]

    def _summary_of(self, job: Json) -> Json:
        groups: Json = {}
        for group in job.get("TaskGroups") or []:
            counts = dict.fromkeys(("Queued", "Complete", "Failed", "Running", "Starting", "Lost", "Unknown"), 0)
            for a in self.state.allocs.values():
                if a["JobID"] == job["ID"] and a["TaskGroup"] == group["Name"]:
                    name = {"pending": "Starting"}.get(a["ClientStatus"], a["ClientStatus"].capitalize())
                    counts[name] = counts.get(name, 0) + 1
            counts["Queued"] = job.get("_queued", {}).get(group["Name"], 0)
            groups[group["Name"]] = counts
        children = {"Pending": 0, "Running": 0, "Dead": 0}
        for child in self.state.jobs.values():
            if child.get("ParentID") == job["ID"]:
                children[self._job_status(child).capitalize()] += 1
        return {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": groups, "Children": children,
                "CreateIndex": job["CreateIndex"], "ModifyIndex": job["ModifyIndex"]}

    def _job_allocs(self, job_id: str, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        allocs = [_stub(a) for a in self.state.allocs.values() if a["JobID"] == job_id]
        return sorted(allocs, key=lambda a: a["CreateIndex"]), self.state.tables.get("allocs", 1)

    def _job_evals(self, job_id: str, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        evals = [copy.deepcopy(e) for e in self.state.evals.values() if e["JobID"] == job_id]
        return evals, self.state.tables.get("evals", 1)

    def _job_deployments(self, job_id: str, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        deps = [copy.deepcopy(d) for d in self.state.deployments.values() if d["JobID"] == job_id]
        return deps, self.state.tables.get("deployments", 1)

    def _job_latest_deployment(self, job_id: str, query: dict[str, str], _: Any) -> tuple[Json | None, int]:
        deps = [d for d in self.state.deployments.values() if d["JobID"] == job_id]
        latest = max(deps, key=lambda d: d["CreateIndex"]) if deps else None
        return copy.deepcopy(latest), self.state.tables.get("deployments", 1)

    # ---------------------------------------------------------------- evaluations / allocations
    def _new_eval(self, job: Json, triggered_by: str, deployment_id: str | None = None) -> Json:
        index = self._commit("evals")
        ev = {"ID": _uuid(), "Namespace": job["Namespace"], "Priority": job["Priority"], "Type": job["Type"],
              "TriggeredBy": triggered_by, "JobID": job["ID"], "JobModifyIndex": job["JobModifyIndex"],
              "DeploymentID": deployment_id or "", "Status": "complete", "StatusDescription": "",
              "FailedTGAllocs": None, "BlockedEval": "", "CreateIndex": index, "ModifyIndex": index,
              "CreateTime": _ns_time(self.now), "ModifyTime": _ns_time(self.now)}
        self.state.evals[ev["ID"]] = ev
        return ev

    def _get_eval(self, eval_id: str) -> tuple[Json, int]:
        ev = self.state.evals.get(eval_id)
        if ev is None:
            raise HTTPError(404, "eval not found")
        return copy.deepcopy(ev), ev["ModifyIndex"]

    def _stop_alloc_api(self, alloc_id: str) -> Json:
        """`POST /v1/allocation/:id/stop`: the allocation stops (its containers too) and is replaced."""
        alloc = self.state.allocs.get(alloc_id)
        if alloc is None:
            raise HTTPError(404, "alloc not found")
        alloc["DesiredTransition"] = {"Migrate": True}
        self._stop_alloc(alloc, "alloc is being migrated")
        self._replace(alloc)
        job = self.state.jobs.get(_key(alloc["Namespace"], alloc["JobID"]))
        ev = self._new_eval(job, "alloc-stop") if job else None
        index = self._commit("allocs", "deployments", "evals", "jobs")
        return {"EvalID": ev["ID"] if ev else "", "Index": index}

    def _registrations(self, alloc_id: str) -> list[Json]:
        """`GET /v1/allocation/:id/services`: the Nomad-provider services a running allocation registered."""
        alloc = self.state.allocs.get(alloc_id)
        if alloc is None:
            raise HTTPError(404, "alloc not found")
        group = _group(self._version_or_current(alloc), alloc["TaskGroup"]) or {}
        ports = {p["Label"]: p["Value"] for p in
                 ((alloc.get("AllocatedResources") or {}).get("Shared") or {}).get("Ports") or []}
        if alloc["ClientStatus"] != "running" or alloc["DesiredStatus"] != "run":
            return []
        node = self.nodes.get(alloc["NodeID"])
        return [{"ID": f"_nomad-task-{alloc_id}-group-{alloc['TaskGroup']}-{svc['Name']}-{svc['PortLabel']}",
                 "ServiceName": svc["Name"], "Namespace": alloc["Namespace"], "NodeID": alloc["NodeID"],
                 "Datacenter": node.datacenter if node else "dc1", "JobID": alloc["JobID"], "AllocID": alloc_id,
                 "Tags": list(svc.get("Tags") or []), "Address": "127.0.0.1", "Port": ports[svc["PortLabel"]],
                 "CreateIndex": alloc["CreateIndex"], "ModifyIndex": alloc["ModifyIndex"]}
                for svc in group.get("Services") or []
                if svc.get("Provider") == "nomad" and svc.get("PortLabel") in ports]

    def _get_alloc(self, alloc_id: str) -> tuple[Json, int]:
        alloc = self.state.allocs.get(alloc_id)
        if alloc is None:
            raise HTTPError(404, "alloc not found")
        full = {k: v for k, v in copy.deepcopy(alloc).items() if k not in ("JobType", "JobVersion")}  # stub-only
        full["Job"] = copy.deepcopy(self._version_or_current(alloc))
        return full, alloc["ModifyIndex"]

    def _version_or_current(self, alloc: Json) -> Json | None:
        key = _key(alloc["Namespace"], alloc["JobID"])
        for v in self.state.versions.get(key, []):
            if v["Version"] == alloc["JobVersion"]:
                return v
        return self.state.jobs.get(key)

    def _live(self, job_id: str) -> list[Json]:
        return [a for a in self.state.allocs.values() if a["JobID"] == job_id and a["DesiredStatus"] == "run"
                and a["ClientStatus"] not in TERMINAL_ALLOC]

    def _feasible(self, job: Json, group: Json) -> list[Node]:
        wanted = _node_class(job, group)
        return [n for n in self.nodes.values() if n.status == "ready" and n.eligible
                and (wanted is None or n.node_class == wanted) and _node_matches(n, job, group)]

    def _free_gpus(self, node: Node) -> int:
        used = sum(_gpus_of_alloc(a) for a in self.state.allocs.values()
                   if a["NodeID"] == node.id and _is_live(a))
        return node.gpus - used

    def _place(self, job: Json, group: Json, ev: Json, *, canary: bool = False,
               deployment: Json | None = None, previous: Json | None = None, version: int | None = None) -> Json | None:
        """Place one allocation, or record the shortfall on the eval (blocked) and the job summary."""
        gpus = _gpus(group)
        nodes = [n for n in self._feasible(job, group) if self._free_gpus(n) >= gpus]
        if not nodes:
            self._block(job, group, ev)
            return None
        node = min(nodes, key=lambda n: (self._node_load(n), n.name))
        index = self._commit("allocs")
        alloc = {"ID": _uuid(), "Namespace": job["Namespace"], "EvalID": ev["ID"],
                 "Name": f"{job['ID']}.{group['Name']}[{self._next_slot(job, group)}]", "NodeID": node.id,
                 "NodeName": node.name, "JobID": job["ID"], "JobType": job["Type"],
                 "JobVersion": job["Version"] if version is None else version, "TaskGroup": group["Name"],
                 "DesiredStatus": "run", "DesiredDescription": "", "DesiredTransition": {"Migrate": None},
                 "ClientStatus": "pending" if job["Type"] == "batch" or self.driver else "running",
                 "ClientDescription": "",
                 "TaskStates": None, "DeploymentID": deployment["ID"] if deployment else "",
                 "DeploymentStatus": {"Healthy": None, "Timestamp": None, "Canary": canary, "ModifyIndex": index}
                 if deployment else None, "PreviousAllocation": previous["ID"] if previous else "",
                 "NextAllocation": "", "FollowupEvalID": "", "CreateIndex": index, "ModifyIndex": index,
                 "AllocModifyIndex": index, "CreateTime": _ns_time(self.now), "ModifyTime": _ns_time(self.now),
                 "_image": _image(group), "_gpus": gpus}
        alloc["TaskStates"] = _task_states(alloc, "pending" if alloc["ClientStatus"] == "pending" else "running",
                                           failed=False)
        self.state.allocs[alloc["ID"]] = alloc
        if previous:
            previous["NextAllocation"] = alloc["ID"]
        job.get("_queued", {}).pop(group["Name"], None)
        if deployment:
            self._placed_in_deployment(deployment, alloc, canary)
        elif job["Type"] == "batch" and _image(group) in self.batch_outcome and not self.driver:
            alloc["ClientStatus"] = self.batch_outcome[_image(group)]
        if self.driver:
            self.driver.place(alloc, job, group, node)
        return alloc

    def _node_load(self, node: Node) -> int:
        return sum(1 for a in self.state.allocs.values() if a["NodeID"] == node.id and a["DesiredStatus"] == "run")

    def _next_slot(self, job: Json, group: Json) -> int:
        return sum(1 for a in self.state.allocs.values() if a["JobID"] == job["ID"] and a["TaskGroup"] == group["Name"])

    def _block(self, job: Json, group: Json, ev: Json) -> None:
        job.setdefault("_queued", {})
        job["_queued"][group["Name"]] = job["_queued"].get(group["Name"], 0) + 1
        ev["FailedTGAllocs"] = {group["Name"]: _failed_metrics(len(self.nodes), len(self._feasible(job, group)))}
        if not ev["BlockedEval"]:
            blocked = self._new_eval(job, "queued-allocs")
            blocked["Status"] = "blocked"
            blocked["StatusDescription"] = "created to place remaining allocations"
            ev["BlockedEval"] = blocked["ID"]

    def _retry_blocked(self) -> None:
        for ev in list(self.state.evals.values()):
            if ev["Status"] != "blocked":
                continue
            job = self.state.jobs.get(_key(ev["Namespace"], ev["JobID"]))
            ev["Status"] = "complete"
            ev["ModifyIndex"] = self._commit("evals")
            if job is not None:
                job["_queued"] = {}
                self._schedule(job, ev)

    def _stop_alloc(self, alloc: Json, why: str) -> None:
        alloc["DesiredStatus"] = "stop"
        alloc["DesiredDescription"] = why
        if alloc["ClientStatus"] in {"running", "pending"}:
            alloc["ClientStatus"] = "complete"
        self._touch(alloc)
        self._release(alloc)

    def _release(self, alloc: Json) -> None:
        """The allocation is done: its containers stop (driver mode)."""
        if self.driver:
            self.driver.release(alloc["ID"])

    def _touch(self, alloc: Json) -> None:
        alloc["ModifyIndex"] = alloc["AllocModifyIndex"] = self.state.index + 1
        alloc["ModifyTime"] = _ns_time(self.now)

    def _stop_job(self, job: Json, why: str) -> None:
        for alloc in self._live(job["ID"]):
            self._stop_alloc(alloc, why)
        for dep in self.state.deployments.values():
            if dep["JobID"] == job["ID"] and dep["Status"] not in TERMINAL_DEPLOY:
                self._end_deployment(dep, "cancelled", "Cancelled because job is stopped")

    # ---------------------------------------------------------------- scheduler
    def _schedule(self, job: Json, ev: Json) -> None:
        """The reconciler, run synchronously for one evaluation."""
        if job["Stop"]:
            self._stop_job(job, "alloc not needed due to job update")
            return
        if job.get("ParameterizedJob") or job.get("Periodic"):
            return
        for dep in self.state.deployments.values():
            if (dep["JobID"] == job["ID"] and dep["Status"] not in TERMINAL_DEPLOY
                    and dep["JobVersion"] != job["Version"]):
                self._end_deployment(dep, "cancelled", "Cancelled due to newer version of job")
        for group in job["TaskGroups"]:
            if job["Type"] == "batch":
                self._schedule_batch(job, group, ev)
            else:
                self._schedule_service(job, group, ev)

    def _schedule_batch(self, job: Json, group: Json, ev: Json) -> None:
        allocs = [a for a in self.state.allocs.values() if a["JobID"] == job["ID"] and a["TaskGroup"] == group["Name"]]
        current = [a for a in allocs if a["JobVersion"] == job["Version"] and a["DesiredStatus"] == "run"]
        for a in allocs:
            if a["JobVersion"] != job["Version"] and a["ClientStatus"] not in TERMINAL_ALLOC:
                self._stop_alloc(a, "alloc not needed due to job update")
        for _ in range(group["Count"] - len(current)):
            self._place(job, group, ev)

    def _schedule_service(self, job: Json, group: Json, ev: Json) -> None:
        live = [a for a in self._live(job["ID"]) if a["TaskGroup"] == group["Name"]]
        current = [a for a in live if a["JobVersion"] == job["Version"]]
        old = [a for a in live if a["JobVersion"] != job["Version"]]
        update = group["Update"]
        if old:
            old_spec = self._version_or_current(old[0]) or job
            old_group = _group(old_spec, group["Name"]) or group
            if _tasks_part(old_spec, old_group) == _tasks_part(job, group):
                for a in old:  # in-place update
                    a["JobVersion"] = job["Version"]
                    a["DesiredDescription"] = "alloc updating in-place"
                    self._touch(a)
                current, old = current + old, []
        if update["MaxParallel"] == 0:
            for a in old:
                self._stop_alloc(a, "alloc not needed due to job update")
            for _ in range(group["Count"] - len(current)):
                self._place(job, group, ev)
            return
        dep = self._deployment_for(job, ev)
        if old and update["Canary"] > 0:
            self._group_state(dep, group, canaries=update["Canary"])
            for _ in range(update["Canary"] - len(current)):
                if dep["Status"] != "running" or not self._place(job, group, ev, canary=True, deployment=dep):
                    break
        else:
            self._group_state(dep, group, canaries=0)
            for a in current:
                self._adopt(dep, a)
            self._progress(dep, ev)

    def _deployment_for(self, job: Json, ev: Json) -> Json:
        for dep in self.state.deployments.values():
            if (dep["JobID"] == job["ID"] and dep["JobVersion"] == job["Version"]
                    and dep["Status"] not in TERMINAL_DEPLOY):
                return dep
        index = self._commit("deployments")
        dep = {"ID": _uuid(), "Namespace": job["Namespace"], "JobID": job["ID"], "JobVersion": job["Version"],
               "JobModifyIndex": job["JobModifyIndex"], "JobSpecModifyIndex": job["JobModifyIndex"],
               "JobCreateIndex": job["CreateIndex"], "IsMultiregion": False, "EvalPriority": job["Priority"],
               "Status": "running", "StatusDescription": "Deployment is running", "TaskGroups": {},
               "CreateIndex": index, "ModifyIndex": index, "CreateTime": _ns_time(self.now),
               "ModifyTime": _ns_time(self.now)}
        self.state.deployments[dep["ID"]] = dep
        ev["DeploymentID"] = dep["ID"]
        return dep

    def _group_state(self, dep: Json, group: Json, *, canaries: int) -> None:
        update = group["Update"]
        dep["TaskGroups"].setdefault(group["Name"], {
            "AutoRevert": update["AutoRevert"], "AutoPromote": update["AutoPromote"], "Promoted": False,
            "PlacedCanaries": None, "DesiredCanaries": canaries, "DesiredTotal": group["Count"], "PlacedAllocs": 0,
            "HealthyAllocs": 0, "UnhealthyAllocs": 0, "ProgressDeadline": update["ProgressDeadline"],
            "RequireProgressBy": None})
        self._describe(dep)

    def _adopt(self, dep: Json, alloc: Json) -> None:
        """An in-place updated (or already current) allocation joins the new deployment; health is re-checked."""
        if alloc["DeploymentID"] == dep["ID"]:
            return
        alloc["DeploymentID"] = dep["ID"]
        alloc["DeploymentStatus"] = {"Healthy": None, "Timestamp": None, "Canary": False,
                                     "ModifyIndex": self.state.index}
        self._placed_in_deployment(dep, alloc, canary=False)

    def _placed_in_deployment(self, dep: Json, alloc: Json, canary: bool) -> None:
        tg = dep["TaskGroups"][alloc["TaskGroup"]]
        tg["PlacedAllocs"] += 1
        if canary:
            tg["PlacedCanaries"] = [*(tg["PlacedCanaries"] or []), alloc["ID"]]
        if tg["RequireProgressBy"] is None and tg["ProgressDeadline"]:
            tg["RequireProgressBy"] = _iso(self.now + timedelta(seconds=tg["ProgressDeadline"] / NS))
        health = self.image_health.get(alloc["_image"], self.default_health)
        if health is not None and not self.driver:
            self._set_health(alloc, health, progress=False)

    def _set_health(self, alloc: Json, healthy: bool, *, progress: bool = True) -> None:
        dep = self.state.deployments.get(alloc["DeploymentID"] or "")
        status = alloc["DeploymentStatus"] or {"Canary": False}
        if status.get("Healthy") is not None:
            return
        alloc["DeploymentStatus"] = {**status, "Healthy": healthy, "Timestamp": _iso(self.now),
                                     "ModifyIndex": self.state.index + 1}
        if not healthy:
            alloc["ClientStatus"] = "failed"
            if not self.driver:
                alloc["TaskStates"] = _task_states(alloc, "dead", failed=True)
            self._release(alloc)
        self._touch(alloc)
        if dep is None or dep["Status"] in TERMINAL_DEPLOY:
            return
        tg = dep["TaskGroups"][alloc["TaskGroup"]]
        tg["HealthyAllocs" if healthy else "UnhealthyAllocs"] += 1
        if healthy and tg["ProgressDeadline"]:
            tg["RequireProgressBy"] = _iso(self.now + timedelta(seconds=tg["ProgressDeadline"] / NS))
        if not healthy:
            self._fail_deployment(dep, "Failed due to unhealthy allocations", revert_groups={alloc["TaskGroup"]})
        elif progress:
            self._progress(dep)
        else:
            self.cond.notify_all()

    def _progress(self, dep: Json, ev: Json | None = None) -> None:
        """Advance a running deployment: promote automatically, replace old allocs, detect success."""
        if dep["Status"] != "running":
            return
        job = self.state.jobs[_key(dep["Namespace"], dep["JobID"])]
        ev = ev or self._new_eval(job, "deployment-watcher", dep["ID"])
        for name, tg in dep["TaskGroups"].items():
            if tg["DesiredCanaries"] and not tg["Promoted"]:
                if tg["AutoPromote"] and self._canaries_healthy(dep, name):
                    self._promote_group(dep, name)
                else:
                    continue
            self._roll(job, dep, name, ev)
        done = all(tg["HealthyAllocs"] >= max(tg["DesiredTotal"], tg["DesiredCanaries"])
                   and (tg["Promoted"] or not tg["DesiredCanaries"]) for tg in dep["TaskGroups"].values())
        if done:
            self._end_deployment(dep, "successful", "Deployment completed successfully")
            self._mark_stable(dep["Namespace"], dep["JobID"], dep["JobVersion"], True)
            for alloc in self._live(job["ID"]):
                if alloc["JobVersion"] != dep["JobVersion"]:
                    self._stop_alloc(alloc, "alloc not needed due to job update")
        self._describe(dep)

    def _roll(self, job: Json, dep: Json, name: str, ev: Json) -> None:
        """Replace old allocations MaxParallel at a time, each batch once the previous one is healthy."""
        group = _group(job, name)
        assert group is not None
        live = [a for a in self._live(job["ID"]) if a["TaskGroup"] == name]
        new = [a for a in live if a["JobVersion"] == dep["JobVersion"]]
        old = [a for a in live if a["JobVersion"] != dep["JobVersion"]]
        pending = sum(1 for a in new if (a["DeploymentStatus"] or {}).get("Healthy") is not True)
        limit = group["Update"]["MaxParallel"] if old else group["Count"]
        while len(new) < group["Count"] and pending < limit and dep["Status"] == "running":
            if old:
                self._stop_alloc(old.pop(0), "alloc is being updated due to job update")
            placed = self._place(job, group, ev, deployment=dep)
            if placed is None:
                return
            new.append(placed)
            pending += 0 if (placed["DeploymentStatus"] or {}).get("Healthy") else 1
        if len(new) >= group["Count"]:
            for a in old:
                self._stop_alloc(a, "alloc not needed due to job update")

    def _canaries_healthy(self, dep: Json, name: str) -> bool:
        tg = dep["TaskGroups"][name]
        healthy = [a for a in (self.state.allocs.get(i) for i in tg["PlacedCanaries"] or [])
                   if a and a["ClientStatus"] not in TERMINAL_ALLOC and (a["DeploymentStatus"] or {}).get("Healthy")]
        return len(healthy) >= int(tg["DesiredCanaries"])

    def _promote_group(self, dep: Json, name: str) -> None:
        tg = dep["TaskGroups"][name]
        tg["Promoted"] = True
        tg["RequireProgressBy"] = (_iso(self.now + timedelta(seconds=tg["ProgressDeadline"] / NS))
                                   if tg["ProgressDeadline"] else None)
        for alloc_id in tg["PlacedCanaries"] or []:
            alloc = self.state.allocs[alloc_id]
            if alloc["DeploymentStatus"]:
                alloc["DeploymentStatus"]["Canary"] = False
                self._touch(alloc)

    def _describe(self, dep: Json) -> None:
        if dep["Status"] == "running":
            canary = [tg for tg in dep["TaskGroups"].values() if tg["DesiredCanaries"] and not tg["Promoted"]]
            if canary and all(tg["AutoPromote"] for tg in canary):
                dep["StatusDescription"] = "Deployment is running pending automatic promotion"
            elif canary:
                dep["StatusDescription"] = "Deployment is running but requires manual promotion"
            else:
                dep["StatusDescription"] = "Deployment is running"
        dep["ModifyIndex"] = self._commit("deployments")
        dep["ModifyTime"] = _ns_time(self.now)

    def _end_deployment(self, dep: Json, status: str, description: str) -> None:
        dep["Status"] = status
        dep["StatusDescription"] = description
        if status in {"failed", "cancelled"}:
            for tg in dep["TaskGroups"].values():
                if not tg["Promoted"]:
                    for alloc_id in tg["PlacedCanaries"] or []:
                        alloc = self.state.allocs[alloc_id]
                        if alloc["DesiredStatus"] == "run":
                            self._stop_alloc(alloc, "alloc not needed due to job update")
        dep["ModifyIndex"] = self._commit("deployments", "allocs")

    def _fail_deployment(self, dep: Json, description: str, *, revert_groups: set[str] | None) -> int | None:
        """Fail, then auto-revert (§3.3 step 6) when a relevant group asks for it; returns the source version."""
        self._end_deployment(dep, "failed", description)
        groups = dep["TaskGroups"] if revert_groups is None else {g: dep["TaskGroups"][g] for g in revert_groups}
        if not any(tg["AutoRevert"] for tg in groups.values()):
            return None
        key = _key(dep["Namespace"], dep["JobID"])
        job = self.state.jobs[key]
        stable = [v for v in self.state.versions.get(key, []) if v["Stable"]]
        if not stable:
            dep["StatusDescription"] = f"{description} - no stable job version to auto revert to"
            return None
        source = max(stable, key=lambda v: v["Version"])
        if _spec(source) == _spec(job):
            dep["StatusDescription"] = (f"{description} - not rolling back to stable job version {source['Version']}"
                                        " as current job has same specification")
            return None
        dep["StatusDescription"] = f"{description} - rolling back to job version {source['Version']}"
        self._upsert(copy.deepcopy(source), job, triggered_by="deployment-watcher")
        return int(source["Version"])

    def _check_deadline(self, dep: Json) -> None:
        if dep["Status"] != "running":
            return
        for name, tg in dep["TaskGroups"].items():
            by = tg["RequireProgressBy"]
            need = tg["DesiredCanaries"] if tg["DesiredCanaries"] and not tg["Promoted"] else tg["DesiredTotal"]
            if by and datetime.fromisoformat(by) < self.now and tg["HealthyAllocs"] < need:
                self._fail_deployment(dep, "Failed due to progress deadline", revert_groups={name})
                return

    def _evacuate(self, node_id: str, *, lost: bool) -> None:
        for alloc in [a for a in self.state.allocs.values() if a["NodeID"] == node_id]:
            if alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] in TERMINAL_ALLOC:
                continue
            alloc["DesiredStatus"] = "stop"
            alloc["ClientStatus"] = "lost" if lost else "complete"
            alloc["DesiredDescription"] = ("alloc is lost since its node is down" if lost
                                           else "alloc is being migrated")
            self._touch(alloc)
            self._release(alloc)
            self._replace(alloc)
        for dep in list(self.state.deployments.values()):
            if dep["Status"] == "running":
                self._progress(dep)

    def _replace(self, old: Json) -> None:
        """Replacement of a lost/migrated allocation; a canary is replaced by a new canary (§4, #8439)."""
        job = self.state.jobs.get(_key(old["Namespace"], old["JobID"]))
        if job is None or job["Stop"]:
            return
        group = _group(job, old["TaskGroup"])
        if group is None:
            return
        ev = self._new_eval(job, "node-update")
        dep = self.state.deployments.get(old["DeploymentID"] or "")
        canary = bool((old["DeploymentStatus"] or {}).get("Canary"))
        active = dep if dep and dep["Status"] not in TERMINAL_DEPLOY else None
        if canary and active:
            self._place(job, group, ev, canary=True, deployment=active, previous=old)
            return
        version = old["JobVersion"]
        spec = self._version_or_current(old) or job
        placed = self._place(spec, _group(spec, old["TaskGroup"]) or group, ev, previous=old, version=version,
                             deployment=active if active and active["JobVersion"] == version else None)
        if placed is not None and (old["DeploymentStatus"] or {}).get("Healthy") and placed["DeploymentStatus"] is None:
            placed["DeploymentStatus"] = copy.deepcopy(old["DeploymentStatus"])

    # ---------------------------------------------------------------- deployments API
    def _get_deployment(self, dep_id: str) -> tuple[Json, int]:
        dep = self.state.deployments.get(dep_id)
        if dep is None:
            raise HTTPError(404, "deployment not found")
        return copy.deepcopy(dep), dep["ModifyIndex"]

    def _dep_index(self, dep_id: str) -> int:
        dep = self.state.deployments.get(dep_id)
        return dep["ModifyIndex"] if dep else self.state.tables.get("deployments", 1)

    def _list_deployments(self, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        prefix = query.get("prefix", "")
        deps = [copy.deepcopy(d) for d in self.state.deployments.values() if d["ID"].startswith(prefix)]
        return deps, self.state.tables.get("deployments", 1)

    def _deployment_allocs(self, dep_id: str) -> list[Json]:
        return [_stub(a) for a in self.state.allocs.values() if a["DeploymentID"] == dep_id]

    def _writable_deployment(self, dep_id: str, body: Json, verb: str, *, body_id: bool = True) -> Json:
        if body_id:
            given = _ci(body, "DeploymentID")
            if not given:
                raise HTTPError(400, "DeploymentID must be specified")
            if given != dep_id:
                raise HTTPError(400, "Deployment ID does not match")
        dep = self.state.deployments.get(dep_id)
        if dep is None:
            raise HTTPError(500, "deployment not found")
        if dep["Status"] in TERMINAL_DEPLOY:
            raise HTTPError(500, f"can't {verb} terminal deployment")
        return dep

    def _update_response(self, ev: Json | None, dep: Json, reverted: int | None = None) -> Json:
        return {"EvalID": ev["ID"] if ev else "", "EvalCreateIndex": ev["CreateIndex"] if ev else 0,
                "DeploymentModifyIndex": dep["ModifyIndex"], "RevertedJobVersion": reverted,
                "Index": self.state.index}

    def _promote(self, dep_id: str, body: Json) -> Json:
        dep = self._writable_deployment(dep_id, body, "promote")
        named = _ci(body, "Groups")
        groups = list(dep["TaskGroups"]) if _ci(body, "All") or not named else list(named)
        bad = [f'Task group "{g}" has {self._healthy_canaries(dep, g)}/{dep["TaskGroups"][g]["DesiredCanaries"]} '
               "healthy allocations" for g in groups
               if dep["TaskGroups"][g]["DesiredCanaries"] and not self._canaries_healthy(dep, g)]
        if bad:
            raise HTTPError(500, multierror(*bad))
        for g in groups:
            self._promote_group(dep, g)
        job = self.state.jobs[_key(dep["Namespace"], dep["JobID"])]
        ev = self._new_eval(job, "deployment-watcher", dep_id)
        self._progress(dep)
        self._commit("allocs", "deployments", "jobs")
        return self._update_response(ev, dep)

    def _healthy_canaries(self, dep: Json, name: str) -> int:
        tg = dep["TaskGroups"][name]
        return sum(1 for i in tg["PlacedCanaries"] or [] if self.state.allocs[i]["ClientStatus"] not in TERMINAL_ALLOC
                   and (self.state.allocs[i]["DeploymentStatus"] or {}).get("Healthy"))

    def _fail(self, dep_id: str, body: Json) -> Json:
        dep = self._writable_deployment(dep_id, body, "fail", body_id=False)
        reverted = self._fail_deployment(dep, "Deployment marked as failed", revert_groups=None)
        job = self.state.jobs[_key(dep["Namespace"], dep["JobID"])]
        ev = self._new_eval(job, "deployment-watcher", dep_id)
        self._commit("allocs", "deployments", "jobs")
        return self._update_response(ev, dep, reverted)

    def _pause(self, dep_id: str, body: Json) -> Json:
        pause = bool(_typed(body, "Pause", bool, "bool"))
        dep = self._writable_deployment(dep_id, body, "pause" if pause else "resume")
        dep["Status"] = "paused" if pause else "running"
        dep["StatusDescription"] = "Deployment is paused" if pause else "Deployment is running"
        for tg in dep["TaskGroups"].values():
            if tg["ProgressDeadline"] and tg["RequireProgressBy"]:
                tg["RequireProgressBy"] = _iso(self.now + timedelta(seconds=tg["ProgressDeadline"] / NS))
        ev = None
        if not pause:
            ev = self._new_eval(self.state.jobs[_key(dep["Namespace"], dep["JobID"])], "deployment-watcher", dep_id)
            self._progress(dep)
        if dep["Status"] == "running":
            self._describe(dep)
        dep["ModifyIndex"] = self._commit("deployments")
        return self._update_response(ev, dep)

    def _alloc_health(self, dep_id: str, body: Json) -> Json:
        dep = self._writable_deployment(dep_id, body, "set health of allocations for a", body_id=True)
        healthy = _ci(body, "HealthyAllocationIDs") or []
        unhealthy = _ci(body, "UnhealthyAllocationIDs") or []
        if not healthy and not unhealthy:
            raise HTTPError(500, "must specify at least one healthy/unhealthy allocation ID")
        for alloc_id in [*healthy, *unhealthy]:
            alloc = self.state.allocs.get(alloc_id)
            if alloc is None:
                raise HTTPError(500, f'unknown alloc "{alloc_id}"')
            if alloc["DeploymentID"] != dep_id:
                raise HTTPError(500, f'alloc "{alloc_id}" is not part of deployment "{dep_id}"')
        reverted = None
        for alloc_id in healthy:
            self._set_health(self.state.allocs[alloc_id], True)
        if unhealthy:
            before = self.state.jobs[_key(dep["Namespace"], dep["JobID"])]["Version"]
            for alloc_id in unhealthy:
                self._set_health(self.state.allocs[alloc_id], False)
            after = self.state.jobs[_key(dep["Namespace"], dep["JobID"])]
            reverted = after["Version"] if after["Version"] != before else None
            if reverted is not None:
                reverted = self._reverted_source(dep)
        self._commit("allocs", "deployments", "jobs")
        return self._update_response(None, dep, reverted)

    def _reverted_source(self, dep: Json) -> int | None:
        match = re.search(r"rolling back to job version (\d+)", dep["StatusDescription"])
        return int(match.group(1)) if match else None

    # ---------------------------------------------------------------- variables
    def _var(self, method: str, path: str, query: dict[str, str], body: Json | None) -> Any:
        # A write goes to the body's Namespace when it names one (as Nomad's Variables.Apply does), else the query's.
        ns = str(_ci(body or {}, "Namespace") or self._ns(query))
        key = _key(ns, path)
        current = self.state.variables.get(key)
        if method == "GET":
            if current is None:
                raise HTTPError(404, "variable not found")
            return copy.deepcopy(current), current["ModifyIndex"]
        cas = query.get("cas")
        if cas is not None and int(cas) != (current["ModifyIndex"] if current else 0):
            raise HTTPError(409, "cas conflict", body=copy.deepcopy(current) if current else
                            {"Namespace": ns, "Path": path, "ModifyIndex": 0})
        if method == "DELETE":
            self.state.variables.pop(key, None)
            self._commit("variables")
            return None
        assert body is not None
        items = _ci(body, "Items")
        if not isinstance(items, dict) or not all(isinstance(v, str) for v in items.values()):
            raise HTTPError(400, "json: cannot unmarshal into Go struct field Variable.Items of type map[string]string")
        index = self._commit("variables")
        var = {"Namespace": ns, "Path": path, "Items": items,
               "CreateIndex": current["CreateIndex"] if current else index, "ModifyIndex": index,
               "CreateTime": current["CreateTime"] if current else _ns_time(self.now), "ModifyTime": _ns_time(self.now)}
        self.state.variables[key] = var
        return copy.deepcopy(var)

    def _var_index(self, path: str) -> int:
        hits = [v for k, v in self.state.variables.items() if k.endswith("\x00" + path)]
        return hits[0]["ModifyIndex"] if hits else self.state.tables.get("variables", 1)

    def _list_vars(self, query: dict[str, str], _: Any) -> tuple[list[Json], int]:
        prefix, ns = query.get("prefix", ""), self._ns(query)
        stubs = [{k: v for k, v in var.items() if k != "Items"} for var in self.state.variables.values()
                 if var["Path"].startswith(prefix) and ns in ("*", var["Namespace"])]
        return sorted(stubs, key=lambda s: s["Path"]), self.state.tables.get("variables", 1)


class _Handler(BaseHTTPRequestHandler):
    nomad: FakeNomad
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one segment per response: no 40 ms delayed-ACK stalls on keep-alive
    wbufsize = 1 << 16

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the fake's request_log instead."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload, index = self.nomad.handle(self.command, self.path, headers, body)
        except Exception as e:  # a bug in the fake must surface as a 500, not a hung client
            status, payload, index = 500, f"fake nomad bug: {e!r}", 0
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, ctype = json.dumps(_public(payload)).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Nomad-Index", str(index))
            self.send_header("X-Nomad-KnownLeader", "true")
            self.send_header("X-Nomad-LastContact", "0")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve


def _public(value: Any) -> Any:
    """Drop the fake's private bookkeeping (`_`-prefixed keys) from responses."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value


# ---------------------------------------------------------------- helpers
def default_nodes() -> list[Node]:
    """Three CPU nodes and one single-GPU node."""
    nodes = [Node(_uuid(), f"cpu-{i}", "cpu", 0) for i in range(1, 4)]
    return [*nodes, Node(_uuid(), "gpu-1", "gpu", 1)]


def _is_live(alloc: Json) -> bool:
    return alloc["ClientStatus"] not in TERMINAL_ALLOC and alloc["DesiredStatus"] == "run"


def _uuid() -> str:
    return str(uuid.uuid4())


def _key(namespace: str, job_id: str) -> str:
    return f"{namespace}\x00{job_id}"


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _ns_time(when: datetime) -> int:
    return int(when.timestamp() * NS)


def _group(job: Json | None, name: str) -> Json | None:
    return next((g for g in (job or {}).get("TaskGroups") or [] if g["Name"] == name), None)


def _gpus(group: Json) -> int:
    total = 0
    for task in group.get("Tasks") or []:
        for dev in (task.get("Resources") or {}).get("Devices") or []:
            if str(dev.get("Name", "")).endswith("gpu"):
                total += int(dev.get("Count") or 1)
    return total


def _gpus_of_alloc(alloc: Json) -> int:
    return int(alloc.get("_gpus", 0))


def _image(group: Json) -> str:
    tasks = group.get("Tasks") or [{}]
    return str((tasks[0].get("Config") or {}).get("image", ""))


def _node_class(job: Json, group: Json) -> str | None:
    for c in [*(job.get("Constraints") or []), *(group.get("Constraints") or [])]:
        if c.get("LTarget") == "${node.class}" and c.get("Operand", "=") in {"=", "=="}:
            return str(c.get("RTarget"))
    return None


def node_value(node: Node, target: str) -> str | None:
    """A node's value for `${node.class}`, `${node.unique.id}`, `${attr.X}`, `${meta.X}`...; None when unset."""
    name = target.removeprefix("${").removesuffix("}")
    fixed = {"node.class": node.node_class, "node.unique.id": node.id, "node.unique.name": node.name,
             "node.datacenter": node.datacenter, "node.pool": "default"}
    if name in fixed:
        return fixed[name]
    if name.startswith("attr."):
        return node.attributes.get(name[5:])
    if name.startswith("meta."):
        return node.meta.get(name[5:])
    return None


def _node_matches(node: Node, job: Json, group: Json) -> bool:
    """`=`/`!=`/`is_set`/`regexp` constraints on `${attr.*}`/`${meta.*}`/`${node.*}` (other targets are ignored)."""
    tasks = [c for t in group.get("Tasks") or [] for c in t.get("Constraints") or []]
    for c in [*(job.get("Constraints") or []), *(group.get("Constraints") or []), *tasks]:
        target = str(c.get("LTarget") or "")
        if not re.fullmatch(r"\$\{(attr|meta|node)\.[^}]+\}", target):
            continue
        value, op, want = node_value(node, target), c.get("Operand") or "=", str(c.get("RTarget") or "")
        ok = {"=": value == want, "==": value == want, "!=": value != want, "is_set": value is not None,
              "is_not_set": value is None, "regexp": value is not None and re.search(want, value) is not None}
        if not ok.get(op, True):
            return False
    return True


def _stub(alloc: Json) -> Json:
    hidden = {"Job", "DeploymentID", "AllocatedResources", "Metrics", "AllocStates", "PreviousAllocation",
              "NetworkStatus", "AllocModifyIndex"}
    return {k: copy.deepcopy(v) for k, v in alloc.items() if k not in hidden}


def _task_states(alloc: Json, state: str, *, failed: bool) -> Json:
    events: list[Json] = [{"Type": "Received"}, {"Type": "Started"}]
    if state == "dead":
        events.append({"Type": "Terminated", "ExitCode": 1 if failed else 0})
    return {"main": {"State": state, "Failed": failed, "Restarts": 0, "Events": events}}


def _failed_metrics(evaluated: int, feasible: int) -> Json:
    return {"NodesEvaluated": evaluated, "NodesFiltered": evaluated - feasible, "NodesExhausted": feasible,
            "ClassFiltered": None, "ConstraintFiltered": None, "ClassExhausted": None,
            "DimensionExhausted": {"devices: nvidia/gpu": feasible}, "QuotaExhausted": None,
            "CoalescedFailures": 0}


def _preserve_counts(existing: Json, job: Json) -> None:
    """`PreserveCounts`: groups present in both jobs keep the running job's Count (state.updatePreservedValues)."""
    running = {g["Name"]: g["Count"] for g in existing.get("TaskGroups") or []}
    for group in job.get("TaskGroups") or []:
        if group["Name"] in running:
            group["Count"] = running[group["Name"]]


def _register_response(eval_id: str, eval_index: int, job_modify: int, index: int) -> Json:
    return {"EvalID": eval_id, "EvalCreateIndex": eval_index, "JobModifyIndex": job_modify, "Warnings": "",
            "Index": index, "LastContact": 0, "KnownLeader": True, "NextToken": ""}


def _update_errors(update: Json | None) -> list[str]:
    if not update:
        return []
    errors = []
    if update.get("HealthCheck") not in {"checks", "task_states", "manual"}:
        errors.append(f"Invalid health check given: {update.get('HealthCheck')!r}")
    if update.get("MaxParallel", 0) < 0:
        errors.append("Max parallel can not be less than zero")
    if update.get("Canary", 0) < 0:
        errors.append("Canary count can not be less than zero")
    if update.get("AutoPromote") and not update.get("Canary"):
        errors.append("Auto Promote requires a Canary count greater than zero")
    if not 0 <= update.get("MinHealthyTime", 0) < update.get("HealthyDeadline", 1):
        errors.append("Minimum healthy time must be less than healthy deadline")
    pd = update.get("ProgressDeadline", 0)
    if pd and pd <= update.get("HealthyDeadline", 0):
        errors.append("Progress deadline must be greater than healthy deadline")
    return errors


def _diff(old: Json | None, new: Json) -> Json:
    """A JobDiff with field-level changes of the top-level spec and each group (Type None/Added/Edited)."""
    if old is None:
        return {"Type": "Added", "ID": new["ID"], "Fields": None, "Objects": None, "TaskGroups": None}
    fields = [{"Type": "Edited", "Name": k, "Old": json.dumps(old.get(k)), "New": json.dumps(new.get(k)),
               "Annotations": None} for k in sorted(set(_spec(old)) | set(_spec(new)))
              if k != "TaskGroups" and old.get(k) != new.get(k)]
    groups = []
    for g in new.get("TaskGroups") or []:
        og = _group(old, g["Name"])
        if og != g:
            changed = [{"Type": "Edited", "Name": k, "Old": json.dumps((og or {}).get(k)), "New": json.dumps(g.get(k)),
                        "Annotations": None} for k in sorted(set(og or {}) | set(g)) if (og or {}).get(k) != g.get(k)]
            groups.append({"Type": "Edited" if og else "Added", "Name": g["Name"], "Fields": changed,
                           "Objects": None, "Updates": None, "Tasks": None})
    kind = "Edited" if fields or groups else "None"
    return {"Type": kind, "ID": new["ID"], "Fields": fields or None, "Objects": None, "TaskGroups": groups or None}


@dataclass
class FakeNomadServer:
    """Convenience for fixtures: start a fake and yield it."""

    fake: FakeNomad

    def __iter__(self) -> Iterator[FakeNomad]:
        with self.fake:
            yield self.fake
