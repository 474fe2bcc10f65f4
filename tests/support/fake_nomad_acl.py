"""The fake Nomad's ACL policy and namespace endpoints (`/v1/acl/policy/:name`, `/v1/namespace/:name`).

Faithful to Nomad's code (hashicorp/nomad, read for this module):
- `command/agent/acl_endpoint.go`: a missing policy answers 404 `ACL policy not found`; a body whose `Name` differs
  from the path answers 400 `ACL policy name does not match request path`; a write answers an empty body.
- `nomad/acl_endpoint.go` `UpsertPolicies`/`DeletePolicies`: a management token is required (403 `Permission
  denied`; an unknown token 403 `ACL token not found`); each policy is validated and a refusal answers
  400 `policy 0 invalid: <go-multierror of structs.ACLPolicy.Validate>`.
- `nomad/structs` `ACLPolicy.Validate`: `invalid name '<name>'` (`^[a-zA-Z0-9-]{1,128}$`), `failed to parse rules:
  <acl.Parse error>`, `description longer than 256`.
- `acl/policy.go` `Parse(rules, PolicyParseStrict)`: the blocks `namespace`, `node_pool`, `host_volume`, `agent`,
  `node`, `operator`, `quota`, `plugin`; the namespace, Variable and node-pool capabilities; the policy words
  deny/read/write/scale (plugin: deny/read/list/write); unknown keys `Invalid or duplicate policy keys: ...`.
- `command/agent/namespace_endpoint.go`: 404 `Namespace not found`, 400 `Namespace name does not match request path`.

Simplifications: rules are checked in their JSON form only (what `rollout.policies` writes; Nomad also takes HCL);
Go's `%#v` renderings in the texts are approximated; answers leave out `RulesJSON`/`Hash` and the post-1.6 namespace
fields, which Nomad's OpenAPI document (the fake's conformance check) does not describe.
"""

from __future__ import annotations

import copy
import json
import re
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support import fake_nomad

if TYPE_CHECKING:
    from tests.support.fake_nomad import FakeNomad, Route

Json = dict[str, Any]
MANAGEMENT = "management"  # a capability no client token holds: the fake's tokens with caps None are management
_NAME = re.compile(r"^[a-zA-Z0-9-]{1,128}$")
_NAMESPACE = re.compile(r"^[a-zA-Z0-9-*]{1,128}$")
_NODE_POOL = re.compile(r"^[a-zA-Z0-9-_*]{1,128}$")
POLICIES = frozenset({"deny", "read", "write", "scale"})
NAMESPACE_CAPABILITIES = frozenset({
    "deny", "list-jobs", "parse-job", "read-job", "submit-job", "dispatch-job", "read-logs", "read-fs", "alloc-exec",
    "alloc-node-exec", "alloc-lifecycle", "sentinel-override", "csi-register-plugin", "csi-write-volume",
    "csi-read-volume", "csi-list-volume", "csi-mount-volume", "host-volume-create", "host-volume-register",
    "host-volume-read", "host-volume-write", "host-volume-delete", "list-scaling-policies", "read-scaling-policy",
    "read-job-scaling", "scale-job", "submit-recommendation", "register-job", "revert-job", "deregister-job",
    "purge-job", "evaluate-job", "plan-job", "tag-job-version", "stable-job", "fail-deployment", "pause-deployment",
    "promote-deployment", "unblock-deployment", "cancel-deployment", "set-alloc-health-deployment", "gc-allocation",
    "pause-allocation", "force-periodic-job", "delete-service-registration"})
VARIABLE_CAPABILITIES = frozenset({"list", "read", "write", "destroy", "deny"})
NODE_POOL_CAPABILITIES = frozenset({"delete", "deny", "read", "write"})
HOST_VOLUME_CAPABILITIES = frozenset({"deny", "mount-readonly", "mount-readwrite"})
OPERATOR_CAPABILITIES = frozenset({"deny", "snapshot-save", "license-read"})
BLOCKS = ("namespace", "node_pool", "host_volume", "agent", "node", "operator", "quota", "plugin")


@dataclass
class AclState:
    """What the fake holds beyond `fake_nomad.State`: policies and namespaces by name."""

    policies: dict[str, Json] = field(default_factory=dict)
    namespaces: dict[str, Json] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[FakeNomad, AclState] = weakref.WeakKeyDictionary()


def state(fake: FakeNomad) -> AclState:
    """The fake's ACL state (created on first use; `default` namespace exists as in Nomad)."""
    if fake not in _STATES:
        _STATES[fake] = AclState(namespaces={"default": {"Name": "default", "Description": "Default shared namespace",
                                                         "Quota": "", "Meta": None, "Capabilities": None,
                                                         "CreateIndex": 1, "ModifyIndex": 1}})
    return _STATES[fake]


def policies(fake: FakeNomad) -> dict[str, Json]:
    """Test hook: a copy of the stored policies."""
    with fake.cond:
        return copy.deepcopy(state(fake).policies)


