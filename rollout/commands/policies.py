"""`rollout policies render`: Nomad ACL policies and registry robot scopes for the API's roles."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from rollout.policies import Scope, render

EPILOG = """\
examples:
  rollout policies render --out out/policies
  nomad acl policy apply -description "biomarker delivery release managers" \\
      biomarker-delivery-release-manager out/policies/nomad/release-manager.policy.json

Writes nomad/<role>.policy.json (rules, HCL's JSON form), nomad/<role>.json (the ACL API's body) and
registry-robots.json (token-auth scopes per robot account) for execution-client, release-manager, developer, auditor.
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
    group = sub.add_parser("policies", help="render Nomad ACL policies and registry scopes for the API's roles",
                           formatter_class=clikit.HelpFormatter, epilog=EPILOG)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    p = clikit.add_command(inner, "render", _render, help="write the policies into a folder", epilog=EPILOG)
    p.add_argument("--out", type=Path, required=True, help="folder to write into")
    p.add_argument("--namespace", default="default", help="Nomad namespace the biomarker jobs run in")
    p.add_argument("--repository-prefix", default="biomarkers", help="registry repository prefix of the images")
    clikit.add_json_flag(p)
