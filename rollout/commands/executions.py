"""`rollout executions list|show`: the execution ledger."""

from __future__ import annotations

import argparse
from datetime import datetime

from delivery import clikit
from rollout.executions.wiring import ledger

EPILOG = """\
examples:
  rollout executions list --biomarker emphysema --version 1.4.2
  rollout executions show 5b0e4c1e-… --json
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("executions", help="list and show recorded executions (the ledger)")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    listing = clikit.add_command(inner, "list", _list, help="list executions, oldest first", epilog=EPILOG)
    listing.add_argument("--biomarker", help="only this biomarker")
    listing.add_argument("--version", dest="version_filter", metavar="VERSION", help="only this resolved version")
    listing.add_argument("--since", type=datetime.fromisoformat, help="only executions created since (ISO time)")
    listing.add_argument("--limit", type=int, default=200, help="at most this many (default 200)")
    clikit.add_json_flag(listing)
    show = clikit.add_command(inner, "show", _show, help="one execution with its whole history", epilog=EPILOG)
    show.add_argument("id", help="execution id")
    clikit.add_json_flag(show)


def _list(args: argparse.Namespace) -> int:
    found = ledger().executions(biomarker=args.biomarker, version=args.version_filter, since=args.since,
                                limit=args.limit)
    if args.json:
        clikit.print_json([e.as_json() for e in found])
        return 0
    for e in found:
        r = e.record
        print(f"{e.id}  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.biomarker} {r.version}  {r.route:9} {e.status:10} "
              f"{r.input_identity[:30]}")
    return 0


def _show(args: argparse.Namespace) -> int:
    doc = ledger().get(args.id).as_json()
    if args.json:
        clikit.print_json(doc)
        return 0
    for key in sorted(k for k in doc if k not in ("events", "outputs")):
        print(f"{key:20} {doc[key]}")
    for output in doc["outputs"]:
        print(f"output               {output['sha256']}  {output['path']}")
    for event in doc["events"]:
        print(f"event                {event['at']}  {event['kind']}")
    return 0