def seed_policy(fake: FakeNomad, name: str, rules: str, description: str = "") -> None:
    """Test hook: a policy an operator wrote before (not validated, as if written by an older Nomad)."""
    with fake.cond:
        index = fake._commit("acl_policy")
        state(fake).policies[name] = {"Name": name, "Description": description, "Rules": rules, "JobACL": None,
                                      "CreateIndex": index, "ModifyIndex": index}


def route(fake: FakeNomad, method: str, path: str) -> Route | None:
    """The route of an ACL policy or namespace request, in `FakeNomad._route`'s form."""
    read, write = {"GET"}, {"PUT", "POST", "DELETE"}
    table = fake._table("acl_policy")
    if path.startswith("/v1/acl/policy/"):
        name = path[len("/v1/acl/policy/"):]
        if method == "GET":
            return (lambda q, b: _get_policy(fake, name)), read | write, MANAGEMENT, table
        return (lambda q, b: _write_policy(fake, method, name, b)), read | write, MANAGEMENT, None
    if path.startswith("/v1/namespace/"):
        name = path[len("/v1/namespace/"):]
        if method == "GET":  # Nomad: any capability in the namespace
            return (lambda q, b: _get_namespace(fake, name)), read | write, "read-job", fake._table("namespaces")
        return (lambda q, b: _write_namespace(fake, method, name, b)), read | write, MANAGEMENT, None
    return None


def _get_policy(fake: FakeNomad, name: str) -> tuple[Json, int]:
    found = state(fake).policies.get(name)
    if found is None:
        raise fake_nomad.HTTPError(404, "ACL policy not found")
    return copy.deepcopy(found), int(found["ModifyIndex"])


def _write_policy(fake: FakeNomad, method: str, name: str, body: Json | None) -> str:
    store = state(fake).policies
    if method == "DELETE":
        store.pop(name, None)
        fake._commit("acl_policy")
        return ""
    assert body is not None
    policy = _decode_policy(body)
    if policy["Name"] != name:
        raise fake_nomad.HTTPError(400, "ACL policy name does not match request path")
    problems = validate_policy(policy)
    if problems:
        raise fake_nomad.HTTPError(400, f"policy 0 invalid: {fake_nomad.multierror(*problems)}")
    index = fake._commit("acl_policy")
    created = store[name]["CreateIndex"] if name in store else index
    store[name] = {**policy, "CreateIndex": created, "ModifyIndex": index}
    return ""


def _decode_policy(body: Json) -> Json:
    """Go's decodeBody into structs.ACLPolicy: keys case-insensitive, types checked."""
    name = fake_nomad._typed(body, "Name", str, "string") or ""
    description = fake_nomad._typed(body, "Description", str, "string") or ""
    rules = fake_nomad._typed(body, "Rules", str, "string") or ""
    job_acl = fake_nomad._typed(body, "JobACL", dict, "structs.JobACL")
    return {"Name": name, "Description": description, "Rules": rules, "JobACL": job_acl}


def validate_policy(policy: Json) -> list[str]:
    """structs.ACLPolicy.Validate: every problem, as Nomad words it."""
    problems = []
    if not _NAME.match(policy["Name"]):
        problems.append(f"invalid name '{policy['Name']}'")
    parse_error = parse_rules(policy["Rules"])
    if parse_error:
        problems.append(f"failed to parse rules: {parse_error}")
    if len(policy["Description"]) > 256:
        problems.append("description longer than 256")
    return problems


def parse_rules(rules: str) -> str | None:
    """acl.Parse(rules, strict) on the JSON form: None when Nomad accepts the rules, else its error text."""
    if not rules:
        return None
    try:
        data = json.loads(rules)
    except json.JSONDecodeError as e:
        return f"Failed to parse ACL Policy: At {e.lineno}:{e.colno}: {e.msg}"
    if not isinstance(data, dict):
        return "Failed to parse ACL Policy: error parsing: root should be an object"
    if not any(data.get(block) for block in BLOCKS):
        return f"Invalid policy: {rules}"
    for check in (_namespaces_error, _node_pools_error, _host_volumes_error, _extra_keys_error, _simple_blocks_error):
        error = check(data)
        if error:
            return error
    return None


def _go(kind: str, name: str, block: Json) -> str:
    """An approximation of Go's `%#v` of a parsed block."""
    caps = ", ".join(f'"{c}"' for c in block.get("capabilities") or [])
    return f'&acl.{kind}{{Name:"{name}", Policy:"{block.get("policy", "")}", Capabilities:[]string{{{caps}}}}}'


def _blocks(data: Json, key: str) -> dict[str, Json]:
    value = data.get(key) or {}
    return value if isinstance(value, dict) else {}


def _namespaces_error(data: Json) -> str | None:
    for name, block in _blocks(data, "namespace").items():
        shown = _go("NamespacePolicy", name, block)
        if not _NAMESPACE.match(name):
            return f"Invalid namespace name: {shown}"
        if block.get("policy", "") and block["policy"] not in POLICIES:
            return f"Invalid namespace policy: {shown}"
        for cap in block.get("capabilities") or []:
            if cap not in NAMESPACE_CAPABILITIES:
                return f"Invalid namespace capability '{cap}': {shown}"
        error = _variables_error(name, block.get("variables"))
        if error:
            return error
    return None


