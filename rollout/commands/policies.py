"""`rollout policies render`: Nomad ACL policies and registry robot scopes for the API, the controller and the roles."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from rollout.policies import Scope, render

EPILOG = """\
examples:
  rollout policies render --out out/policies
  cd out/policies && nomad namespace apply -description "biomarker delivery" biomarkers
  nomad acl policy apply -description "biomarker delivery: api-service" \\
      biomarker-delivery-api-service nomad/api-service.policy.json

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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rollout policies render`."""
    group = sub.add_parser("policies", help="render Nomad ACL policies and registry robot scopes",
                           formatter_class=clikit.HelpFormatter, epilog=EPILOG)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    p = clikit.add_command(inner, "render", _render, help="write the policies into a folder", epilog=EPILOG)
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--namespace", default=Scope.namespace,
                   help="Nomad namespace of the biomarker jobs and release state (default: %(default)s)")
    p.add_argument("--repository-prefix", default="biomarkers", help="registry repository prefix of the images")
    clikit.add_json_flag(p)
