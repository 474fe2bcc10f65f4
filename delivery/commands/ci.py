"""`delivery ci build|test|scan|push|attest|run`: the pipeline's stages, the same on Jenkins and on a laptop."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from delivery import clikit
from delivery.ci import context as ci_context
from delivery.ci.record import RunRecord, StageResult
from delivery.ci.stages import Options, StageEnv, execute, host_ca_bundle
from delivery.ci.status import CommitStatusSink, GitHubStatus, NoStatus, github_repository
from delivery.config import add_registry_flag, registry_settings
from delivery.docker import DockerClient
from delivery.errors import ConfigError, DeliveryError, UsageError
from delivery.github import GitHubClient
from delivery.manifest import load_manifest
from delivery.manifest.model import DURATION
from delivery.paths import state_home
from delivery.provenance import generate_keys
from delivery.scm.ratelimit import Governor, SystemClock
from delivery.secrets import from_env
from delivery.trivy import SEVERITIES

EPILOG = """\
examples:
  delivery ci run biomarkers/emphysema --base-image 127.0.0.1:5000/base/python:bookworm
  delivery ci build . --extra-ca-bundle /etc/ssl/certs/corp-proxy.pem
  delivery ci test . --gpu --allow-no-gpu
  delivery ci scan . --severity CRITICAL
  delivery ci run . --allow-unscanned --reason "INC-7: DB import pending"   # audited, in the attestation
  delivery ci push . && delivery ci attest . --key signing.key

Stages pass their results through REPO/.delivery/run.json (or --work-dir), so
Jenkins stages on different agents share them with stash/unstash.
exit status: 0 passed or skipped, 1 the stage failed (message says why), 2 usage error
"""

RUN_ORDER = ("build", "test", "gpu-test", "scan", "push", "attest")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ci` and its stage subcommands."""
    group = sub.add_parser("ci", help="the pipeline's stages: build, test, GPU test, scan, push, attest, run")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    helps = {
        "build": "build the image from biomarker.yaml's build section (OCI labels, BASE_IMAGE, CA bundle)",
        "test": "run the manifest's test command inside the built image (no network, read-only root); JUnit XML",
        "scan": "trivy: image secrets/vulnerabilities, Dockerfile checks, CycloneDX SBOM; severity gate",
        "push": "push X.Y.Z on a release tag vX.Y.Z, sha-<12 hex> on the default branch; never latest",
        "attest": "sign SLSA provenance (DSSE, ed25519) and store it next to the image as sha256-<hex>.att",
        "run": "run every stage in order on this machine with live progress and a final table",
    }
    for name, text in helps.items():
        parser = clikit.add_command(inner, name, _handler(name), help=text, epilog=EPILOG)
        parser.add_argument("repo", nargs="?", type=Path, default=Path(), metavar="REPO_PATH",
                            help="biomarker repository (default: current folder)")
        parser.add_argument("--work-dir", type=Path, help="run record and reports (default: REPO/.delivery)")
        add_registry_flag(parser)
        clikit.add_json_flag(parser)
        _stage_flags(parser, name)


