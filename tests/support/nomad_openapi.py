"""Validation against Nomad's own description: the official OpenAPI document plus the rules it cannot express.

`nomad-openapi.yaml` beside this file is Nomad's OpenAPI document (hashicorp/nomad-openapi, generated from Nomad's
Go structs for Nomad 1.1-1.6). It has no `required` lists, no enums, no `nullable` and no `additionalProperties:
false`, so this module validates in a strict form of it:
- every object with `properties` rejects unknown names (a `"Taskgroups"` typo or a snake_case key fails), except
  opaque maps (`Config`, `Meta`, `Env`, `Items`: schemas with `additionalProperties` and no `properties`);
- `null` is accepted wherever a value is (Go decodes `null` into any field as "unset", and Nomad answers nil
  slices, maps and pointers as `null`: reference/nomad-api.md §0);
- fields Nomad added after 1.6 that this project sends or that Nomad answers are allowed explicitly (`LATER_FIELDS`).

`semantic_problems(job)` adds what no schema says (reference/nomad-api.md §2, §6 and the docker driver's rules).
`exchange_problems` is what the fake Nomad runs on every request and answer it serves in tests.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

Json = dict[str, Any]
DOCUMENT = Path(__file__).with_name("nomad-openapi.yaml")
API_PREFIX = "/v1"
_INT: Json = {"type": "integer"}
_STR: Json = {"type": "string"}
_BOOL: Json = {"type": "boolean"}
_ANY: Json = {}
_STRINGS: Json = {"type": "array", "items": _STR}
# Query/write metadata every answer carries in real Nomad (nomad-api.md §1.1 register response, §1.3 versions,
# §1.8 dispatch, §3.1 `DeploymentUpdateResponse`: `"Index":20`); the document names it `LastIndex`/`RequestTime`.
_META_FIELDS: Json = {"Index": _INT, "LastContact": _INT, "KnownLeader": _BOOL, "NextToken": _STR}
# Fields added after Nomad 1.6 (the document's basis) or missing from it, each documented in nomad-api.md.
LATER_FIELDS: dict[str, Json] = {
    # §2 "Job" field list: NodePool (1.6), UI (1.8), VersionTag (1.9, §1.3 version tags).
    "Job": {"NodePool": _STR, "UI": _ANY, "VersionTag": _ANY},
    # §2 "TaskGroup" field list: Disconnect (1.8), MaxRunDuration (2.0).
    "TaskGroup": {"Disconnect": _ANY, "MaxRunDuration": _INT},
    # §2 "Task" field list: Identity/Identities (workload identity, 1.7), Actions, Schedule, Secrets.
    "Task": {"Identity": _ANY, "Identities": _ANY, "Actions": _ANY, "Schedule": _ANY, "Secrets": _ANY},
    # §2 "Resources" field list: NUMA, SecretsMB.
    "Resources": {"NUMA": _ANY, "SecretsMB": _INT},
    # §3.2 deployment JSON: `EvalPriority`, `CreateTime`, `ModifyTime`; `DeploymentState.AutoPromote`.
    "Deployment": {"EvalPriority": _INT, "CreateTime": _INT, "ModifyTime": _INT},
    "DeploymentState": {"AutoPromote": _BOOL},
    # §1.6 plan response: `DesiredTGUpdates` counters `Disconnect, Reconnect, RescheduleNow, RescheduleLater`.
    "DesiredUpdates": {"Disconnect": _INT, "Reconnect": _INT, "RescheduleNow": _INT, "RescheduleLater": _INT},
    # §1.6 plan response: `"Index":0`; §1.1 register response: `"Index":34`; §3.1 write response: `"Index":20`.
    "JobPlanResponse": _META_FIELDS, "JobRegisterResponse": _META_FIELDS,
    "JobDeregisterResponse": {**_META_FIELDS, "VolumeEvalID": _STR, "VolumeEvalIndex": _INT},
    "DeploymentUpdateResponse": _META_FIELDS, "JobDispatchResponse": _META_FIELDS,
    "JobVersionsResponse": _META_FIELDS,
    # §4: full allocations carry `AllocStates`, `NetworkStatus`; stubs are the full allocation less `Job,
    # DeploymentID, AllocatedResources, Metrics, AllocStates, PreviousAllocation, NetworkStatus, AllocModifyIndex`.
    "Allocation": {"AllocStates": _ANY, "NetworkStatus": _ANY},
    "AllocationListStub": {"DesiredTransition": _ANY, "NextAllocation": _STR},
    # §1.2 jobs list with `meta=true`: stubs carry `Meta`; `Dispatched`... as listed there.
    "JobListStub": {"Meta": {"type": "object", "additionalProperties": _STR}},
    # §1.2 summary `Children`; `Unknown` counter (1.6+ disconnected clients).
    "TaskGroupSummary": {"Unknown": _INT},
    # Variable locks (1.7, `nomad var lock`): the leader lock of the controller service.
    "Variable": {"Lock": _ANY},
    "VariableMetadata": {"Lock": _ANY},
}
DURATION_KEYS = frozenset({
    "Interval", "Timeout", "MinHealthyTime", "HealthyDeadline", "ProgressDeadline", "Stagger", "KillTimeout",
    "ShutdownDelay", "Delay", "MaxDelay", "Splay", "Grace", "MaxClientDisconnect", "StopAfterClientDisconnect",
    "MaxRunDuration", "Deadline"})
UPDATE_DEFAULTS: Json = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * 10**9,
                         "HealthyDeadline": 300 * 10**9, "ProgressDeadline": 600 * 10**9, "AutoPromote": False,
                         "Canary": 0, "Stagger": 30 * 10**9}
HEALTH_CHECKS = ("checks", "task_states", "manual")
_PORTED_CHECKS = {"http", "tcp", "grpc"}
_META_VAR = re.compile(r"\$\{NOMAD_META_([A-Za-z0-9_.-]+)\}")
_NOMAD_VAR = re.compile(r"nomadVar(?:List)?\s+\"([^\"]+)\"")
_NO_UPDATE = ("batch", "sysbatch")


# ---------------------------------------------------------------- the document
@cache
def document() -> Json:
    """The OpenAPI document, loaded once."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with DOCUMENT.open(encoding="utf-8") as f:
        data: Json = yaml.load(f, Loader=loader)  # a safe loader (C or Python)
    return data


