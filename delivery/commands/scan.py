"""`delivery scan`: which repositories of an organisation are biomarkers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from delivery import clikit
from delivery.argtypes import bounded_float
from delivery.scm import BackendSpec, ScanOptions, ScanResult, open_backend
from delivery.scm.etagcache import default_path

EPILOG = """\
examples:
  delivery scan --org local:biomarkers
  GITHUB_TOKEN=... delivery scan --org acme --topic biomarker --json
  delivery scan --org gitlab:acme                 # an installed delivery.scm plugin named gitlab
  delivery scan --org acme --github-url https://ghe.example.com/api/v3 --api rest --exclude 'sandbox-*'

exit status: 0 complete scan with valid manifests, 1 a manifest is invalid or the
scan was partial (GitHub failed or the rate limit ran out), 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `scan`."""
    parser = clikit.add_command(
        sub, "scan", _scan, help="list the biomarker repositories of a GitHub organisation or a local folder",
        epilog=EPILOG,
    )
    add_org_arguments(parser)
    clikit.add_json_flag(parser)


def add_org_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say which organisation to scan and how."""
    parser.add_argument("--org", required=True,
                        help="GitHub organisation, local:PATH (each sub-folder a repository), or NAME:TARGET "
                             "for an installed delivery.scm plugin")
    parser.add_argument("--scm", metavar="NAME",
                        help="delivery.scm plugin to use (default: the --org prefix, else github)")
    parser.add_argument("--github-url", default="https://api.github.com",
                        help="GitHub API base URL (GitHub Enterprise: https://HOST/api/v3)")
    parser.add_argument("--token-env", default="GITHUB_TOKEN", metavar="VAR",
                        help="environment variable holding the GitHub token (default GITHUB_TOKEN)")
    parser.add_argument("--api", choices=("graphql", "rest"), default="graphql",
                        help="graphql (default: 100 repositories and their files per request) or rest (ETag cached)")
    parser.add_argument("--topic", help="only repositories with this GitHub topic")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB", help="only names matching GLOB")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip names matching GLOB")
    parser.add_argument("--cache", type=Path, default=None, metavar="FILE",
                        help=f"ETag cache for --api rest (default {default_path()})")
    parser.add_argument("--max-wait", type=bounded_float(0, 7 * 86400), default=3600.0, metavar="SECONDS",
                        help="longest wait for a rate-limit reset before the scan stops as partial")


def spec_from_args(args: argparse.Namespace) -> BackendSpec:
    """The `BackendSpec` the org arguments describe."""
    return BackendSpec(args.org, args.github_url, args.token_env, args.api, args.cache or default_path(),
                       args.max_wait, scm=args.scm)


def run_scan(args: argparse.Namespace) -> ScanResult:
    """Scan the organisation the arguments name; progress goes to stderr."""
    backend = open_backend(spec_from_args(args), progress=lambda m: print(m, file=sys.stderr))
    return backend.scan(ScanOptions(args.topic, tuple(args.include), tuple(args.exclude)))


def report(result: ScanResult) -> None:
    """Print problems and errors of a scan on stderr, one per line."""
    for problem in result.problems:
        print(problem, file=sys.stderr)
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if not result.complete:
        print(f"the scan of {result.org} was partial; nothing will be pruned after it", file=sys.stderr)


def _scan(args: argparse.Namespace) -> int:
    result = run_scan(args)
    if args.json:
        clikit.print_json(result.to_json())
    else:
        for repo in result.repositories:
            print(f"{repo.full_name}: {repo.manifest.name} ({repo.manifest.pipeline} pipeline)")
        print(f"{len(result.repositories)} biomarker repositories of {result.seen} scanned", file=sys.stderr)
    report(result)
    return 0 if result.complete and not result.problems else 1
