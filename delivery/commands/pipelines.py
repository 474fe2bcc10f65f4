"""`delivery pipelines render|plan|apply|prune`: generate Jenkins jobs and keep Jenkins in step with the org."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from delivery import clikit
from delivery.commands.scan import add_org_arguments, report, run_scan
from delivery.errors import UsageError
from delivery.jenkins import JenkinsClient
from delivery.pipelines import sync
from delivery.pipelines.render import RenderedJob, Settings, render_all, render_folder, write_tree
from delivery.scm import ScanResult
from delivery.secrets import from_env

EPILOG = """\
examples:
  delivery pipelines render --org local:biomarkers --out out/pipelines
  delivery pipelines plan  --org acme --jenkins-url https://ci.example.com
  delivery pipelines apply --org acme --jenkins-url https://ci.example.com
  delivery pipelines prune --org acme --jenkins-url https://ci.example.com --delete

Jenkins credentials: --jenkins-user (or JENKINS_USER) and the API token in the
variable named by --jenkins-token-env (default JENKINS_TOKEN). Jobs carry an
ownership marker; jobs without it are never changed. prune disables by default
and refuses to run after a partial or empty scan.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `pipelines render|plan|apply|prune`."""
    group = sub.add_parser("pipelines", help="generate Jenkins pipelines and sync them to Jenkins",
                           description="Generate Jenkins pipelines and sync them to Jenkins.", epilog=EPILOG,
                           formatter_class=clikit.HelpFormatter)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    render = clikit.add_command(inner, "render", _render, help="write a Jenkinsfile and config.xml per biomarker",
                                epilog=EPILOG)
    render.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write ORG/REPO/... into")
    plan = clikit.add_command(inner, "plan", _plan, help="show a diff against live Jenkins (changed jobs only)",
                              epilog=EPILOG)
    apply = clikit.add_command(inner, "apply", _apply, help="create and update only the jobs that changed",
                               epilog=EPILOG)
    prune = clikit.add_command(inner, "prune", _prune, help="disable owned jobs whose repository is gone",
                               epilog=EPILOG)
    prune.add_argument("--delete", action="store_true", help="delete instead of disabling (loses build history)")
    for parser in (render, plan, apply, prune):
        add_org_arguments(parser)
        add_settings_arguments(parser)
        clikit.add_json_flag(parser)
    for parser in (plan, apply, prune):
        add_jenkins_arguments(parser)


def add_jenkins_arguments(parser: argparse.ArgumentParser) -> None:
    """Where Jenkins is and who we are there."""
    parser.add_argument("--jenkins-url", default=os.environ.get("JENKINS_URL"), help="Jenkins URL (or JENKINS_URL)")
    parser.add_argument("--jenkins-user", default=os.environ.get("JENKINS_USER"), help="Jenkins user (or JENKINS_USER)")
    parser.add_argument("--jenkins-token-env", default="JENKINS_TOKEN", metavar="VAR",
                        help="environment variable holding the user's API token (default JENKINS_TOKEN)")


def jenkins_client(args: argparse.Namespace) -> JenkinsClient:
    """The Jenkins client the arguments describe."""
    if not args.jenkins_url:
        raise UsageError("no Jenkins URL", hint="Pass --jenkins-url or set JENKINS_URL.")
    token = from_env(args.jenkins_token_env, required=bool(args.jenkins_user))
    return JenkinsClient(args.jenkins_url, args.jenkins_user, token)


def settings_of(args: argparse.Namespace) -> Settings:
    """Rendering settings from the arguments."""
    return Settings(args.github_url, args.github_credentials_id, args.registry_credentials_id,
                    args.signing_credentials_id, args.agent_label)


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """The rendering settings: credential ids and the agent label."""
    defaults = Settings()
    parser.add_argument("--github-credentials-id", default=defaults.github_credentials_id, metavar="ID",
                        help="Jenkins credential id jobs use to read GitHub")
    parser.add_argument("--registry-credentials-id", default=defaults.registry_credentials_id, metavar="ID",
                        help="Jenkins credential id of the registry push account")
    parser.add_argument("--signing-credentials-id", default=defaults.signing_credentials_id, metavar="ID",
                        help="Jenkins credential id of the provenance signing key")
    parser.add_argument("--agent-label", default=defaults.agent_label, help="label of the Docker build agents")


def _scan_and_render(args: argparse.Namespace) -> tuple[ScanResult, tuple[RenderedJob, ...]]:
    result = run_scan(args)
    report(result)
    return result, render_all(result.repositories, settings_of(args))


def _render(args: argparse.Namespace) -> int:
    result, jobs = _scan_and_render(args)
    written = write_tree(args.out, render_folder(result.org, settings_of(args)), jobs)
    if args.json:
        clikit.print_json({"scan": result.to_json(), "files": [str(p) for p in written]})
    else:
        for path in written:
            print(path)
    return 0 if result.complete else 1


def _plan(args: argparse.Namespace) -> int:
    result, jobs = _scan_and_render(args)
    client = jenkins_client(args)
    the_plan = sync.plan(client, render_folder(result.org, settings_of(args)), jobs)
    text = sync.diff(client, the_plan)
    if args.json:
        clikit.print_json(the_plan.to_json() | {"diff": text})
    else:
        sys.stdout.write(text)
        _summary(the_plan)
    return 0


def _apply(args: argparse.Namespace) -> int:
    result, jobs = _scan_and_render(args)
    client = jenkins_client(args)
    the_plan = sync.plan(client, render_folder(result.org, settings_of(args)), jobs)
    written = sync.apply(client, the_plan, lambda m: print(m, file=sys.stderr))
    if args.json:
        clikit.print_json(the_plan.to_json() | {"written": written})
    else:
        _summary(the_plan)
    return 0 if result.complete else 1


def _prune(args: argparse.Namespace) -> int:
    result, jobs = _scan_and_render(args)
    client = jenkins_client(args)
    the_plan = sync.plan(client, render_folder(result.org, settings_of(args)), jobs)
    done = sync.prune(client, the_plan, result, delete=args.delete, progress=lambda m: print(m, file=sys.stderr))
    if args.json:
        clikit.print_json({"pruned": done, "deleted": args.delete})
    else:
        print(f"{'deleted' if args.delete else 'disabled'} {done} job(s) whose repository is gone")
    return 0


def _summary(the_plan: sync.Plan) -> None:
    print(
        f"{len(the_plan.create)} to create, {len(the_plan.update)} to update, {len(the_plan.unchanged)} unchanged, "
        f"{len(the_plan.orphans)} orphaned (prune), {len(the_plan.conflicts)} not ours (left alone)",
        file=sys.stderr,
    )
    for name in the_plan.conflicts:
        print(f"warning: {name} exists in Jenkins without our marker; it is left alone", file=sys.stderr)