def _variables_error(namespace: str, variables: Json | None) -> str | None:
    if variables is None:
        return None
    paths = variables.get("path") or {}
    if not paths:
        return f"Invalid variable policy: no variable paths in namespace {namespace}"
    for spec, rule in paths.items():
        if not spec:
            return f"Invalid missing variable path in namespace {namespace}"
        if spec.startswith("/"):
            return f"Invalid variable path \"{spec}\" in namespace {namespace}: cannot start with a leading '/'`"
        for cap in (rule or {}).get("capabilities") or []:
            if cap not in VARIABLE_CAPABILITIES:
                return f"Invalid variable capability '{cap}' in namespace {namespace}"
    return None


def _node_pools_error(data: Json) -> str | None:
    for name, block in _blocks(data, "node_pool").items():
        if not _NODE_POOL.match(name):
            return f"Invalid node pool name '{name}'"
        if block.get("policy", "") and block["policy"] not in POLICIES:
            return f"Invalid node pool policy '{block['policy']}' for '{name}'"
        for cap in block.get("capabilities") or []:
            if cap not in NODE_POOL_CAPABILITIES:
                return f"Invalid node pool capability '{cap}' for '{name}'"
    return None


def _host_volumes_error(data: Json) -> str | None:
    for name, block in _blocks(data, "host_volume").items():
        shown = _go("HostVolumePolicy", name, block)
        if not _NAMESPACE.match(name):
            return f"Invalid host volume name: {shown}"
        if block.get("policy", "") and block["policy"] not in POLICIES:
            return f"Invalid host volume policy: {shown}"
        for cap in block.get("capabilities") or []:
            if cap not in HOST_VOLUME_CAPABILITIES:
                return f"Invalid host volume capability '{cap}': {shown}"
    return None


def _extra_keys_error(data: Json) -> str | None:
    """Strict parsing: unknown top-level blocks and unknown keys inside the labelled blocks."""
    extra = [k for k in data if k not in BLOCKS]
    allowed = {"namespace": {"policy", "capabilities", "variables"}, "node_pool": {"policy", "capabilities"},
               "host_volume": {"policy", "capabilities"}}
    for block, keys in allowed.items():
        extra += [k for body in _blocks(data, block).values() for k in (body or {}) if k not in keys]
    return f"Invalid or duplicate policy keys: {', '.join(extra)}" if extra else None


def _simple_blocks_error(data: Json) -> str | None:
    kinds = {"agent": "AgentPolicy", "node": "NodePolicy", "quota": "QuotaPolicy"}
    for key, kind in kinds.items():
        block = data.get(key)
        if block is not None and (block or {}).get("policy") not in POLICIES:
            return f'Invalid {key} policy: &acl.{kind}{{Policy:"{(block or {}).get("policy", "")}"}}'
    operator = data.get("operator")
    if operator is not None:
        if operator.get("policy", "") and operator["policy"] not in POLICIES:
            return f'Invalid operator policy: &acl.OperatorPolicy{{Policy:"{operator["policy"]}"}}'
        for cap in operator.get("capabilities") or []:
            if cap not in OPERATOR_CAPABILITIES:
                return f"Invalid operator capability '{cap}'"
    plugin = data.get("plugin")
    if plugin is not None and (plugin or {}).get("policy") not in {"deny", "read", "list", "write"}:
        return f'Invalid plugin policy: &acl.PluginPolicy{{Policy:"{(plugin or {}).get("policy", "")}"}}'
    return None


def _get_namespace(fake: FakeNomad, name: str) -> tuple[Json, int]:
    found = state(fake).namespaces.get(name)
    if found is None:
        raise fake_nomad.HTTPError(404, "Namespace not found")
    return copy.deepcopy(found), int(found["ModifyIndex"])


def _write_namespace(fake: FakeNomad, method: str, name: str, body: Json | None) -> str:
    store = state(fake).namespaces
    if method == "DELETE":
        if name == "default":
            raise fake_nomad.HTTPError(500, "default namespace can not be deleted")
        store.pop(name, None)
        fake._commit("namespaces")
        return ""
    assert body is not None
    given = fake_nomad._typed(body, "Name", str, "string") or ""
    if given != name:
        raise fake_nomad.HTTPError(400, "Namespace name does not match request path")
    if not _NAME.match(name):
        raise fake_nomad.HTTPError(500, fake_nomad.multierror(
            f'invalid name "{name}". Must match regex ^[a-zA-Z0-9-]{{1,128}}$'))
    index = fake._commit("namespaces")
    created = store[name]["CreateIndex"] if name in store else index
    store[name] = {"Name": name, "Description": fake_nomad._typed(body, "Description", str, "string") or "",
                   "Quota": fake_nomad._typed(body, "Quota", str, "string") or "",
                   "Meta": fake_nomad._ci(body, "Meta"), "Capabilities": fake_nomad._ci(body, "Capabilities"),
                   "CreateIndex": created, "ModifyIndex": index}
    return ""
