"""`delivery gc --keep N [--apply]`: retention that never deletes a release, a pin or what ran recently."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import cast

from delivery import clikit, plugins
from delivery.argtypes import bounded_int
from delivery.audit import AuditEvent
from delivery.environments import environments_dir
from delivery.release import connect
from delivery.release.gc import (
    GcPlan,
    NoExecutions,
    RecentExecutions,
    UnionOfExecutions,
    apply,
    plan,
    protected_digests,
    read_tags,
)

EPILOG = """\
examples:
  delivery gc emphysema --keep 5                 # dry run: what would be deleted, and why the rest stays
  delivery gc emphysema --keep 5 --apply         # delete it (audited)
  delivery gc --keep 3 --env production --json   # every biomarker under the environment's prefix

Only pre-release versions beyond the KEEP newest are deleted; release tags never are. A digest pinned by
any environment's channel or freeze, used by an execution within --window-days, or carried by any kept tag
(the 2.8 registry deletes by digest, taking every tag on it) is kept. Blobs are freed by the registry's own
garbage-collect afterwards.

exit status: 0 planned or applied, 1 failed, 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `gc`."""
    parser = clikit.add_command(sub, "gc", _gc, epilog=EPILOG,
                                help="delete old pre-releases nothing pins or ran recently (dry run unless --apply)")
    parser.add_argument("names", nargs="*", metavar="NAME", help="biomarkers (default: all under the prefix)")
    parser.add_argument("--keep", type=bounded_int(0, 10_000), required=True, metavar="N",
                        help="newest pre-releases to keep")
    parser.add_argument("--window-days", type=bounded_int(1, 3650), default=30, metavar="D",
                        help="keep digests executions used in the last D days (default: %(default)s)")
    parser.add_argument("--apply", action="store_true", help="delete (default: dry run, deletes nothing)")
    connect.add_environment_flag(parser)
    clikit.add_json_flag(parser)


def recent_executions() -> RecentExecutions:
    """What every installed ledger plugin (`delivery.recent_executions` entry points) says ran recently."""
    group = "delivery.recent_executions"
    sources = [cast(RecentExecutions, plugins.factory(group, name)()) for name in plugins.names(group)]
    return UnionOfExecutions(tuple(sources)) if sources else NoExecutions()


def _gc(args: argparse.Namespace) -> int:
    env = connect.environment(args.env)
    client = connect.client_for(env.registry, env.credentials_env)
    names = args.names or [r.removeprefix(env.repository_prefix + "/") for r in client.catalog()
                           if r.startswith(env.repository_prefix + "/")]
    now = datetime.now(UTC)
    since = now - timedelta(days=args.window_days)
    all_envs = sorted(p.stem for p in environments_dir().glob("*.yaml"))
    store, results = connect.release_store(), []
    for name in names:
        repository = env.repository(name)
        tags = read_tags(client, repository)
        guarded = protected_digests(name, tags, store, all_envs, recent_executions(), since, now)
        gc_plan = plan(repository, tags, keep=args.keep, protected=guarded)
        deleted = apply(client, gc_plan) if args.apply else []
        if deleted:
            connect.audit_log().append(AuditEvent("gc", f"{env.name}/{name}", f"gc --keep {args.keep}",
                                                  details={"deleted": [asdict(d) for d in deleted]}))
        results.append((gc_plan, bool(deleted) or args.apply))
    _report(results, args.json)
    return 0


def _report(results: list[tuple[GcPlan, bool]], as_json: bool) -> None:
    if as_json:
        clikit.print_json([asdict(p) | {"applied": applied} for p, applied in results])
        return
    for gc_plan, applied in results:
        verb = "deleted" if applied else "would delete"
        print(f"{gc_plan.repository}: {verb} {len(gc_plan.delete)} digest(s)")
        for deletion in gc_plan.delete:
            print(f"  - {deletion.digest[:19]}… {', '.join(deletion.tags)} ({deletion.why})")
        for kept in gc_plan.kept:
            print(f"  = {kept.tag} ({kept.why})")
    if not any(applied for _, applied in results):
        print("dry run: nothing was deleted; add --apply to delete")
