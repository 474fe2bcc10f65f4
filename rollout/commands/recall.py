"""`rollout recall NAME VERSION --reason`: withdraw a version and list every result it produced."""

from __future__ import annotations

import argparse

from delivery import clikit
from delivery.audit import AuditLog
from delivery.config import registry_settings
from delivery.paths import default_database_url
from rollout.executions.recall import Recall, RegistryYanker
from rollout.executions.wiring import add_service_flags, collector, controller_rollback, ledger, submitter

EPILOG = """\
examples:
  rollout recall emphysema 1.4.2 --reason "left lung volume off by 30% on thin slices"
  rollout recall emphysema 1.4.2 --reason "..." --resubmit-with 1.4.3 --json > recall-1.4.2.json
  rollout recall emphysema 1.4.2 --reason "..." --rollback-in prod --rollback-in hospital-b

Where 1.4.2 is the candidate of a rollout in progress, or the stable a finished rollout promoted, the rollout
controller rolls it back (NOMAD_ADDR set: on Nomad; else the embedded default), as `rollout rollback` would.

Prints a report a quality manager can file: the yank, the rollback, and every execution (input identity, output
hashes, whether the result reached a client). exit status: 0 done, 1 some step failed (see the report).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = clikit.add_command(sub, "recall", _recall, help="yank a version, roll it back, list what it produced",
                                epilog=EPILOG)
    parser.add_argument("name", help="biomarker name")
    parser.add_argument("version", help="the version being withdrawn")
    parser.add_argument("--reason", required=True, help="why (goes to the audit log and the report)")
    parser.add_argument("--resubmit-with", metavar="VERSION", help="re-run every delivered study on this version")
    parser.add_argument("--rollback-in", metavar="ENV", action="append",
                        help="environment whose rollout to roll back (repeatable; default: --env)")
    add_service_flags(parser)


def _recall(args: argparse.Namespace) -> int:
    service = submitter(args) if args.resubmit_with else None
    manifest = (service or collector(args)).manifest(args.name)
    audit = AuditLog(default_database_url())
    recall = Recall(ledger(), audit, RegistryYanker(registry_settings(args).client(), manifest.image),
                    controller_rollback(args.rollback_in or [args.env]))
    report = recall.recall(args.name, args.version, args.reason, resubmit_with=args.resubmit_with, submitter=service)
    if args.json:
        clikit.print_json(report.as_json())
    else:
        print(report.text(), end="")
    return 1 if report.problems else 0
