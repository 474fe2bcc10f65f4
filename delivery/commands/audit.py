"""`delivery audit`: the one audit trail, filtered: who promoted, yanked, froze, deployed, rolled back, and why."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime

from delivery import clikit
from delivery.audit import AuditEvent, AuditQuery
from delivery.release import connect

EPILOG = """\
examples:
  delivery audit --biomarker emphysema --env hospital-a
  delivery audit --actor dr-smith --since 2026-01-01 --until 2026-03-31T23:59 --json
  delivery audit --action yank

Every promote, force, yank, gc, recall, freeze (created, overridden, lifted, expired), deploy, pause, promotion
step, rollback and gate verdict, oldest first, from the append-only audit log (nothing a later rollout replaces).
`rollout history NAME` shows the same trail for one biomarker.

exit status: 0 listed (possibly nothing), 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit`."""
    parser = clikit.add_command(sub, "audit", _audit, epilog=EPILOG,
                                help="the audit trail: who did what, when and why (filterable)")
    parser.add_argument("--biomarker", help="only this biomarker")
    parser.add_argument("--env", "--environment", dest="environment", help="only this environment")
    add_filters(parser)
    clikit.add_json_flag(parser)


def add_filters(parser: argparse.ArgumentParser) -> None:
    """--actor, --action, --since, --until (shared with `rollout history`)."""
    parser.add_argument("--actor", help="only what this person (or service) did")
    parser.add_argument("--action", help="only this action (promote, yank, freeze, rollout-deploy, gate, …)")
    parser.add_argument("--since", type=moment, metavar="TIME", help="from this ISO time on (UTC unless it says)")
    parser.add_argument("--until", type=moment, metavar="TIME", help="up to this ISO time (UTC unless it says)")


def moment(text: str) -> datetime:
    """An ISO date or time; a naive one is UTC."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time (2026-03-01 or 2026-03-01T12:00)") \
            from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def query_of(args: argparse.Namespace, *, biomarker: str | None, environment: str | None) -> AuditQuery:
    """The query the filter flags describe."""
    return AuditQuery(biomarker=biomarker, environment=environment, actor=args.actor, action=args.action,
                      since=args.since, until=args.until)


def show(events: Sequence[AuditEvent], as_json: bool) -> None:
    """One line per event (who, when, what, why), or JSON."""
    if as_json:
        clikit.print_json([e.as_json() for e in events])
        return
    if not events:
        print("no audited events match")
    for e in events:
        why = f": {e.reason}" if e.reason else ""
        print(f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.actor}  {e.action}  {e.subject}{why}")


def _audit(args: argparse.Namespace) -> int:
    query = query_of(args, biomarker=args.biomarker, environment=args.environment)
    show(connect.audit_log().read(query), args.json)
    return 0
