"""`rollout policies render|apply`: Nomad ACL policies and registry robot scopes for the API, the controller and the
roles; `apply` writes the policies and the namespace onto the cluster, all or nothing."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from delivery import clikit
from delivery.errors import ConfigError
from rollout.compose import compose
from rollout.policies import Scope, render
from rollout.policies_apply import Change, apply, plan

EPILOG = """\
examples:
  rollout policies render --out out/policies
  NOMAD_TOKEN=<management token> rollout policies apply --nomad-addr https://nomad.example.org:4646 --dry-run
  NOMAD_TOKEN=<management token> rollout policies apply --nomad-addr https://nomad.example.org:4646

Writes nomad/<principal>.policy.json (rules, HCL's JSON form), nomad/<principal>.json (the ACL API's body),
nomad/namespace.json, registry-robots.json (token-auth scopes per robot account) and README.md (how to apply them)
for api-service, controller, release-manager, developer and auditor. Execution clients get no Nomad token at all:
they go through the API. Jobs need no policy: a job's workload identity reads nomad/jobs/<job id> by Nomad's
implicit policy, where `rollout deploy` publishes the pull credentials.
"""


def _render(args: argparse.Namespace) -> int:
    written = render(args.out, Scope(namespace=args.namespace, repository_prefix=args.repository_prefix))
    if args.json:
        clikit.print_json([str(p) for p in written])
    else:
        for path in written:
            print(path)
    return 0


APPLY_EPILOG = """\
examples:
  rollout policies apply --dry-run          # what would change; writes nothing
  rollout policies apply --namespace clinic # NOMAD_ADDR/NOMAD_TOKEN (a management token) from the configuration
  rollout policies apply --json

Reads every policy first and writes only those Nomad holds differently (a re-run writes nothing), then creates the
namespace if it is missing (an existing one is left as it is). If Nomad refuses a policy, the policies this run
had changed are put back and the ones it created are deleted; the message names the policy and quotes Nomad.
Exit 0 applied (or nothing to do), 1 refused (with what was restored) or not reachable, 2 usage.
"""


def _apply(args: argparse.Namespace) -> int:
    nomad = compose(args).nomad
    if nomad is None:
        raise ConfigError("rollout policies apply needs a Nomad cluster",
                          hint="Set NOMAD_ADDR (or pass --nomad-addr) and NOMAD_TOKEN to a management token.")
    namespace = args.namespace or os.environ.get("NOMAD_NAMESPACE") or Scope.namespace
    changes = plan(nomad, Scope(namespace=namespace))
    if not args.dry_run:
        apply(nomad, changes)
    if args.json:
        clikit.print_json({"dry_run": args.dry_run, "namespace": namespace,
                           "changes": [c.as_dict() for c in changes]})
    else:
        _print_changes(changes, dry_run=args.dry_run)
    return 0


def _print_changes(changes: list[Change], *, dry_run: bool) -> None:
    verb = {"create": "would create" if dry_run else "created", "update": "would update" if dry_run else "updated",
            "unchanged": "unchanged"}
    for change in changes:
        print(f"{change.kind} {change.name}: {verb[change.action]}")
    written = sum(c.action != "unchanged" for c in changes)
    print(f"dry run: {written} to write, nothing written" if dry_run else f"{written} written")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rollout policies render` and `rollout policies apply`."""
    group = sub.add_parser("policies", help="render and apply Nomad ACL policies and registry robot scopes",
                           formatter_class=clikit.HelpFormatter, epilog=EPILOG)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    p = clikit.add_command(inner, "render", _render, help="write the policies into a folder", epilog=EPILOG)
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--namespace", default=Scope.namespace,
                   help="Nomad namespace of the biomarker jobs and release state (default: %(default)s)")
    p.add_argument("--repository-prefix", default="biomarkers", help="registry repository prefix of the images")
    clikit.add_json_flag(p)
    a = clikit.add_command(inner, "apply", _apply, help="write the policies and the namespace onto Nomad",
                           epilog=APPLY_EPILOG)
    a.add_argument("--namespace", help="Nomad namespace of the biomarker jobs and release state "
                                        f"(default NOMAD_NAMESPACE, else {Scope.namespace})")
    a.add_argument("--nomad-addr", help="Nomad address (default NOMAD_ADDR)")
    a.add_argument("--region", help="Nomad region (default NOMAD_REGION)")
    a.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    clikit.add_json_flag(a)
