"""Nomad's docker task driver and client, simulated on the local Docker engine for the fake Nomad.

`FakeNomad(driver=DockerDriver(engine_url, host_roots=[data_root]))` runs every placed allocation's docker tasks as
real containers. What is modelled (reference/nomad-api.md §4, Nomad's docker driver and client docs):

- Task environment: `NOMAD_*` (alloc/job/group/task ids and names, `NOMAD_ALLOC_DIR=/alloc`, `NOMAD_TASK_DIR=/local`,
  `NOMAD_SECRETS_DIR=/secrets`, `NOMAD_PORT_<label>`...), `NOMAD_META_<key>` (job, then group, then task meta;
  dispatch meta is the child's job meta), the task's `Env`, then template env files (`Envvars`), which win.
  `${...}` in `Config` and `Env` is interpolated from that environment plus the simulated node's `${node.class}`,
  `${node.unique.id|name}`, `${node.datacenter}`, `${attr.*}`, `${meta.*}`; unknown names stay as written (as Nomad).
- Folders: each allocation gets real host folders (`alloc_dir(alloc_id)`): `alloc/`, `<task>/local`, `<task>/secrets`,
  bound at `/alloc`, `/local`, `/secrets` like the docker driver does.
- Templates: exactly `{{ with nomadVar "PATH" }}...{{ .key }}...{{ end }}` (plus literal text); anything else fails the
  task with a `Task hook failed` event `Template failed: ...`. Reads follow the workload identity's ACL: the implicit
  `nomad/jobs`, `nomad/jobs/<job>`, `.../<group>`, `.../<group>/<task>` in the job's namespace (a dispatched child
  uses its parent's id) plus `grant(...)` (a policy attached with a JobACL). A denied or missing variable blocks the
  task (alloc stays `pending`) with a `Template` event `Missing: nomad.var.block(PATH@NS.REGION)`, as consul-template
  blocks; it renders as soon as a readable variable appears.
- Image: pulled from its registry with the rendered `auth` (`username`/`password`) once per simulated node (each node
  has its own image cache; `force_pull` pulls every time). A refused pull fails the task (`Driver Failure`,
  ``Failed to pull `IMAGE`: ...``); Nomad would retry it per the restart policy, the fake does not.
- `mount` entries of type `bind` (and `volumes` strings) become bind mounts (`readonly` honoured). A source outside
  the allocation folder needs `volumes_enabled` (the plugin's `volumes.enabled`) and, a fake-only guard, to lie under
  one of `host_roots`; otherwise `Driver Failure` `volumes are not enabled; cannot mount host path: ...`. Group host
  volumes (`Volumes` + task `VolumeMounts`) come from `host_volumes` (the simulated client config).
- Network: the engine has no bridge, so containers run with `network_mode="host"`; a group `DynamicPorts` label gets
  a free loopback port, which is both `NOMAD_PORT_<label>` and `NOMAD_HOST_PORT_<label>` (no port mapping: `To` is
  recorded, not applied). A docker `ports` label without a group port fails the task with the driver's text
  `Port "http" not found, check network block`.
- Health: service `Checks` (`http`: GET 127.0.0.1:<port><Path> answers 2xx; `tcp`: connect) run every `Interval`;
  with `Update.HealthCheck` `checks` (or `task_states`: tasks running) an allocation in a deployment turns healthy
  after `MinHealthyTime` and unhealthy when a task fails or at `HealthyDeadline`.
- User: the task's `User` is the container's user (the contract's unprivileged uid for the project's jobs).
- Resources: `CPU` MHz -> `nano_cpus` (delivery.contract: 2000 MHz = one CPU), `MemoryMB` -> `mem_limit`;
  `nvidia/gpu` devices become a GPU device request (placement on GPU nodes is the fake scheduler's).
- Lifecycle: batch exit 0 -> task dead, alloc `complete`; otherwise (any exit of a service task, a non-zero batch exit,
  a container killed from outside) `RestartPolicy` (Attempts within Interval, after Delay; mode `delay` is treated as
  `fail`), then the alloc fails and, unless it is an unhealthy member of a running deployment, `ReschedulePolicy`
  (Attempts within Interval, or Unlimited; constant Delay) places a replacement linked by `PreviousAllocation`.
- Not modelled: template re-render on a Variable change (`ChangeMode`), CPU/memory bin-packing (a task asking for more
  CPUs than the engine has is capped to the engine's), port mapping, lifecycle hooks/sidecars, log shipping.
- Time: durations are Nomad's (ns) divided by `speed`, so tests can run a 10 s MinHealthyTime in one second; the fake's
  clock runs at the same speed.

Every container carries the labels `fake-nomad=1`, `fake-nomad.session`, `fake-nomad.alloc`; `close()` (called by
`FakeNomad.stop()`) removes this session's, and `remove_leftovers()` those a crashed run left behind.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import requests

from delivery.contract import Limits
from delivery.docker import DockerClient
from delivery.localenv import free_port
from tests.support.fake_nomad import FakeNomad, Node, node_value

Json = dict[str, Any]
NS = 1_000_000_000
LABEL = "fake-nomad"
TICK_S = 0.05
KNOWN_CONFIG = {"image", "command", "args", "entrypoint", "auth", "auth_soft_fail", "mount", "volumes", "ports",
                "force_pull", "work_dir", "labels", "network_mode", "readonly_rootfs"}
RESTART_DEFAULTS = {"batch": {"Attempts": 3, "Interval": 86400 * NS, "Delay": 15 * NS, "Mode": "fail"},
                    "service": {"Attempts": 2, "Interval": 1800 * NS, "Delay": 15 * NS, "Mode": "fail"}}
RESCHEDULE_DEFAULTS = {"batch": {"Attempts": 1, "Interval": 86400 * NS, "Delay": 5 * NS, "Unlimited": False},
                       "service": {"Attempts": 0, "Interval": 0, "Delay": 30 * NS, "Unlimited": True}}
_VAR = re.compile(r"\$\{([^}]+)\}")


class TaskFailure(Exception):
    """The task cannot run: an event of `kind` with `message`, and the task fails."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass(frozen=True)