@cache
def _components() -> Json:
    """The document's components in strict, null-tolerant form, with the later fields added."""
    components: Json = json.loads(json.dumps(document()["components"]))
    for name, extra in LATER_FIELDS.items():
        components["schemas"][name].setdefault("properties", {}).update(json.loads(json.dumps(extra)))
    _tighten(components)
    return components


def _tighten(node: Any) -> None:
    """Strict objects (no unknown names outside opaque maps) and `null` allowed for every typed value."""
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for key, value in node.items():
        if key != "properties":
            _tighten(value)
    for value in (node.get("properties") or {}).values():
        _tighten(value)


@cache
def _validator(ref: str) -> Any:
    schema = {"$ref": ref, "components": _components()}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=False)


def schema_problems(value: Any, ref: str, where: str = "") -> list[str]:
    """Every way `value` breaks the (strict) schema at `ref`, e.g. `#/components/schemas/Job`."""
    errors = sorted(_validator(ref).iter_errors(value), key=lambda e: [str(p) for p in e.instance_path])
    return [f"{where}{''.join(f'/{p}' for p in e.instance_path)}: {e.message}" for e in errors]


def job_problems(job: Any) -> list[str]:
    """Schema problems of a Job (API JSON form) against `components/schemas/Job`."""
    return schema_problems(job, "#/components/schemas/Job", "Job")


