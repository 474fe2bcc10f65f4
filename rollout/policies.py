"""The API's roles enforced by the cluster too: Nomad ACL policies and registry robot-account scopes.

Policies are built as data and serialised as JSON, which Nomad accepts as policy rules (HCL's JSON form), so
escaping holds by construction. Anyone bypassing the API meets the same separation of duties in Nomad and in the
registry.

Who holds a Nomad token, and why (Nomad ACLs are per namespace, so the biomarker jobs and the release Variables live
in a namespace of their own):
- execution clients: none. They submit through the API, which checks their study and output folders and records
  every execution in the ledger; a `dispatch-job` token would let them bypass both.
- the API (`api-service`): dispatch the biomarker parent jobs and follow them; read and write release state (its own
  routes authorise freezes and rollout actions per caller). It can never register, change or stop a job.
- the controller (`controller`): register, revert and promote the tracks' jobs, move release state, hold the leader
  lock.
- release managers: the controller's powers plus dispatch and logs, and publishing pull credentials (`nomad/jobs/*`).
- developers and auditors: read.
- the jobs themselves: no policy. A job's workload identity reads `nomad/jobs/<its job id>` by Nomad's implicit
  policy (a dispatched child reads its parent's); `rollout.registry_auth.publish` writes the pull credentials there.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from rollout.nomad_state import PREFIX as RELEASE_VARIABLES

Principal = Literal["api-service", "controller", "release-manager", "developer", "auditor"]
PRINCIPALS: tuple[Principal, ...] = get_args(Principal)
Robot = Literal["nomad-pull", "api-service", "release-manager", "developer", "auditor"]
ROBOTS: tuple[Robot, ...] = get_args(Robot)
CONTROLLER_VARIABLES = "delivery/controller/*"  # the leader lock (rollout.controller.leader)
JOB_CREDENTIALS = "nomad/jobs/*"  # pull credentials, one Variable per job (rollout.registry_auth)
READ_JOBS = ["list-jobs", "read-job"]
READ, WRITE = ["list", "read"], ["list", "read", "write"]


@dataclass(frozen=True)
class Scope:
    """Where the policies apply: the Nomad namespace of the biomarker jobs, one registry repository prefix."""

    namespace: str = "biomarkers"
    repository_prefix: str = "biomarkers"


def _grants(principal: Principal) -> tuple[list[str], dict[str, list[str]], bool]:
    """(job capabilities, Variable path -> capabilities, node read) per principal."""
    release = f"{RELEASE_VARIABLES}/*"
    return {
        # dispatch the parents and follow the children; never register, change or stop a job
        "api-service": (["read-job", "dispatch-job"], {release: WRITE}, False),
        # register, revert and promote deployments (Nomad requires submit-job for promotion), hold the leader lock
        "controller": ([*READ_JOBS, "submit-job"], {release: WRITE, CONTROLLER_VARIABLES: WRITE}, True),
        # deploy, promote, roll back, move release state, publish the jobs' pull credentials
        "release-manager": ([*READ_JOBS, "submit-job", "dispatch-job", "read-logs"],
                            {release: WRITE, JOB_CREDENTIALS: WRITE, CONTROLLER_VARIABLES: READ}, True),
        # look and debug, change nothing
        "developer": ([*READ_JOBS, "read-logs", "read-fs"], {release: READ}, True),
        # read the record: jobs and release state, no logs (they may hold study output)
        "auditor": (list(READ_JOBS), {release: READ}, True),
    }[principal]


def nomad_rules(principal: Principal, scope: Scope) -> dict[str, Any]:
    """One principal's ACL rules: capabilities in the biomarker namespace only, nothing in any other."""
    capabilities, variables, node = _grants(principal)
    namespace = {"capabilities": capabilities,
                 "variables": {"path": {path: {"capabilities": caps} for path, caps in variables.items()}}}
    return {"namespace": {scope.namespace: namespace}, "node": {"policy": "read" if node else "deny"}}


def nomad_policy(principal: Principal, scope: Scope) -> dict[str, Any]:
    """One Nomad ACL policy as the ACL API takes it (Name, Description, Rules as JSON text)."""
    return {"Name": f"biomarker-delivery-{principal}", "Description": f"biomarker delivery: {principal}",
            "Rules": json.dumps(nomad_rules(principal, scope), indent=2, sort_keys=True)}