class JobPolicy:
    """An ACL policy attached to a job's workload identity (JobACL): read access to variable path globs."""

    job_id: str
    paths: tuple[str, ...]
    namespace: str = "default"
    group: str = ""
    task: str = ""


# ---------------------------------------------------------------- pure parts
def interpolate(value: Any, env: dict[str, str]) -> Any:
    """`${NAME}` replaced from `env` in every string of `value`; unknown names stay as written."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    return value


def may_read(path: str, namespace: str, identity: tuple[str, str, str, str], policies: Iterable[JobPolicy]) -> bool:
    """Whether a task's workload identity (namespace, job id, group, task) may read the variable at `path`."""
    ns, job_id, group, task = identity
    if namespace != ns:
        return False
    implicit = {"nomad/jobs", f"nomad/jobs/{job_id}", f"nomad/jobs/{job_id}/{group}",
                f"nomad/jobs/{job_id}/{group}/{task}"}
    if path in implicit:
        return True
    return any(p.namespace == ns and p.job_id == job_id and p.group in ("", group) and p.task in ("", task)
               and any(fnmatch.fnmatchcase(path, glob) for glob in p.paths) for p in policies)


def render_template(text: str, lookup: Callable[[str], dict[str, str] | None]) -> tuple[str, list[str]]:
    """Render the supported template form; returns (text, paths still missing). Raises ValueError otherwise."""
    out: list[str] = []
    missing: list[str] = []
    items: dict[str, str] | None = None
    inside = False
    for part in re.split(r"(\{\{.*?\}\})", text, flags=re.S):
        if not (part.startswith("{{") and part.endswith("}}")):
            if "{{" in part or "}}" in part:
                raise ValueError(f"unbalanced action in {part!r}")
            if not inside or items is not None:
                out.append(part)
            continue
        action = part[2:-2].strip()
        with_var = re.fullmatch(r'with nomadVar "([A-Za-z0-9/_.@-]+)"', action)
        key = re.fullmatch(r"\.([A-Za-z_][A-Za-z0-9_]*)", action)
        if with_var and not inside:
            inside, items = True, lookup(with_var.group(1))
            if items is None:
                missing.append(with_var.group(1))
        elif action == "end" and inside:
            inside, items = False, None
        elif key and inside:
            if items is not None:
                out.append(items.get(key.group(1), "<no value>"))
        else:
            raise ValueError(f"unsupported template action {{{{ {action} }}}}")
    if inside:
        raise ValueError("unexpected EOF: a `with` has no `end`")
    return "".join(out), missing


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines of a template rendered with `Envvars` (blank lines and `#` comments skipped)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip().strip('"')
    return env


def policy(job: Json, group: Json, kind: str) -> Json:
    """The group's RestartPolicy / ReschedulePolicy over the job type's defaults."""
    defaults = (RESTART_DEFAULTS if kind == "RestartPolicy" else RESCHEDULE_DEFAULTS)
    base = dict(defaults["batch" if job.get("Type") in ("batch", "sysbatch") else "service"])
    job_level = job.get("Reschedule") if kind == "ReschedulePolicy" else None
    return {**base, **{k: v for k, v in (job_level or {}).items() if v is not None},
            **{k: v for k, v in (group.get(kind) or {}).items() if v is not None}}


def group_ports(group: Json) -> dict[str, tuple[int, int]]:
    """label -> (host port, To) for the group's network: a free loopback port per dynamic label."""
    ports: dict[str, tuple[int, int]] = {}
    for net in group.get("Networks") or []:
        for port in net.get("ReservedPorts") or []:
            ports[port["Label"]] = (int(port["Value"]), int(port.get("To") or 0))
        for port in net.get("DynamicPorts") or []:
            ports[port["Label"]] = (free_port(), int(port.get("To") or 0))
    return ports