def _stage_flags(parser: argparse.ArgumentParser, name: str) -> None:
    if name in ("build", "run"):
        parser.add_argument("--base-image", default=os.environ.get("DELIVERY_BASE_IMAGE"),
                            help="BASE_IMAGE build argument (default: $DELIVERY_BASE_IMAGE)")
        parser.add_argument("--extra-ca-bundle", type=Path, default=os.environ.get("DELIVERY_EXTRA_CA_BUNDLE"),
                            help="CA bundle the build's package downloads trust (default: the host's bundle plus "
                                 "/usr/local/share/ca-certificates/*.crt); sent as a build-context file the "
                                 "Dockerfile uses in a builder stage only, never left in the image")
        parser.add_argument("--network", default="host", help="network of RUN steps (default: host)")
    if name in ("test", "run"):
        parser.add_argument("--allow-no-gpu", action="store_true",
                            help="skip (instead of fail) the GPU test when the engine has no GPU runtime; release "
                                 "builds also need --reason (audited, recorded in the attestation)")
    if name == "test":
        parser.add_argument("--gpu", action="store_true", help="run test.gpu_command with an NVIDIA device request")
    if name == "run":
        parser.add_argument("--gpu", choices=("auto", "require", "skip"), default="auto",
                            help="GPU test: auto = run it; without a GPU runtime a branch build skips it and a "
                                 "release build fails unless --allow-no-gpu --reason (default); require; skip "
                                 "(release builds: with --reason)")
    if name in ("scan", "run"):
        parser.add_argument("--severity", choices=SEVERITIES, default=os.environ.get("DELIVERY_SCAN_SEVERITY"),
                            help="findings at or above this severity close the gate (default: "
                                 "$DELIVERY_SCAN_SEVERITY, else the manifest's scan.severity, else HIGH)")
        parser.add_argument("--ignore-file", type=Path,
                            help="audited ignores (default: the manifest's scan.ignore_file, "
                                 "else REPO/scan-ignore.yaml)")
        parser.add_argument("--require-vuln-db", action=argparse.BooleanOptionalAction, default=None,
                            help="fail when vulnerabilities could not be scanned (default: the manifest's "
                                 "scan.require_vuln_db, else on); --no-require-vuln-db: non-release builds only "
                                 "warn. Release-tag builds always fail unless --allow-unscanned")
        parser.add_argument("--max-db-age", default=os.environ.get("DELIVERY_SCAN_MAX_DB_AGE"), metavar="DURATION",
                            help="oldest vulnerability DB that counts, e.g. 72h (default: "
                                 "$DELIVERY_SCAN_MAX_DB_AGE, else the manifest's scan.max_db_age, else 168h)")
        parser.add_argument("--allow-unscanned", action="store_true",
                            help="let this build pass although vulnerabilities were not (freshly) scanned; needs "
                                 "--reason, is audited and recorded in the attestation")
    if name in ("scan", "test", "run"):
        parser.add_argument("--reason", default="", metavar="TEXT",
                            help="why this build may pass without a check (required with --allow-unscanned, and "
                                 "on release builds with --allow-no-gpu or --gpu skip); audited and attested")
    if name in ("attest", "run"):
        parser.add_argument("--key", type=Path, default=os.environ.get("DELIVERY_SIGNING_KEY"),
                            help="ed25519 signing key (default: $DELIVERY_SIGNING_KEY, else $DELIVERY_HOME/keys/)")


def _handler(name: str) -> clikit.Handler:
    def handle(args: argparse.Namespace) -> int:
        return _run(args) if name == "run" else _single(args, "gpu-test" if name == "test" and args.gpu else name)
    return handle


def _options(args: argparse.Namespace) -> Options:
    ca = getattr(args, "extra_ca_bundle", None)
    if ca is not None and not Path(ca).is_file():
        raise ConfigError(f"--extra-ca-bundle {ca} is not a file")
    key = getattr(args, "key", None)
    allow, reason, age = _scan_flags(args)
    return Options(
        base_image=getattr(args, "base_image", None), ca_bundle=Path(ca).read_bytes() if ca else host_ca_bundle(),
        network=getattr(args, "network", "host"), allow_no_gpu=getattr(args, "allow_no_gpu", False),
        gpu=_gpu_mode(args),
        severity=getattr(args, "severity", None), ignore_file=getattr(args, "ignore_file", None),
        require_vuln_db=getattr(args, "require_vuln_db", None), max_db_age=age, allow_unscanned=allow,
        reason=reason,
        signing_key=Path(key) if key else state_home() / "keys" / "signing.key",
    )


def _gpu_mode(args: argparse.Namespace) -> str:
    """`ci run --gpu auto|require|skip`; `ci test --gpu` (a switch) always requires its GPU unless --allow-no-gpu."""
    mode = getattr(args, "gpu", None)
    return mode if isinstance(mode, str) else "require"


def _scan_flags(args: argparse.Namespace) -> tuple[bool, str, str | None]:
    """--allow-unscanned (needs --reason) and --max-db-age, checked at the edge."""
    allow, reason = getattr(args, "allow_unscanned", False), getattr(args, "reason", "").strip()
    if allow and not reason:
        raise UsageError("--allow-unscanned needs --reason TEXT", hint="Say why this build may go unscanned; "
                                                                       "it is audited and attested.")
    age = getattr(args, "max_db_age", None)
    if age is not None and not re.fullmatch(DURATION, age):
        raise UsageError(f"--max-db-age {age!r} is not a duration such as 72h, 90m or 3600s")
    return allow, reason, age