def namespace_spec(scope: Scope) -> dict[str, Any]:
    """The namespace the biomarker jobs and release Variables live in (`nomad namespace apply -json`)."""
    return {"Name": scope.namespace, "Description": "biomarker delivery: the biomarkers' jobs and release state"}


def _registry_scopes(robot: Robot, scope: Scope) -> list[str]:
    """Docker token-auth scopes (`repository:NAME:ACTIONS`) of the robot account."""
    repos = f"repository:{scope.repository_prefix}/*"
    return {
        "nomad-pull": [f"{repos}:pull"],  # published to nomad/jobs/<job id> for the docker driver
        "api-service": [f"{repos}:pull", "registry:catalog:*"],  # resolves pins, lists versions
        "release-manager": [f"{repos}:pull,push,delete", "registry:catalog:*"],
        "developer": [f"{repos}:pull"],
        "auditor": [f"{repos}:pull", "registry:catalog:*"],
    }[robot]


def registry_robots(scope: Scope) -> dict[str, Any]:
    return {"robots": [{"name": f"robot-{robot}", "role": robot, "scopes": _registry_scopes(robot, scope)}
                       for robot in ROBOTS]}


def render(out: Path, scope: Scope) -> list[Path]:
    """Write `nomad/<principal>.policy.json` (rules), `nomad/<principal>.json` (API body), `nomad/namespace.json`,
    `registry-robots.json` and a README saying who gets which and how to apply them."""
    written = []
    (out / "nomad").mkdir(parents=True, exist_ok=True)
    written.append(_write(out / "nomad" / "namespace.json", json.dumps(namespace_spec(scope), indent=2) + "\n"))
    for principal in PRINCIPALS:
        policy = nomad_policy(principal, scope)
        written.append(_write(out / "nomad" / f"{principal}.policy.json", policy["Rules"] + "\n"))
        written.append(_write(out / "nomad" / f"{principal}.json", json.dumps(policy, indent=2, sort_keys=True) + "\n"))
    written.append(_write(out / "registry-robots.json", json.dumps(registry_robots(scope), indent=2) + "\n"))
    written.append(_write(out / "README.md", readme(scope)))
    return written


def readme(scope: Scope) -> str:
    """How to apply the rendered policies, and who gets none."""
    ns = shlex.quote(scope.namespace)
    applies = "\n".join(f"    nomad acl policy apply -description 'biomarker delivery: {p}' biomarker-delivery-{p} "
                        f"nomad/{p}.policy.json" for p in PRINCIPALS)
    return f"""# Biomarker delivery: cluster policies

Apply them with a management token in `NOMAD_TOKEN`:

    rollout policies apply --namespace {ns} --dry-run   # what would change
    rollout policies apply --namespace {ns}

It reads every policy first, writes only what differs (a re-run writes nothing), creates the namespace if missing,
and if Nomad refuses a policy it puts back what it had changed, so the cluster never holds half the set. By hand
instead (no rollback), the same with the `nomad` CLI:

    nomad namespace apply -description 'biomarker delivery' {ns}
{applies}
    nomad acl token create -name api-service -policy biomarker-delivery-api-service

Run every `delivery`/`rollout` command, the API and the controller with `NOMAD_NAMESPACE={ns}`: the jobs and the
release Variables live there, and every policy grants rights in that namespace only.

- Execution clients get **no Nomad token**: they submit through the API, which checks their study and output
  folders and records every execution; a token with `dispatch-job` would bypass both.
- `api-service` (the API's token) may only read and dispatch the biomarker parent jobs and read/write release state.
- `controller` registers, reverts and promotes the tracks' jobs and holds the leader lock (`delivery/controller/`).
- `release-manager` adds dispatch, logs and writing the jobs' pull credentials (`nomad/jobs/*`).
- `developer` and `auditor` read (auditors no logs: they may hold study output).
- The jobs need **no policy**: a job's workload identity reads `nomad/jobs/<job id>` by Nomad's implicit policy
  (a dispatched child reads its parent's). `rollout deploy` writes the `robot-nomad-pull` credentials there.

`registry-robots.json` lists the registry robot accounts and their token-auth scopes.
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
