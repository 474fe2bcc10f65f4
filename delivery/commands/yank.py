"""`delivery yank NAME VERSION --reason TEXT`: withdraw a version from ranges, keep exact pins working."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from delivery import clikit, notify
from delivery.audit import AuditEvent, current_actor
from delivery.errors import UsageError
from delivery.notify import Notification
from delivery.release import connect
from delivery.release.yank import yank_version
from delivery.versioning import require_version, tag_of

EPILOG = """\
examples:
  delivery yank emphysema 1.4.2 --reason "LAA%-950 off by 2 points on Siemens kernels (INC-77)"
  delivery yank emphysema 1.4.2 --env production --reason "…" --json

A yanked version never resolves from a range (^1, ~1.4, *) again; an exact pin (emphysema@1.4.2 or its
digest) still resolves to the same bytes, with a warning, so running studies stay reproducible. The record
(who, when, why) is stored in the registry as the tag VERSION.yank and in the audit log.

exit status: 0 yanked (or already yanked), 1 failed, 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `yank`."""
    parser = clikit.add_command(sub, "yank", _yank, epilog=EPILOG,
                                help="withdraw a version: ranges skip it, exact pins still resolve (with a warning)")
    parser.add_argument("name", metavar="NAME", help="biomarker name, e.g. emphysema")
    parser.add_argument("version", metavar="VERSION", help="the exact version to yank")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="why (stored with the yank, audited)")
    connect.add_environment_flag(parser)
    clikit.add_json_flag(parser)


def _yank(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        raise UsageError("--reason must say why the version is withdrawn")
    env = connect.environment(args.env)
    _, target = connect.locations(env, args.name)
    tag = tag_of(require_version(args.version))
    now, actor = datetime.now(UTC), current_actor()
    record, new = yank_version(target.client, target.repository, tag, args.reason.strip(), actor, now)
    pinned = [c for c, pin in connect.release_store().read(env.name, args.name).state.channels.items()
              if pin.digest == record.digest]
    if new:
        yanked = AuditEvent("yank", f"{env.name}/{args.name}:{record.version}", record.reason, actor, now,
                            {"digest": record.digest, "channels": pinned})
        connect.audit_log().append(yanked)
        notify.send(Notification.of(yanked))
    if args.json:
        clikit.print_json({"version": record.version, "digest": record.digest, "reason": record.reason,
                           "actor": record.actor, "at": record.at.isoformat(), "new": new, "channels": pinned})
        return 0
    print(f"{'yanked' if new else 'already yanked'} {args.name} {record.version} ({record.digest})")
    for channel in pinned:
        print(f"warning: channel {env.name}:{channel} still holds it; promote another version", file=sys.stderr)
    return 0
