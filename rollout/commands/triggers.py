"""`rollout triggers run|check|retry|list`: rules that submit pinned executions when studies arrive."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from delivery import clikit
from delivery.paths import default_database_url
from rollout.executions.triggers.events import TriggerLog
from rollout.executions.triggers.rules import FolderRule, load_rules
from rollout.executions.triggers.runner import TriggerRunner, retry_failed
from rollout.executions.wiring import add_service_flags, submitter

EPILOG = """\
examples:
  rollout triggers check triggers.yaml
  rollout triggers run triggers.yaml --org biomarkers          # poll folders, serve webhooks until Ctrl-C
  rollout triggers run triggers.yaml --once                    # one stability check of the folders, submit, exit
  rollout triggers retry --json                                # re-run events whose submission failed
  rollout triggers list --status failed

triggers.yaml:
  apiVersion: delivery/v1
  kind: Triggers
  listen: 127.0.0.1:8787                      # webhook endpoint: POST /hooks/<rule name>
  rules:
    - {name: ct-inbox, on: file_created, folder: /incoming, poll_seconds: 5, submit: emphysema@stable,
       output: /results}
    - {name: pacs, on: webhook, inputs: /studies, secret_env: PACS_HOOK_KEY, submit: emphysema@1.4.2,
       output: /results}

A folder entry counts once its size, file count and newest mtime are unchanged over two polls (names starting
with `.` or ending in .part/.tmp are skipped). Webhooks: X-Delivery-Timestamp (unix seconds) and
X-Delivery-Signature: sha256=HMAC-SHA256(key, TIMESTAMP + "." + BODY); body {"id", "input", "series_uid"}.
exit status: 0 done, 1 a submission failed (recorded; `rollout triggers retry`) or the rules file is invalid
(every problem printed as FILE:LINE:COLUMN), 2 usage error.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("triggers", help="submit executions when studies arrive (folders, signed webhooks)",
                           epilog=EPILOG, formatter_class=clikit.HelpFormatter)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    run = clikit.add_command(inner, "run", _run, help="watch folders and serve webhooks", epilog=EPILOG)
    run.add_argument("file", type=Path, help="the rules file (YAML)")
    run.add_argument("--once", action="store_true", help="check the folders once (two polls), submit, exit")
    add_service_flags(run)
    check = clikit.add_command(inner, "check", _check, help="validate a rules file", epilog=EPILOG)
    check.add_argument("file", type=Path, help="the rules file (YAML)")
    clikit.add_json_flag(check)
    retry = clikit.add_command(inner, "retry", _retry, help="re-submit events whose submission failed", epilog=EPILOG)
    add_service_flags(retry)
    listing = clikit.add_command(inner, "list", _list, help="recorded trigger events", epilog=EPILOG)
    listing.add_argument("--rule", help="only this rule's events")
    listing.add_argument("--status", choices=("received", "submitted", "failed"), help="only events in this state")
    clikit.add_json_flag(listing)


def _check(args: argparse.Namespace) -> int:
    rules = load_rules(args.file)
    summary = [{"name": r.name, "on": r.on, "submit": r.submit,
                "source": str(r.folder if isinstance(r, FolderRule) else f"/hooks/{r.name}")} for r in rules.rules]
    if args.json:
        clikit.print_json({"file": str(args.file), "valid": True, "rules": summary})
    else:
        for s in summary:
            print(f"{s['name']:20} {s['on']:13} {s['source']}  ->  {s['submit']}")
        print(f"{args.file}: {len(summary)} rule(s), valid")
    return 0


def _run(args: argparse.Namespace) -> int:
    rules = load_rules(args.file)
    events = TriggerLog(default_database_url())
    runner = TriggerRunner(rules, submitter(args), events)
    if args.once:
        if any(not isinstance(r, FolderRule) for r in rules.rules):
            print("note: --once checks folders only; webhooks are served by `rollout triggers run` without it",
                  file=sys.stderr)
        runner.run_once()
    else:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print(f"watching {len(rules.rules)} rule(s); webhooks on {rules.listen}; Ctrl-C stops", file=sys.stderr)
        try:
            runner.run(stop)
        except KeyboardInterrupt:
            stop.set()
    failed = events.events(status="failed")
    _print([e.as_json() for e in events.events()], args.json)
    return 1 if failed else 0


def _retry(args: argparse.Namespace) -> int:
    events = TriggerLog(default_database_url())
    service = submitter(args) if events.events(status="failed") else None
    after = retry_failed(service, events) if service is not None else []
    _print([e.as_json() for e in after], args.json)
    return 1 if any(e.status == "failed" for e in after) else 0


def _list(args: argparse.Namespace) -> int:
    _print([e.as_json() for e in TriggerLog(default_database_url()).events(rule=args.rule, status=args.status)],
           args.json)
    return 0


def _print(events: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        clikit.print_json(events)
        return
    for e in events:
        detail = e["execution_id"] or e["reason"]
        print(f"{e['received_at'][:19]}  {e['rule']:16} {e['status']:9} x{e['attempts']}  {e['key'][:40]}  {detail}")