def _env(args: argparse.Namespace, *, fresh: bool) -> StageEnv:
    repo = Path(args.repo).resolve()
    manifest = load_manifest(repo / "biomarker.yaml")
    record = RunRecord.open(args.work_dir or repo / ".delivery")
    known = record.get("context")
    if fresh or not known:
        ctx = ci_context.detect(repo)
        record.reset(ctx.to_json())
    else:
        ctx = ci_context.CiContext.from_json(known)
    return StageEnv(repo, record, DockerClient(), manifest, ctx, lambda: registry_settings(args))


def status_sink() -> CommitStatusSink:
    """GitHub commit statuses inside a Jenkins build (BUILD_URL) with GITHUB_TOKEN; nowhere otherwise."""
    token = from_env("GITHUB_TOKEN", required=False)
    full_name = github_repository(os.environ.get("GIT_URL", ""))
    if not (os.environ.get("BUILD_URL") and token and full_name):
        return NoStatus()
    client = GitHubClient(os.environ.get("GITHUB_API_URL", "https://api.github.com"), token,
                          Governor(SystemClock(), max_wait=60.0))
    return GitHubStatus(client, full_name, lambda text: print(f"warning: {text}", file=sys.stderr))


def _single(args: argparse.Namespace, name: str) -> int:
    env = _env(args, fresh=name == "build")
    result, outcome = execute(name, env, _options(args), status_sink())
    if args.json:
        clikit.print_json({"stage": dataclasses.asdict(result), "record": str(env.record.path)})
        return 0
    for line in outcome.lines:
        print(line)
    print(f"{name}: {result.status}: {result.summary}")
    return 0


def _run(args: argparse.Namespace) -> int:
    options = _options(args)
    if options.signing_key and not options.signing_key.exists() and args.key is None:
        generate_keys(options.signing_key.parent)  # the embedded default signs with its own key
    env = _env(args, fresh=True)
    stages = list(RUN_ORDER)
    console = Console(stderr=True)
    console.print(f"[bold]delivery ci run[/] {env.manifest.name} @ {env.context.commit[:12]} ({env.context.ref})")
    results, failure = _run_stages(env, options, stages, console)
    _print_table(console, results, stages)
    if args.json:
        clikit.print_json({"record": str(env.record.path), "stages": [dataclasses.asdict(r) for r in results],
                           "push": env.record.get("push"), "attest": env.record.get("attest")})
    if failure:
        raise failure
    return 0


def _run_stages(env: StageEnv, options: Options, stages: list[str],
                console: Console) -> tuple[list[StageResult], DeliveryError | None]:
    results: list[StageResult] = []
    sink = status_sink()
    for name in stages:
        started = time.monotonic()
        with console.status(f"{name}…") as status:
            env.on_line = lambda line, s=status, n=name: s.update(f"{n}: {line[:100]}")
            try:
                result, outcome = execute(name, env, options, sink)
            except DeliveryError as e:
                console.print(f"[red]✗ {name}[/] ({time.monotonic() - started:.1f}s): {e.message}")
                recorded = env.record.stage(name)
                return [*results, *([recorded] if recorded else [])], e
        for line in outcome.lines:
            console.print(f"    {line}", markup=False)
        mark = "[green]✓" if result.status == "passed" else "[yellow]-"
        console.print(f"{mark} {name}[/] ({result.duration_s:.1f}s): {result.summary}", highlight=False)
        results.append(result)
    return results, None


def _print_table(console: Console, results: list[StageResult], stages: list[str]) -> None:
    table = Table(title="delivery ci run")
    for column in ("stage", "result", "seconds", "summary"):
        table.add_column(column)
    done = {r.name: r for r in results}
    for name in stages:
        r = done.get(name)
        style = {"passed": "green", "failed": "red", "skipped": "yellow"}.get(r.status if r else "", "dim")
        table.add_row(name, f"[{style}]{r.status if r else 'not run'}[/]", f"{r.duration_s:.1f}" if r else "",
                      r.summary if r else "")
    console.print(table)
    sys.stderr.flush()