# ---------------------------------------------------------------- operations
@cache
def _templates() -> list[tuple[re.Pattern[str], Json]]:
    """(path regex, operations by method), most literal first: a parameter matches `/` too (job IDs of dispatched
    children, Variable paths), and Nomad routes `/v1/job/...` by suffix (nomad-api.md §0), so the most literal
    template that matches is the route."""
    found = []
    for template, ops in document()["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "(.+)", re.escape(template))
        literal = len(re.sub(r"\{[^}]+\}", "", template))
        found.append((literal, re.compile(f"^{pattern}$"), {m.upper(): op for m, op in ops.items()}))
    return [(regex, ops) for _, regex, ops in sorted(found, key=lambda f: -f[0])]


def operation(method: str, path: str) -> Json | None:
    """The document's operation for METHOD on an API path (`/v1/...`); writes accept PUT and POST alike (§0)."""
    rel = path.split("?", 1)[0].removeprefix(API_PREFIX)
    ops = next((ops for regex, ops in _templates() if regex.match(rel)), {})
    for wanted in {"PUT": ("PUT", "POST"), "POST": ("POST", "PUT")}.get(method, (method,)):
        if wanted in ops:
            found: Json = ops[wanted]
            return found
    return None


def _content_ref(holder: Json) -> str | None:
    """A JSON pointer to the JSON schema of a request body or response (all live under `components`)."""
    pointer = str(holder["$ref"]) if "$ref" in holder else ""
    if pointer and "application/json" in (_resolve(pointer).get("content") or {}):
        return f"{pointer}/content/application~1json/schema"
    content = (holder.get("content") or {}).get("application/json")
    return str(content["schema"]["$ref"]) if content and "$ref" in content["schema"] else None


def _resolve(ref: str) -> Json:
    node: Any = document()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    result: Json = node
    return result


def request_problems(method: str, path: str, body: Any) -> list[str]:
    """Problems of a request: unknown operation, or a JSON body that breaks its schema."""
    op = operation(method, path)
    if op is None:
        return [f"{method} {path}: no such operation in Nomad's OpenAPI document"]
    if body is None or "requestBody" not in op:
        return []
    ref = _content_ref(op["requestBody"])
    return schema_problems(body, ref, f"{method} {path} body") if ref else []


def response_problems(method: str, path: str, status: int, payload: Any) -> list[str]:
    """Problems of an answer: errors are plain text (§0, §5); a 200 JSON answer matches the operation's schema."""
    where = f"{method} {path} answer {status}"
    if status != 200:
        return [] if isinstance(payload, str) else [f"{where}: Nomad answers errors as plain text, not JSON"]
    op = operation(method, path)
    if op is None or "200" not in op["responses"]:
        return [] if op else [f"{method} {path}: no such operation in Nomad's OpenAPI document"]
    ref = _content_ref(op["responses"]["200"])
    if ref is None:
        return []
    if payload is None:
        return []  # `GET /v1/job/:id/deployment` answers JSON null when there is none (§1.9)
    return schema_problems(payload, ref, where)


# ---------------------------------------------------------------- semantic rules
def semantic_problems(job: Json, *, readable: Iterable[str] = ()) -> list[str]:
    """What Nomad (server or docker driver) rejects and no schema says; `readable`: Variable path globs an
    explicit ACL policy lets this job's workload identity read beyond Nomad's implicit policy."""
    problems = _job_type_problems(job) + _duration_problems(job, "Job")
    allowed = tuple(readable)
    job_type = job.get("Type") or "service"
    if job_type not in _NO_UPDATE:
        problems += _update_problems("Job.Update", _merged(job.get("Update")))
    for group in job.get("TaskGroups") or []:
        problems += _group_problems(job, group, allowed)
    return problems


def _job_type_problems(job: Json) -> list[str]:
    job_type = job.get("Type") or "service"
    problems = []
    if job_type in _NO_UPDATE:
        owners = [("Job", job)] + [(f"group {g.get('Name')!r}", g) for g in job.get("TaskGroups") or []]
        problems += [f"{where}: Job type {job_type!r} does not allow update block"
                     for where, owner in owners if owner.get("Update") is not None]
    for key in ("ParameterizedJob", "Periodic"):
        if job.get(key) is not None and job_type not in _NO_UPDATE:
            problems.append(f"Job.{key}: only batch and sysbatch jobs may be {key} (this is {job_type!r})")
    return problems


def _group_problems(job: Json, group: Json, readable: tuple[str, ...]) -> list[str]:
    where = f"group {group.get('Name')!r}"
    labels = _port_labels(group)
    problems = _service_problems(where, group.get("Services"), labels)
    if (job.get("Type") or "service") not in _NO_UPDATE and group.get("Update") is not None:
        problems += _update_problems(f"{where} Update", _merged(job.get("Update"), group["Update"]))
    for task in group.get("Tasks") or []:
        problems += _task_problems(job, group, task, labels, readable)
    return problems


def _port_labels(group: Json) -> set[str]:
    """Port labels a group's network declares (also legacy task-level `Resources.Networks`)."""
    networks = list(group.get("Networks") or [])
    for task in group.get("Tasks") or []:
        networks += (task.get("Resources") or {}).get("Networks") or []
    return {p.get("Label") for n in networks for kind in ("DynamicPorts", "ReservedPorts")
            for p in n.get(kind) or [] if p.get("Label")}


def _known_port(label: str | None, labels: set[str]) -> bool:
    return bool(label) and (label in labels or str(label).isdigit())


def _service_problems(where: str, services: list[Json] | None, labels: set[str]) -> list[str]:
    problems = []
    for service in services or []:
        name = f"{where} service {service.get('Name')!r}"
        port = service.get("PortLabel")
        if port and not _known_port(port, labels):
            problems.append(f"{name}: PortLabel {port!r} is not a port of the group network {sorted(labels)}")
        for check in service.get("Checks") or []:
            label = check.get("PortLabel") or port
            if str(check.get("Type", "")).lower() in _PORTED_CHECKS and not _known_port(label, labels):
                problems.append(f"{name} check {check.get('Name')!r}: a {check.get('Type')} check needs a port "
                                f"(PortLabel {label!r} is not in the group network {sorted(labels)})")
    return problems


def _task_problems(job: Json, group: Json, task: Json, labels: set[str], readable: tuple[str, ...]) -> list[str]:
    where = f"task {group.get('Name')!r}/{task.get('Name')!r}"
    problems = _service_problems(where, task.get("Services"), labels)
    ports = (task.get("Config") or {}).get("ports") or [] if task.get("Driver") == "docker" else []
    problems += [f'{where}: docker ports label {p!r} has no group network port: Port "{p}" not found, '
                 "check network block" for p in ports if p not in labels]
    problems += _meta_problems(where, job, group, task)
    problems += _variable_problems(where, job, group, task, readable)
    problems += _resource_problems(where, task.get("Resources") or {})
    return problems


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _meta_problems(where: str, job: Json, group: Json, task: Json) -> list[str]:
    """`${NOMAD_META_x}` interpolates to "" unless x is declared: dispatch meta or job/group/task Meta."""
    param = job.get("ParameterizedJob") or {}
    declared = {*(param.get("MetaRequired") or []), *(param.get("MetaOptional") or [])}
    for owner in (job, group, task):
        declared |= set(owner.get("Meta") or {})
    upper = {k.upper() for k in declared}
    used = {m for s in _strings(task) for m in _META_VAR.findall(s)}
    return [f"{where}: ${{NOMAD_META_{key}}} is used but {key!r} is in no MetaRequired/MetaOptional or Meta"
            for key in sorted(used) if key not in declared and key.upper() not in upper]


def implicit_variable_paths(job: Json, group: str, task: str) -> tuple[str, ...]:
    """Variables a task's workload identity may read by Nomad's implicit policy (children use the parent's ID)."""
    ident = job.get("ParentID") or job.get("ID") or ""
    return ("nomad/jobs", f"nomad/jobs/{ident}", f"nomad/jobs/{ident}/{group}", f"nomad/jobs/{ident}/{group}/{task}")


def _variable_problems(where: str, job: Json, group: Json, task: Json, readable: tuple[str, ...]) -> list[str]:
    implicit = implicit_variable_paths(job, str(group.get("Name")), str(task.get("Name")))
    problems = []
    for template in task.get("Templates") or []:
        for path in _NOMAD_VAR.findall(template.get("EmbeddedTmpl") or ""):
            if path not in implicit and not any(fnmatch.fnmatchcase(path, g) for g in readable):
                problems.append(f"{where}: template reads nomadVar {path!r}, which the job's workload identity "
                                f"may not read (implicit policy: {', '.join(implicit)}; no policy grants it)")
    return problems


def _resource_problems(where: str, resources: Json) -> list[str]:
    problems = []
    cpu, memory = resources.get("CPU"), resources.get("MemoryMB")
    if isinstance(cpu, int) and cpu < 1:
        problems.append(f"{where}: Resources.CPU {cpu} is below Nomad's minimum of 1 MHz")
    if isinstance(memory, int) and memory < 10:
        problems.append(f"{where}: Resources.MemoryMB {memory} is below Nomad's minimum of 10")
    return problems


def _merged(*updates: Json | None) -> Json:
    """Nomad's effective update block: defaults, then the job's, then the group's (`null` means unset)."""
    merged = dict(UPDATE_DEFAULTS)
    for update in updates:
        merged.update({k: v for k, v in (update or {}).items() if v is not None})
    return merged


def _update_problems(where: str, update: Json) -> list[str]:
    """The update-block rules of nomad-api.md §2 (on the effective, default-merged values)."""
    if not update.get("MaxParallel") and not update.get("Canary"):
        return []  # MaxParallel 0: no deployments, Nomad checks nothing else
    min_healthy, healthy, progress = (int(update.get(k) or 0) for k in
                                      ("MinHealthyTime", "HealthyDeadline", "ProgressDeadline"))
    rules = [
        (update.get("HealthCheck") in HEALTH_CHECKS, f"HealthCheck must be one of {', '.join(HEALTH_CHECKS)}"),
        (int(update.get("MaxParallel") or 0) >= 0 and int(update.get("Canary") or 0) >= 0,
         "MaxParallel and Canary must not be negative"),
        (not update.get("AutoPromote") or int(update.get("Canary") or 0) > 0, "AutoPromote needs Canary > 0"),
        (0 <= min_healthy < healthy, "MinHealthyTime must be below HealthyDeadline"),
        (progress == 0 or progress > healthy, "ProgressDeadline must be 0 or above HealthyDeadline"),
        (int(update.get("Stagger") or 0) > 0, "Stagger must be above 0"),
    ]
    return [f"{where}: {text}" for ok, text in rules if not ok]


def _duration_problems(value: Any, where: str) -> list[str]:
    """Durations are integer nanoseconds: a string or float fails, and a small number was meant as seconds."""
    problems: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            problems += _duration_problems(item, f"{where}/{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in ("Config", "Meta", "Env"):
                continue
            if key in DURATION_KEYS and item is not None:
                problems += _one_duration(f"{where}/{key}", item)
            else:
                problems += _duration_problems(item, f"{where}/{key}")
    return problems


def _one_duration(where: str, value: Any) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{where}: a duration is integer nanoseconds, not {value!r}"]
    if 0 < value < 1_000_000:
        return [f"{where}: {value} ns is below a millisecond; durations are nanoseconds, not seconds"]
    return []


# ---------------------------------------------------------------- the fake's hook
_JOB_WRITES = re.compile(r"^/v1/(jobs|job/.+/plan|job/(?!.*/(?:dispatch|revert|stable|evaluate|scale)$).+)$")
def exchange_problems(method: str, path: str, body: bytes, status: int, payload: Any) -> list[str]:
    """Everything wrong with one request/answer pair the fake served (empty when it conforms).

    A request the fake refused (4xx/5xx) is loud by itself, as with Nomad, so only accepted requests are checked:
    those are the ones where Nomad would silently ignore a misspelled field."""
    problems = _request_side(method, path, body) if status < 400 else []
    problems += _answer_side(method, path, status, payload)
    return problems


def _request_side(method: str, path: str, body: bytes) -> list[str]:
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        data = None
    problems = request_problems(method, path, data)
    if method in ("PUT", "POST") and isinstance(data, dict) and _JOB_WRITES.match(path):
        job = data.get("Job")
        problems += semantic_problems(job) if isinstance(job, dict) else []
    return problems


def _answer_side(method: str, path: str, status: int, payload: Any) -> list[str]:
    if status == 409 and path.startswith(f"{API_PREFIX}/var/"):
        # a lost Variable compare-and-set answers the current Variable as JSON (python-nomad's VariableConflict)
        return schema_problems(payload, "#/components/schemas/Variable", f"{method} {path} answer 409")
    return response_problems(method, path, status, payload)


def report(problems: list[str]) -> str:
    """The failure text a test shows when the fake saw a request or answer Nomad's description rejects."""
    return ("fake Nomad: requests/answers that Nomad's OpenAPI document (tests/support/nomad-openapi.yaml) or "
            "Nomad's rules (tests/support/nomad_openapi.py) reject:\n  " + "\n  ".join(problems) +
            "\n(a test that sends a deliberately invalid request sets `fake.conformance = False`)")
