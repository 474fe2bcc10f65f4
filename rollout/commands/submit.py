"""`rollout submit NAME@SPEC --input PATH --out PATH`: run one study on a pinned build and record it."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from delivery.errors import UsageError
from rollout.executions.model import Execution, ExecutionRequest
from rollout.executions.submit import describe
from rollout.executions.wiring import add_service_flags, submitter
from rollout.executions.workflow import run_workflow

EPILOG = """\
examples:
  rollout submit emphysema@1.4.2 --input /studies/1.2.840.1234 --out /results/1234
  rollout submit emphysema@stable --input study/ --out out/ --series-uid 1.2.840.1234 --json
  rollout submit emphysema@stable --cohort copd-trial --input study/ --out out/   # the trial's frozen version
  rollout submit emphysema@~1.4 --workflow full --input study/ --out out/
  rollout submit emphysema@1.2.0 --allow-yanked --reason "re-run for CAPA-12" --input study/ --out out/

A yanked version is recalled: submitting to it is refused unless --allow-yanked --reason TEXT, which the ledger
and provenance.json record (who, why). Ranges never pick a yanked version.

The outputs get a provenance.json naming the exact image digest; `rollout executions show ID` prints the ledger
entry. exit status: 0 succeeded (or dispatched without --wait on Nomad), 1 failed, 2 usage error.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = clikit.add_command(sub, "submit", _submit, help="run one study on a pinned biomarker build",
                                epilog=EPILOG)
    parser.add_argument("pin", metavar="NAME@SPEC", help="biomarker and pin: 1.4.2, ~1.4, ^1, sha256:…, stable")
    parser.add_argument("--input", type=Path, required=True, help="study file or folder (mounted read-only)")
    parser.add_argument("--out", type=Path, required=True, help="folder the outputs and provenance.json go to")
    parser.add_argument("--variant", help="variant of the manifest (default: its first)")
    parser.add_argument("--workflow", help="run a workflow of the manifest instead of one variant")
    parser.add_argument("--cohort", help="trial cohort; a cohort freeze keeps its version")
    parser.add_argument("--series-uid", help="DICOM series instance UID identifying the study (else content hash)")
    parser.add_argument("--request-id", help="client's id for this request: a retry with it never runs twice")
    parser.add_argument("--wait", action="store_true", help="on Nomad, wait for the result (local always waits)")
    parser.add_argument("--allow-yanked", action="store_true",
                        help="run a yanked (recalled) version anyway; needs --reason (recorded)")
    parser.add_argument("--reason", help="why a yanked version must run (with --allow-yanked)")
    add_service_flags(parser)


def _submit(args: argparse.Namespace) -> int:
    name, _, spec = args.pin.partition("@")
    if not name or not spec:
        raise UsageError(f"{args.pin!r} is not NAME@SPEC", hint="For example: emphysema@1.4.2 or emphysema@stable.")
    if args.allow_yanked != bool(args.reason and args.reason.strip()):
        raise UsageError("--allow-yanked and --reason TEXT go together",
                         hint="Say why the recalled version must run: --allow-yanked --reason 'CAPA-12 re-run'.")
    request = ExecutionRequest(biomarker=name, spec=spec, input_path=args.input, output_path=args.out,
                               variant=args.variant, environment=args.env, cohort=args.cohort,
                               series_uid=args.series_uid, request_id=args.request_id,
                               yank_override=args.reason if args.allow_yanked else None)
    service = submitter(args)
    wait = args.wait or args.backend == "docker"
    if args.workflow:
        run = run_workflow(service, service.manifest(name), request, args.workflow)
        _print(run.as_json(), args.json, run.executions)
        return 0 if run.succeeded else 1
    submission = service.run(request, wait=wait)
    _print(dict(describe(submission)), args.json, (submission.execution,))
    return 0 if submission.execution.status in ("succeeded", "dispatched") else 1


def _print(document: dict[str, object], as_json: bool, executions: tuple[Execution, ...]) -> None:
    if as_json:
        clikit.print_json(document)
        return
    for e in executions:
        r = e.record
        print(f"{e.id}  {e.status}  {r.biomarker} {r.version} ({r.digest})  route {r.route}  via {r.backend}")
        print(f"  pin {r.pin_requested}: {r.resolution_rule}")
        override = e.latest("yank_override")
        if override:
            print(f"  YANKED version run anyway by {override['overridden_by']}: {override['override_reason']} "
                  f"(yanked by {override['yanked_by']}: {override['yank_reason']})")
        print(f"  outputs in {r.output_path} (provenance.json)")
        if e.status not in ("succeeded", "dispatched"):
            print("  " + "\n  ".join(e.latest("log_tail") or [e.latest("reason") or ""]))
