"""The API's roles enforced by the cluster too: Nomad ACL policies and registry robot-account scopes.

Policies are built as data and serialised as JSON, which Nomad accepts as policy rules (HCL's JSON form), so
escaping holds by construction. Anyone bypassing the API meets the same separation of duties in Nomad and in the
registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rollout.api.auth import ROLES, Role
from rollout.nomad_state import PREFIX as RELEASE_VARIABLES

READ_JOBS = ["list-jobs", "read-job"]


@dataclass(frozen=True)
class Scope:
    """Where the policies apply: one Nomad namespace, one registry repository prefix."""

    namespace: str = "default"
    repository_prefix: str = "biomarkers"


def _nomad_rules(role: Role, scope: Scope) -> dict[str, Any]:
    """Capabilities per role in the namespace, and who may read or write the release Variables."""
    release_vars = f"{RELEASE_VARIABLES}/*"
    by_role: dict[Role, tuple[list[str], list[str]]] = {
        # submit pinned executions = dispatch the tracks' parameterized parents; never register or change a job
        "execution-client": ([*READ_JOBS, "dispatch-job"], []),
        # deploy, promote deployments (Nomad requires submit-job for promotion), roll back, move release state
        "release-manager": ([*READ_JOBS, "submit-job", "dispatch-job", "read-logs", "read-job-scaling"],
                            ["list", "read", "write"]),
        # look and debug, change nothing
        "developer": ([*READ_JOBS, "read-logs", "read-fs"], ["list", "read"]),
        # read the record: jobs and release state, no logs (they may hold study output)
        "auditor": (list(READ_JOBS), ["list", "read"]),
    }
    capabilities, variables = by_role[role]
    namespace: dict[str, Any] = {"capabilities": capabilities}
    if variables:
        namespace["variables"] = {"path": {release_vars: {"capabilities": variables}}}
    return {"namespace": {scope.namespace: namespace}, "node": {"policy": "read"} if role != "execution-client"
            else {"policy": "deny"}}


def _registry_scopes(role: Role, scope: Scope) -> list[str]:
    """Docker token-auth scopes (`repository:NAME:ACTIONS`) of the robot account standing for the role."""
    repos = f"repository:{scope.repository_prefix}/*"
    return {
        "execution-client": [f"{repos}:pull"],
        "release-manager": [f"{repos}:pull,push,delete", "registry:catalog:*"],
        "developer": [f"{repos}:pull"],
        "auditor": [f"{repos}:pull", "registry:catalog:*"],
    }[role]


def nomad_policy(role: Role, scope: Scope) -> dict[str, Any]:
    """One Nomad ACL policy as `nomad acl policy apply` takes it (Name, Description, Rules as JSON text)."""
    return {"Name": f"biomarker-delivery-{role}", "Description": f"biomarker delivery role {role}",
            "Rules": json.dumps(_nomad_rules(role, scope), indent=2, sort_keys=True)}


def registry_robots(scope: Scope) -> dict[str, Any]:
    return {"robots": [{"name": f"robot-{role}", "role": role, "scopes": _registry_scopes(role, scope)}
                       for role in ROLES]}


def render(out: Path, scope: Scope) -> list[Path]:
    """Write `nomad/<role>.policy.json` (rules), `nomad/<role>.json` (API body) and `registry-robots.json`."""
    written = []
    (out / "nomad").mkdir(parents=True, exist_ok=True)
    for role in ROLES:
        policy = nomad_policy(role, scope)
        written.append(_write(out / "nomad" / f"{role}.policy.json", policy["Rules"] + "\n"))
        written.append(_write(out / "nomad" / f"{role}.json", json.dumps(policy, indent=2, sort_keys=True) + "\n"))
    written.append(_write(out / "registry-robots.json", json.dumps(registry_robots(scope), indent=2) + "\n"))
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