def remove_leftovers(engine: str | docker.DockerClient, session: str | None = None) -> int:
    """Remove containers a fake Nomad started (one session's, or every session's); returns how many."""
    client = engine if isinstance(engine, docker.DockerClient) else docker.DockerClient(base_url=engine)
    wanted = [f"{LABEL}.session={session}"] if session else [f"{LABEL}=1"]
    removed = 0
    for found in client.api.containers(all=True, filters={"label": wanted}):
        try:
            client.api.remove_container(found["Id"], force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    return removed


# ---------------------------------------------------------------- the driver
class DockerDriver:
    """The simulated clients' docker driver; pass it to `FakeNomad(driver=...)`."""

    def __init__(self, engine: str | DockerClient, *, host_roots: Sequence[Path] = (), volumes_enabled: bool = True,
                 host_volumes: dict[str, Path] | None = None, speed: float = 1.0, work_root: Path | None = None,
                 region: str = "global") -> None:
        if isinstance(engine, str):  # an engine URL (EngineHandle.base_url); else delivery's DockerClient
            self.client = docker.DockerClient(base_url=engine, max_pool_size=64, timeout=120)
        else:
            self.client = engine.sdk
        self.host_roots = tuple(Path(r).resolve() for r in host_roots)
        self.volumes_enabled = volumes_enabled
        self.host_volumes = {k: Path(v) for k, v in (host_volumes or {}).items()}
        self.speed = speed
        self.region = region
        self.session = uuid.uuid4().hex[:12]
        self.work_root = Path(work_root or tempfile.mkdtemp(prefix="fake-nomad-"))
        self.policies: list[JobPolicy] = []
        self.runners: dict[str, AllocRunner] = {}
        self.pulled: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.fake: FakeNomad | None = None
        self.closing = False

    # ---- FakeNomad's side (called under fake.cond: never block)
    def attach(self, fake: FakeNomad) -> None:
        self.fake = fake
        self.region = fake.region

    def place(self, alloc: Json, job: Json, group: Json, node: Node) -> None:
        if self.closing:
            return
        ports = group_ports(group)
        alloc["AllocatedResources"] = _allocated(group, ports)
        runner = AllocRunner(self, alloc, copy.deepcopy(job), copy.deepcopy(group), node, ports)
        alloc["TaskStates"] = {name: copy.deepcopy(task.state) for name, task in runner.tasks.items()}
        self.runners[alloc["ID"]] = runner
        runner.start()

    def release(self, alloc_id: str) -> None:
        runner = self.runners.get(alloc_id)
        if runner is not None:
            runner.stopping.set()

    def close(self) -> None:
        self.closing = True  # the cluster goes away: containers are killed, not given their KillTimeout
        for runner in list(self.runners.values()):
            runner.stopping.set()
        remove_leftovers(self.client, self.session)  # also ends the stops still waiting out a KillTimeout
        for runner in list(self.runners.values()):
            runner.join(10.0)
        remove_leftovers(self.client, self.session)
        shutil.rmtree(self.work_root, ignore_errors=True)

    # ---- test hooks
    def grant(self, job_id: str, paths: Sequence[str], *, namespace: str = "default", group: str = "",
              task: str = "") -> None:
        """Attach an ACL policy (JobACL) letting `job_id`'s tasks read the variable path globs `paths`."""
        self.policies.append(JobPolicy(job_id, tuple(paths), namespace, group, task))

    def alloc_dir(self, alloc_id: str) -> Path:
        """The allocation's host folder: `alloc/`, `<task>/local`, `<task>/secrets`."""
        return self.work_root / alloc_id

    def logs(self, alloc_id: str, task: str = "main") -> str:
        """stdout+stderr of the task's containers so far (ended runs, then the running one)."""
        runner = self.runners[alloc_id]
        return runner.tasks[task].all_logs()

    def container_id(self, alloc_id: str, task: str = "main") -> str | None:
        """The task's current container, if one runs."""
        return self.runners[alloc_id].tasks[task].container

    def check_results(self, alloc_id: str) -> dict[str, bool | None]:
        """Last result of each service check of the allocation (None: not run yet)."""
        return dict(self.runners[alloc_id].check_status)

    def seconds(self, nanos: int | float) -> float:
        """A Nomad duration in real seconds at this driver's speed."""
        return float(nanos) / NS / self.speed

    def ensure_image(self, node_id: str, image: str, auth: dict[str, str] | None, force: bool) -> None:
        """Pull `image` for the simulated node unless its cache has it. Raises TaskFailure when refused."""
        with self.lock:
            if (node_id, image) in self.pulled and not force:
                return
        try:
            self.client.images.pull(image, auth_config=auth or {})  # {}: never the host's ~/.docker credentials
        except (docker.errors.APIError, requests.RequestException) as e:
            text = getattr(e, "explanation", None) or str(e)
            raise TaskFailure("Driver Failure", f"Failed to pull `{image}`: {text}") from e
        with self.lock:
            self.pulled.add((node_id, image))


def _allocated(group: Json, ports: dict[str, tuple[int, int]]) -> Json:
    shared = [{"Label": label, "Value": value, "To": to, "HostIP": "127.0.0.1"} for label, (value, to) in ports.items()]
    tasks = {t["Name"]: {"Cpu": {"CpuShares": (t.get("Resources") or {}).get("CPU", 100)},
                         "Memory": {"MemoryMB": (t.get("Resources") or {}).get("MemoryMB", 300)},
                         "Devices": (t.get("Resources") or {}).get("Devices"), "Networks": None}
             for t in group.get("Tasks") or []}
    networks = [{"Mode": "host", "IP": "127.0.0.1", "DynamicPorts": [{"Label": p["Label"], "Value": p["Value"],
                 "To": p["To"], "HostNetwork": "default"} for p in shared]}] if shared else None
    return {"Tasks": tasks, "Shared": {"Ports": shared or None, "Networks": networks, "DiskMB": 300}}


# ---------------------------------------------------------------- one allocation
class AllocRunner:
    """The client side of one allocation: a thread per task plus a monitor running checks and health."""

    def __init__(self, driver: DockerDriver, alloc: Json, job: Json, group: Json, node: Node,
                 ports: dict[str, tuple[int, int]]) -> None:
        self.driver, self.alloc_id, self.job, self.group, self.node, self.ports = driver, alloc["ID"], job, group, \
            node, ports
        self.name = str(alloc["Name"])
        self.stopping = threading.Event()
        self.check_status: dict[str, bool | None] = {c["Name"]: None for c in self.checks()}
        self.root = driver.alloc_dir(self.alloc_id)
        (self.root / "alloc" / "data").mkdir(parents=True, exist_ok=True)
        (self.root / "alloc" / "logs").mkdir(parents=True, exist_ok=True)
        self.tasks = {t["Name"]: TaskRunner(self, t) for t in group.get("Tasks") or []}
        self.threads: list[threading.Thread] = []

    @property
    def fake(self) -> FakeNomad:
        assert self.driver.fake is not None
        return self.driver.fake

    def start(self) -> None:
        for task in self.tasks.values():
            self.threads.append(threading.Thread(target=task.run, daemon=True, name=f"task-{self.alloc_id[:8]}"))
        self.threads.append(threading.Thread(target=self.monitor, daemon=True, name=f"mon-{self.alloc_id[:8]}"))
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def checks(self) -> list[Json]:
        """Every service check of the group and its tasks, with the port it probes."""
        found = []
        services = [*(self.group.get("Services") or []),
                    *(s for t in self.group.get("Tasks") or [] for s in t.get("Services") or [])]
        for service in services:
            for check in service.get("Checks") or []:
                label = check.get("PortLabel") or service.get("PortLabel") or ""
                found.append({**check, "Name": check.get("Name") or f"{service.get('Name')}-{check.get('Type')}",
                              "_port": self.ports.get(label, (0, 0))[0]})
        return found

    # ---- state reported to the fake
    def report(self) -> None:
        """Copy the tasks' states into the allocation, derive ClientStatus, and reschedule a failed one."""
        fake = self.fake
        with fake.cond:
            alloc = fake.state.allocs.get(self.alloc_id)
            if alloc is None:
                return
            alloc["TaskStates"] = {name: copy.deepcopy(t.state) for name, t in self.tasks.items()}
            before = alloc["ClientStatus"]
            if alloc["DesiredStatus"] == "run" and before not in ("complete", "failed", "lost"):
                alloc["ClientStatus"] = self.client_status()
            fake._touch(alloc)
            fake._commit("allocs", "jobs")
            if before != "failed" and alloc["ClientStatus"] == "failed":
                self.after_failure(alloc)

    def client_status(self) -> str:
        states = [t.state for t in self.tasks.values()]
        if all(s["State"] == "dead" for s in states):
            return "failed" if any(s["Failed"] for s in states) else "complete"
        if any(s["Failed"] for s in states):
            return "failed"
        return "running" if all(s["State"] == "running" for s in states) else "pending"

    def after_failure(self, alloc: Json) -> None:
        """A failed allocation is rescheduled per its ReschedulePolicy unless its deployment judges it."""
        fake = self.fake
        dep = fake.state.deployments.get(alloc.get("DeploymentID") or "")
        healthy = (alloc.get("DeploymentStatus") or {}).get("Healthy")
        if dep is not None and dep["Status"] == "running" and healthy is not True:
            return  # the health monitor reports it unhealthy: the deployment fails (and may auto-revert)
        delay = self.reschedule_delay(alloc)
        if delay is not None:
            threading.Thread(target=self.reschedule, args=(delay,), daemon=True).start()
        for task in self.tasks.values():
            task.stop_now.set()

    def reschedule_delay(self, alloc: Json) -> float | None:
        rule = policy(self.job, self.group, "ReschedulePolicy")
        now = self.fake.now.timestamp() * NS
        events = (alloc.get("RescheduleTracker") or {}).get("Events") or []
        recent = [e for e in events if not rule["Interval"] or now - e["RescheduleTime"] <= rule["Interval"]]
        if not rule["Unlimited"] and len(recent) >= int(rule["Attempts"] or 0):
            return None
        return self.driver.seconds(rule["Delay"] or 0)

    def reschedule(self, delay: float) -> None:
        time.sleep(delay)
        fake = self.fake
        if self.driver.closing:
            return
        with fake.cond:
            old = fake.state.allocs.get(self.alloc_id)
            if old is None or old["DesiredStatus"] != "run" or old["NextAllocation"]:
                return
            old["DesiredStatus"] = "stop"
            old["DesiredDescription"] = "alloc was rescheduled because it failed"
            fake._touch(old)
            fake._replace(old)
            new = fake.state.allocs.get(old["NextAllocation"] or "")
            if new is not None:
                event = {"RescheduleTime": int(fake.now.timestamp() * NS), "PrevAllocID": old["ID"],
                         "PrevNodeID": old["NodeID"]}
                past = (old.get("RescheduleTracker") or {}).get("Events") or []
                new["RescheduleTracker"] = {"Events": [*past, event]}
            fake._commit("allocs", "jobs", "evals", "deployments")

    # ---- checks and deployment health
    def monitor(self) -> None:
        """Run the checks every Interval and judge deployment health until the allocation is done."""
        due: dict[str, float] = {}
        health = HealthWatch(self)
        while not all(t.state["State"] == "dead" for t in self.tasks.values()):
            now = time.monotonic()
            for check in self.checks():
                if now >= due.get(check["Name"], 0.0):
                    due[check["Name"]] = now + max(self.driver.seconds(check.get("Interval") or 10 * NS), TICK_S)
                    self.check_status[check["Name"]] = self.probe(check)
            health.step()
            time.sleep(TICK_S)
        health.step()  # a task that failed makes the allocation unhealthy in its deployment

    def probe(self, check: Json) -> bool:
        timeout = max(self.driver.seconds(check.get("Timeout") or 2 * NS), 0.5)
        port = int(check["_port"])
        if not port or self.client_status() != "running":
            return False
        try:
            if (check.get("Type") or "").lower() == "tcp":
                with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                    return True
            path = check.get("Path") or "/"
            with requests.Session() as session:
                session.trust_env = False  # a loopback probe never goes through the environment's proxy
                answer = session.request(check.get("Method") or "GET", f"http://127.0.0.1:{port}{path}",
                                         timeout=timeout)
            return 200 <= answer.status_code < 300
        except (OSError, requests.RequestException):
            return False


@dataclass
class HealthWatch:
    """Deployment health of one allocation, as Nomad's client reports it (re-armed when it joins a new deployment)."""

    runner: AllocRunner
    deployment: str = ""
    started: float = 0.0
    since: float | None = None
    restarts: int = 0
    done: set[str] = field(default_factory=set)

    def step(self) -> None:
        fake = self.runner.fake
        with fake.cond:
            alloc = fake.state.allocs.get(self.runner.alloc_id)
            if alloc is None or not alloc.get("DeploymentID") or alloc["DeploymentID"] in self.done:
                return
            update = self.update(alloc)
            if update is None or (alloc.get("DeploymentStatus") or {}).get("Healthy") is not None:
                self.done.add(alloc["DeploymentID"])
                return
            if alloc["DeploymentID"] != self.deployment:
                self.deployment, self.started, self.since = alloc["DeploymentID"], time.monotonic(), None
            verdict = self.verdict(alloc, update)
            if verdict is not None:
                self.done.add(self.deployment)
                if alloc["DesiredStatus"] == "run":
                    fake.set_alloc_health(self.runner.alloc_id, verdict)

    def update(self, alloc: Json) -> Json | None:
        fake = self.runner.fake
        job = fake._version_or_current(alloc) or {}
        group = next((g for g in job.get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), None)
        update = (group or {}).get("Update") or {}
        return update if update.get("HealthCheck") in ("checks", "task_states") else None

    def verdict(self, alloc: Json, update: Json) -> bool | None:
        runner, now = self.runner, time.monotonic()
        states = [t.state for t in runner.tasks.values()]
        if alloc["ClientStatus"] in ("failed", "lost") or any(s["Failed"] for s in states):
            return False
        restarts = sum(int(s["Restarts"]) for s in states)
        checks = update["HealthCheck"] != "checks" or all(runner.check_status.get(c) for c in runner.check_status)
        if restarts != self.restarts or not (alloc["ClientStatus"] == "running" and checks):
            self.restarts, self.since = restarts, None
        elif self.since is None:
            self.since = now
        if self.since is not None and now - self.since >= runner.driver.seconds(update.get("MinHealthyTime") or 0):
            return True
        if now - self.started >= runner.driver.seconds(update.get("HealthyDeadline") or 300 * NS):
            return False
        return None


# ---------------------------------------------------------------- one task
class TaskRunner:
    """One docker task: templates, image, container, restarts; its TaskState as Nomad reports it."""

    def __init__(self, alloc: AllocRunner, task: Json) -> None:
        self.alloc, self.task, self.name = alloc, task, str(task["Name"])
        self.state: Json = {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": None,
                            "StartedAt": None, "FinishedAt": None, "Events": []}
        self.container: str | None = None
        self.logs: list[str] = []
        self.restart_times: list[float] = []
        self.stop_now = threading.Event()  # a sibling task failed: this one stops too
        self.dir = alloc.root / self.name
        for sub in ("local", "secrets", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    @property
    def driver(self) -> DockerDriver:
        return self.alloc.driver

    def stopped(self) -> bool:
        return self.alloc.stopping.is_set() or self.stop_now.is_set()

    def stamp(self) -> str:
        """The cluster clock in RFC 3339, as TaskState times read."""
        return self.alloc.fake.now.isoformat().replace("+00:00", "Z")

    def event(self, kind: str, message: str, **extra: Any) -> None:
        stamp = int(self.alloc.fake.now.timestamp() * NS)
        self.state["Events"].append({"Type": kind, "Time": stamp, "DisplayMessage": message, "Message": message,
                                     "Details": {k: str(v) for k, v in extra.items()}, "FailsTask": False,
                                     "ExitCode": extra.get("exit_code", 0), "Signal": 0, "DriverError": "",
                                     "KillTimeout": 0, **({"FailsTask": True, "DriverError": message}
                                                          if kind == "Driver Failure" else {})})

    def run(self) -> None:
        self.event("Received", "Task received by client")
        self.event("Task Setup", "Building Task Directory")
        self.alloc.report()
        try:
            self.loop()
        except TaskFailure as failure:
            self.event(failure.kind, failure.message)
            self.dead(failed=True)
        except Exception as e:  # a bug in the fake must show in the alloc, not vanish in a thread
            self.event("Driver Failure", f"fake nomad driver bug: {e!r}")
            self.dead(failed=True)

    def loop(self) -> None:
        while True:
            env = self.environment()
            if env is None:
                return self.dead(failed=False)
            code = self.run_once(env)
            if code is None:
                self.event("Killing", "Sent interrupt. Waiting 5s before force killing")
                self.event("Killed", "Task successfully killed")
                return self.dead(failed=False)
            self.event("Terminated", f"Exit Code: {code}", exit_code=code)
            if self.alloc.stopping.is_set():
                return self.dead(failed=False)
            if code == 0 and self.alloc.job.get("Type") in ("batch", "sysbatch"):
                return self.dead(failed=False)
            delay = self.restart_delay()
            if delay is None:
                self.event("Not Restarting", self.no_restart_reason())
                return self.dead(failed=True)
            self.restart(delay)

    def restart(self, delay: float) -> None:
        self.event("Restarting", f"Task restarting in {delay:.3f}s")
        self.state.update(State="pending", Restarts=self.state["Restarts"] + 1,
                          LastRestart=self.stamp())
        self.alloc.report()
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopped():
            time.sleep(min(TICK_S, max(0.0, deadline - time.monotonic())))

    def restart_delay(self) -> float | None:
        rule = policy(self.alloc.job, self.alloc.group, "RestartPolicy")
        now = time.monotonic()
        window = self.driver.seconds(rule["Interval"] or 0)
        self.restart_times = [t for t in self.restart_times if not window or now - t <= window]
        if len(self.restart_times) >= int(rule["Attempts"] or 0) or self.stopped():
            return None
        self.restart_times.append(now)
        return self.driver.seconds(rule["Delay"] or 0)

    def no_restart_reason(self) -> str:
        """Nomad's restart tracker's words for giving up."""
        rule = policy(self.alloc.job, self.alloc.group, "RestartPolicy")
        if not rule["Attempts"]:
            return "Policy allows no restarts"
        interval = f"{self.driver.seconds(rule['Interval']) * self.driver.speed:g}s"
        return f'Exceeded allowed attempts {rule["Attempts"]} in interval {interval} and mode is "{rule["Mode"]}"'

    def dead(self, *, failed: bool) -> None:
        self.remove_container()
        self.state.update(State="dead", Failed=failed, FinishedAt=self.stamp())
        self.alloc.report()

    # ---- environment and templates
    def environment(self) -> dict[str, str] | None:
        """The task's environment, templates rendered; None when the task was stopped while templates waited."""
        env = self.base_env()
        rendered = self.render_templates(env)
        if rendered is None:
            return None
        env.update(interpolate(self.task.get("Env") or {}, env))
        env.update(rendered)
        return env

    def base_env(self) -> dict[str, str]:
        runner, job, node = self.alloc, self.alloc.job, self.alloc.node
        res = self.task.get("Resources") or {}
        env = {"NOMAD_ALLOC_DIR": "/alloc", "NOMAD_TASK_DIR": "/local", "NOMAD_SECRETS_DIR": "/secrets",
               "NOMAD_ALLOC_ID": runner.alloc_id, "NOMAD_SHORT_ALLOC_ID": runner.alloc_id[:8],
               "NOMAD_ALLOC_NAME": runner.name, "NOMAD_ALLOC_INDEX": runner.name.rsplit("[", 1)[-1].rstrip("]"),
               "NOMAD_TASK_NAME": self.name, "NOMAD_GROUP_NAME": str(runner.group["Name"]),
               "NOMAD_JOB_ID": str(job["ID"]), "NOMAD_JOB_NAME": str(job.get("Name") or job["ID"]),
               "NOMAD_JOB_PARENT_ID": str(job.get("ParentID") or ""), "NOMAD_NAMESPACE": str(job["Namespace"]),
               "NOMAD_REGION": self.driver.region, "NOMAD_DC": node.datacenter,
               "NOMAD_CPU_LIMIT": str(res.get("CPU", 100)), "NOMAD_MEMORY_LIMIT": str(res.get("MemoryMB", 300))}
        for label, (port, _to) in runner.ports.items():
            env.update({f"NOMAD_PORT_{label}": str(port), f"NOMAD_HOST_PORT_{label}": str(port),
                        f"NOMAD_IP_{label}": "127.0.0.1", f"NOMAD_ADDR_{label}": f"127.0.0.1:{port}",
                        f"NOMAD_HOST_IP_{label}": "127.0.0.1", f"NOMAD_HOST_ADDR_{label}": f"127.0.0.1:{port}"})
        meta = {**(job.get("Meta") or {}), **(runner.group.get("Meta") or {}), **(self.task.get("Meta") or {})}
        for key, value in meta.items():
            env[f"NOMAD_META_{key}"] = env[f"NOMAD_META_{key.upper()}"] = str(value)
        for name in ("node.class", "node.unique.id", "node.unique.name", "node.datacenter"):
            env[name] = str(node_value(node, name))
        env.update({f"attr.{k}": v for k, v in node.attributes.items()})
        env.update({f"meta.{k}": v for k, v in node.meta.items()})
        return env

    def render_templates(self, env: dict[str, str]) -> dict[str, str] | None:
        """Render every template (blocking while a variable is missing or denied); their env vars."""
        reported: set[str] = set()
        while True:
            outputs, missing = self.try_render()
            if not missing:
                break
            text = ", ".join(f"nomad.var.block({p}@{self.alloc.job['Namespace']}.{self.driver.region})"
                             for p in missing)
            if text not in reported:
                reported.add(text)
                self.event("Template", f"Missing: {text}")
                self.alloc.report()
            fake = self.alloc.fake
            with fake.cond:
                fake.cond.wait(0.5)
            if self.stopped():
                return None
        rendered: dict[str, str] = {}
        for template, text in outputs:
            target = self.dest(str(template.get("DestPath") or ""))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            if template.get("Envvars"):
                rendered.update(parse_env_file(text))
        return rendered

    def try_render(self) -> tuple[list[tuple[Json, str]], list[str]]:
        outputs: list[tuple[Json, str]] = []
        missing: list[str] = []
        for template in self.task.get("Templates") or []:
            if template.get("SourcePath") or not isinstance(template.get("EmbeddedTmpl"), str):
                raise TaskFailure("Task hook failed", "Template failed: only EmbeddedTmpl is supported by the fake")
            try:
                text, absent = render_template(template["EmbeddedTmpl"], self.read_variable)
            except ValueError as e:
                raise TaskFailure("Task hook failed", f"Template failed: {e}") from e
            outputs.append((template, text))
            missing.extend(absent)
        return outputs, missing

    def read_variable(self, path: str) -> dict[str, str] | None:
        job, fake = self.alloc.job, self.alloc.fake
        identity = (str(job["Namespace"]), str(job.get("ParentID") or job["ID"]), str(self.alloc.group["Name"]),
                    self.name)
        if not may_read(path, identity[0], identity, self.driver.policies):
            return None
        with fake.cond:
            var = fake.read_variable(path, identity[0])
        return dict(var["Items"]) if var else None

    def dest(self, dest_path: str) -> Path:
        """A template's DestPath on the host (relative to the task dir; `../alloc/...` is the alloc dir)."""
        target = (self.dir / dest_path).resolve()
        if not target.is_relative_to(self.alloc.root.resolve()):
            raise TaskFailure("Task hook failed", f"Template failed: destination {dest_path!r} escapes the alloc dir")
        return target

    # ---- the container
    def run_once(self, env: dict[str, str]) -> int | None:
        """Create and start the container and wait for it: its exit code, or None when it was stopped."""
        spec = self.container_spec(env)
        auth = self.auth(spec["config"])
        self.event("Driver", f"Downloading image {spec['image']}")
        self.driver.ensure_image(self.alloc.node.id, spec["image"], auth, bool(spec["config"].get("force_pull")))
        self.remove_container()
        try:
            container = self.driver.client.containers.create(spec["image"], **spec["kwargs"])
            self.container = str(container.id)
            container.start()
        except (docker.errors.APIError, requests.RequestException) as e:
            text = getattr(e, "explanation", None) or str(e)
            raise TaskFailure("Driver Failure", f"failed to start task: {text}") from e
        self.state.update(State="running", StartedAt=self.stamp())
        self.event("Started", "Task started by client")
        self.alloc.report()
        return self.wait(container)

    def wait(self, container: Any) -> int | None:
        while not self.stopped():
            try:
                return int(container.wait(timeout=0.5).get("StatusCode", -1))
            except requests.RequestException:
                continue
            except docker.errors.NotFound:
                return 137  # removed from outside (docker rm -f): the task died
        grace = 0 if self.driver.closing else max(1, min(int(self.driver.seconds(self.task.get("KillTimeout")
                                                                                   or 5 * NS)), 5))
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            container.stop(timeout=grace)
        return None

    def container_spec(self, env: dict[str, str]) -> Json:
        config = interpolate(copy.deepcopy(self.task.get("Config") or {}), env)
        if self.task.get("Driver") != "docker":
            raise TaskFailure("Driver Failure", f"the fake runs only docker tasks, not {self.task.get('Driver')!r}")
        unknown = sorted(set(config) - KNOWN_CONFIG)
        image = str(config.get("image") or "")
        if unknown or not image:
            why = f'An argument named "{unknown[0]}" is not expected here' if unknown else 'The argument "image" is ' \
                'required, but no definition was found'
            raise TaskFailure("Failed Validation", f"failed to parse config: {why}")
        prefix = f"Failed to create container configuration for image {image!r}"
        for label in config.get("ports") or []:
            if label not in self.alloc.ports:
                raise TaskFailure("Driver Failure", f'{prefix}: Port "{label}" not found, check network block')
        mounts = self.system_mounts() + self.user_mounts(config, prefix) + self.volume_mounts(prefix)
        return {"image": image, "config": config, "kwargs": self.create_kwargs(config, env, mounts)}

    def create_kwargs(self, config: Json, env: dict[str, str], mounts: list[docker.types.Mount]) -> Json:
        res = self.task.get("Resources") or {}
        gpus = sum(int(d.get("Count") or 1) for d in res.get("Devices") or [] if str(d.get("Name", "")).endswith("gpu"))
        limits = Limits(int(res.get("CPU") or 100), int(res.get("MemoryMB") or 300), gpus)
        command = [str(config["command"]), *map(str, config.get("args") or [])] if config.get("command") \
            else [str(a) for a in config.get("args") or []] or None
        labels = {**{str(k): str(v) for k, v in (config.get("labels") or {}).items()}, LABEL: "1",
                  f"{LABEL}.session": self.driver.session, f"{LABEL}.alloc": self.alloc.alloc_id,
                  f"{LABEL}.node": self.alloc.node.name, "com.hashicorp.nomad.alloc_id": self.alloc.alloc_id}
        container_env = {k: v for k, v in env.items() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)}
        return {"command": command, "entrypoint": config.get("entrypoint"),
                "name": f"{self.name}-{self.alloc.alloc_id}",
                "environment": container_env, "labels": labels, "network_mode": "host", "mounts": mounts,
                "working_dir": config.get("work_dir"), "user": str(self.task.get("User") or "") or None,
                "nano_cpus": limits.nano_cpus(os.cpu_count()), "detach": True,
                "mem_limit": limits.memory_bytes, "read_only": bool(config.get("readonly_rootfs")),
                "device_requests": [docker.types.DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None}

    def system_mounts(self) -> list[docker.types.Mount]:
        root = self.alloc.root
        return [docker.types.Mount("/alloc", str(root / "alloc"), type="bind"),
                docker.types.Mount("/local", str(self.dir / "local"), type="bind"),
                docker.types.Mount("/secrets", str(self.dir / "secrets"), type="bind")]

    def user_mounts(self, config: Json, prefix: str) -> list[docker.types.Mount]:
        mounts = []
        for entry in config.get("mount") or []:
            kind = entry.get("type") or "volume"
            if kind == "tmpfs":
                mounts.append(docker.types.Mount(str(entry["target"]), None, type="tmpfs"))
                continue
            if kind != "bind":
                raise TaskFailure("Driver Failure", f"{prefix}: mount type {kind!r} is not supported by the fake")
            source = self.host_path(str(entry.get("source") or ""), prefix)
            mounts.append(docker.types.Mount(str(entry["target"]), source, type="bind",
                                             read_only=bool(entry.get("readonly"))))
        for text in config.get("volumes") or []:
            parts = str(text).split(":")
            source = self.host_path(parts[0], prefix)
            mounts.append(docker.types.Mount(parts[1], source, type="bind", read_only=parts[2:] == ["ro"]))
        return mounts

    def host_path(self, source: str, prefix: str) -> str:
        """A bind source as the docker driver resolves it (relative to the task dir), refused outside what's allowed."""
        path = (self.dir / source).resolve()
        if path.is_relative_to(self.alloc.root.resolve()):
            return str(path)
        if not self.driver.volumes_enabled:
            raise TaskFailure("Driver Failure", f'{prefix}: volumes are not enabled; cannot mount host path: "{path}"')
        if self.driver.host_roots and not any(path.is_relative_to(r) for r in self.driver.host_roots):
            raise TaskFailure("Driver Failure", f'{prefix}: cannot mount host path "{path}": outside the '
                                                "client's allowed host roots")
        return str(path)

    def volume_mounts(self, prefix: str) -> list[docker.types.Mount]:
        mounts = []
        volumes = self.alloc.group.get("Volumes") or {}
        for mount in self.task.get("VolumeMounts") or []:
            volume = volumes.get(mount.get("Volume")) or {}
            source = self.driver.host_volumes.get(str(volume.get("Source")))
            if volume.get("Type") != "host" or source is None:
                raise TaskFailure("Setup Failure", f"{prefix}: host volume {volume.get('Source')!r} is not "
                                                   "configured on the client")
            read_only = bool(mount.get("ReadOnly") or volume.get("ReadOnly"))
            mounts.append(docker.types.Mount(str(mount["Destination"]), str(source), type="bind", read_only=read_only))
        return mounts

    def auth(self, config: Json) -> dict[str, str] | None:
        auth = config.get("auth")
        entry = auth[0] if isinstance(auth, list) and auth else auth
        if not isinstance(entry, dict):
            return None
        return {"username": str(entry.get("username") or ""), "password": str(entry.get("password") or ""),
                "serveraddress": str(entry.get("server_address") or "")}

    def remove_container(self) -> None:
        if self.container is None:
            return
        try:
            self.logs.append(self.driver.client.containers.get(self.container).logs().decode("utf-8", "replace"))
            self.driver.client.api.remove_container(self.container, force=True)
        except (docker.errors.APIError, requests.RequestException):
            pass
        self.container = None

    def all_logs(self) -> str:
        live = ""
        if self.container:
            try:
                live = self.driver.client.containers.get(self.container).logs().decode("utf-8", "replace")
            except (docker.errors.APIError, requests.RequestException):
                live = ""
        return "".join(self.logs) + live
