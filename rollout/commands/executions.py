"""`rollout executions list|show`: the execution ledger."""

from __future__ import annotations

import argparse
from datetime import datetime

from delivery import clikit
from delivery.argtypes import bounded_int
from rollout.executions.resume import resume
from rollout.executions.submit import describe
from rollout.executions.wiring import add_service_flags, collector, ledger

EPILOG = """\
examples:
  rollout executions list --biomarker emphysema --version 1.4.2
  rollout executions show 5b0e4c1e-… --json
  rollout executions wait 5b0e4c1e-… --json     # a Nomad submission made without --wait
  rollout executions resume --json              # collect runs whose server died (also done by `rollout serve`)
"""

WAIT_EPILOG = EPILOG + """
Waits for the allocation to finish (following Nomad's replacement once if a node is lost), hashes the outputs,
writes provenance.json beside them and appends the outcome to the ledger; a paired shadow run is collected and
compared too. An execution that already finished is shown as recorded. exit status: 0 succeeded, 1 otherwise.
"""

RESUME_EPILOG = EPILOG + """
Finds the executions of the backend (--backend, default docker) from the last 7 days that have no outcome (at
most 200) and collects each like `wait`: a running job is waited for, a finished one collected (outputs hashed,
provenance.json written), a local container that no longer exists recorded as `lost`. Each execution gets at most
one outcome, even when a live server or another resume collects it at the same time. `rollout serve` runs the same
pass in the background when it starts. exit status: 0, or 1 when some execution could not be collected.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("executions", help="list and show recorded executions (the ledger)")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    listing = clikit.add_command(inner, "list", _list, help="list the latest executions, newest first",
                                 epilog=EPILOG)
    listing.add_argument("--biomarker", help="only this biomarker")
    listing.add_argument("--version", dest="version_filter", metavar="VERSION", help="only this resolved version")
    listing.add_argument("--since", type=datetime.fromisoformat, help="only executions created since (ISO time)")
    listing.add_argument("--limit", type=bounded_int(1, 1_000_000), default=200,
                         help="at most this many (default 200, the latest)")
    listing.add_argument("--oldest-first", action="store_true",
                         help="the first executions recorded (since --since), oldest first")
    clikit.add_json_flag(listing)
    show = clikit.add_command(inner, "show", _show, help="one execution with its whole history", epilog=EPILOG)
    show.add_argument("id", help="execution id")
    clikit.add_json_flag(show)
    wait = clikit.add_command(inner, "wait", _wait, help="collect an execution dispatched without --wait",
                              epilog=WAIT_EPILOG)
    wait.add_argument("id", help="execution id")
    add_service_flags(wait)
    wait.set_defaults(backend="nomad")  # the usual case: a Nomad submission made without --wait
    resume = clikit.add_command(inner, "resume", _resume, help="collect every run whose collecting process died",
                                epilog=RESUME_EPILOG)
    add_service_flags(resume)


def _list(args: argparse.Namespace) -> int:
    found = ledger().executions(biomarker=args.biomarker, version=args.version_filter, since=args.since,
                                limit=args.limit, newest_first=not args.oldest_first)
    if args.json:
        clikit.print_json([e.as_json() for e in found])
        return 0
    for e in found:
        r = e.record
        print(f"{e.id}  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.biomarker} {r.version}  {r.route:9} {e.status:10} "
              f"{r.input_identity[:30]}")
    return 0


def _wait(args: argparse.Namespace) -> int:
    submission = collector(args).wait(args.id)
    if args.json:
        clikit.print_json(dict(describe(submission)))
    else:
        for e in (submission.execution, submission.shadow):
            if e is not None:
                print(f"{e.id}  {e.status}  {e.record.biomarker} {e.record.version} ({e.record.digest})  "
                      f"outputs in {e.record.output_path}")
    return 0 if submission.execution.succeeded else 1


def _resume(args: argparse.Namespace) -> int:
    done = resume(collector(args))
    if args.json:
        clikit.print_json([r.as_json() for r in done])
    else:
        for r in done:
            print(f"{r.execution_id}  {r.status:10} {r.action}")
        if not done:
            print("no unfinished executions")
    return 1 if any(r.action.startswith("not collected") for r in done) else 0


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
