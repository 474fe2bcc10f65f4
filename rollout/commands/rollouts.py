"""`rollout deploy|status|watch|promote|pause|resume|abort|rollback|freeze|unfreeze|history`."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from delivery import clikit
from delivery.argtypes import bounded_float
from delivery.commands import audit as audit_cli
from delivery.errors import UsageError
from delivery.manifest import Biomarker, load_manifest
from delivery.release.connect import client_for
from rollout import deploy_source, freeze, preflight
from rollout.commands.controller import lease_for
from rollout.compose import Composition, compose
from rollout.controller import operations
from rollout.controller.leader import LeaderLockError
from rollout.controller.loop import Controller, load_status
from rollout.controller.model import RolloutStatus
from rollout.controller.service import follow_status
from rollout.environment import default_environment
from rollout.jobspec import Release
from rollout.nomad import NomadClient
from rollout.provenance import check_deploy_scan

VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?$")  # what the API's freeze request accepts
MAX_FREEZE_HOURS = 24 * 366 * 10
# Every command that drives the controller may have to verify a candidate: the "no provenance verifier" hint
# tells users to pass --public-key, so each of them takes it.
PUBLIC_KEY_HELP = "CI signing public key to verify the attestation (default DELIVERY_PUBLIC_KEY, else the home's)"
EXIT = "exit status: 0 done, 1 failed or rolled back, 2 usage error, 3 waiting on a human"
WATCH_NOTE = ("The controller service (`rollout controller`, or `rollout serve --controller`) advances rollouts;\n"
              "watch only shows each change and returns when the rollout ends or pauses.\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _common(p: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    p.add_argument("biomarker")
    p.add_argument("--env", "--environment", dest="environment", default=default_environment(),
                   help="environment (default $DELIVERY_ENV or local)")
    p.add_argument("--nomad-addr", help="Nomad address (default NOMAD_ADDR; none: the embedded default)")
    p.add_argument("--namespace", help="Nomad namespace (default NOMAD_NAMESPACE or `default`)")
    p.add_argument("--region", help="Nomad region (default NOMAD_REGION)")
    if json_flag:
        clikit.add_json_flag(p)


def _controller(args: argparse.Namespace, c: Composition) -> Controller:
    """The configuration's store, scheduler and verifier (--public-key, DELIVERY_PUBLIC_KEY or the home's key;
    none refuses); gates judge the candidate on what the execution ledger recorded."""
    return c.controller_for(args.environment, args.biomarker, clock=_now)


def _report(status: RolloutStatus | None, as_json: bool) -> int:
    if status is None:
        print("no rollout", file=sys.stderr)
        return 1
    if as_json:
        clikit.print_json(status.model_dump(mode="json", exclude={"candidate_spec", "promote_spec"}))
    else:
        step = status.current_step
        print(f"{status.biomarker} {status.environment}: {status.candidate.version} {status.phase} "
              f"weight={status.weight}% step={status.step_index + 1}/{len(status.steps)}"
              f" ({step.kind if step else 'done'})")
        for c in status.conditions:
            print(f"  {c.type}={c.status} {c.reason}: {c.message}")
        if status.pause_reasons:
            print(f"  paused: {', '.join(status.pause_reasons)}")
        for g in status.current_gates():
            print(f"  gate {g.name}: {g.verdict} {g.message} (at {g.at:%Y-%m-%d %H:%M:%S})")
    return status.exit_code()


def _deploy(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    variant = args.variant or next(iter(manifest.variants))
    if args.override_freeze and not args.reason:
        raise UsageError("--override-freeze needs --reason")
    if args.allow_unscanned and not args.reason:
        raise UsageError("--allow-unscanned needs --reason")
    source = deploy_source.DeploySource(args.channel, args.version, args.image, args.digest)
    typed = None if source.from_release_state else deploy_source.typed(source, manifest.name)
    c = compose(args)
    state = c.store.read(args.environment, manifest.name).state
    release = typed or deploy_source.pick(source, state, _version_lookup(args, c))
    override = args.reason if args.override_freeze else None
    # Checked first: a freeze, a missing credential, key or attestation fails before anything is written.
    operations._check_freeze(state, _now(), override, freeze.environment_windows(args.environment))
    controller, audit = _controller(args, c), c.audit()
    controller.verifier.verify(deploy_source.reference(release))
    check_deploy_scan(c, deploy_source.reference(release), args.environment,
                      args.reason if args.allow_unscanned else None)
    holder = _before_writing(c, manifest, variant, release)
    if c.nomad is not None:
        _publish_pull_credentials(c.nomad, c, manifest.name, variant, manifest.job_type)
    status = operations.start_rollout(store=c.store, scheduler=c.scheduler, manifest=manifest, variant=variant,
                                      release=release, environment=args.environment, now=_now(), audit=audit,
                                      override_reason=override)
    return _act(args, controller, status, holder)


def _before_writing(c: Composition, manifest: Biomarker, variant: str, release: Release) -> str | None:
    """Cluster mode: Nomad plans the jobs the rollout will register (a refusal stops the deploy here). Then who
    acts: None for this command, else the controller service holding the leader lock."""
    if c.nomad is not None:
        preflight.check_jobs(c.nomad, operations.job_specs(manifest, variant, release), _warn)
    return _service_holder(c)


def _warn(text: str) -> None:
    print(text, file=sys.stderr)


def _service_holder(c: Composition) -> str | None:
    """The controller service holding a live leader lock (it acts, not this command); None when none runs."""
    try:
        return lease_for(c).current_holder()
    except LeaderLockError as e:
        raise LeaderLockError(e.message, hint="Nothing was written. This command reads the lock to learn whether a "
                              "controller service acts; the token needs variables read on delivery/controller/* "
                              "(the release-manager policy, `rollout policies`).") from e


def _act(args: argparse.Namespace, controller: Controller, status: RolloutStatus, holder: str | None) -> int:
    """Act inline when no controller service runs (the embedded default); else the service acts: report only."""
    if holder is None:
        return _report(controller.run(), args.json)
    print(f"the controller service ({holder}) holds the leader lock and will act on this; follow it with "
          f"`rollout watch {status.biomarker} --env {status.environment}`", file=sys.stderr)
    return _report(status, args.json)


def _version_lookup(args: argparse.Namespace, c: Composition) -> deploy_source.VersionLookup:
    """`--version` no channel pins: the environment's registry decides (the environment is loaded only then)."""
    def lookup(biomarker: str, version: str) -> Release:
        from delivery.environments import load_environment

        env = load_environment(args.environment)
        # The environment's own credentials (credentials_env), as `delivery promote` reads that registry.
        client = client_for(env.registry, env.credentials_env, args)
        return deploy_source.registry_lookup(client, env)(biomarker, version)
    return lookup


def _publish_pull_credentials(client: NomadClient, c: Composition, biomarker: str, variant: str,
                              job_type: str) -> None:
    """Cluster mode: the registry credentials a job's template reads at `nomad/jobs/<job id>` (its own identity)."""
    from rollout.jobspec import job_id
    from rollout.registry_auth import publish

    ids = [job_id(biomarker, variant)] + ([job_id(biomarker, variant, "canary")] if job_type == "batch" else [])
    username, password = c.pull_credentials()
    publish(client, ids, username, password)


def _status(args: argparse.Namespace) -> int:
    store = compose(args).store
    return _report(load_status(store.read(args.environment, args.biomarker).state), args.json)


def _watch(args: argparse.Namespace) -> int:
    """Show progress until the rollout ends or waits on a human; the controller service does the acting."""
    store = compose(args).store

    def show(status: RolloutStatus | None) -> None:
        if status is not None:
            print(f"{_now():%H:%M:%S} {status.candidate.version} {status.phase} weight={status.weight}% "
                  f"step={status.step_index + 1}/{len(status.steps)}", file=sys.stderr if args.json else sys.stdout,
                  flush=True)

    return _report(follow_status(store, args.environment, args.biomarker, wait=args.wait, on_change=show), args.json)


def _request(what: str) -> clikit.Handler:
    def handler(args: argparse.Namespace) -> int:
        c = compose(args)
        holder = _service_holder(c)  # read before writing: a lock that cannot be read stops with nothing written
        status = operations.request(c.store, args.environment, args.biomarker, what, now=_now(),
                                    reason=args.reason or "", audit=c.audit())
        return _act(args, _controller(args, c), status, holder)

    return handler


def _bounded(flag: str, value: float | None, most: float) -> float | None:
    """A positive, finite flag value (timedelta and int() crash on nan, inf and 1e308; <= 0 never holds)."""
    if value is not None and not 0 < value <= most:
        raise UsageError(f"{flag} {value} must be more than 0 and at most {most:g}")
    return value


def _freeze(args: argparse.Namespace) -> int:
    hours = _bounded("--hours", args.hours, MAX_FREEZE_HOURS)
    minutes = _bounded("--duration", args.duration, freeze.MAX_WINDOW_S / 60)
    if args.pin is not None and not VERSION.match(args.pin):
        raise UsageError(f"--pin {args.pin!r} is not a version like 1.4.2", hint="Pin an exact released version.")
    c = compose(args)
    expires = _now() + timedelta(hours=hours) if hours else None
    item = freeze.new_freeze(reason=args.reason, owner=args.owner, now=_now(), expires_at=expires,
                             version=args.pin, cohort=args.cohort, cron=args.cron,
                             duration_s=int(minutes * 60) if minutes else None, timezone=args.tz)
    operations.add_freeze(c.store, args.environment, args.biomarker, item, c.audit())
    if args.json:
        clikit.print_json(item.model_dump(mode="json"))
    else:
        print(f"frozen: {item.id}")
    return 0


def _unfreeze(args: argparse.Namespace) -> int:
    c = compose(args)
    operations.remove_freeze(c.store, args.environment, args.biomarker, args.id, c.audit(), args.reason or "")
    print(f"lifted: {args.id}")
    return 0


def _history(args: argparse.Namespace) -> int:
    """The biomarker's audit trail in --env (every environment with --all): every rollout, not just the last."""
    query = audit_cli.query_of(args, biomarker=args.biomarker, environment=None if args.all else args.environment)
    audit_cli.show(compose(args).audit().read(query), args.json)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the rollout commands."""
    p = clikit.add_command(sub, "deploy", _deploy, help="start a progressive rollout of a version", epilog=(
        "examples:\n  rollout deploy emphysema --manifest biomarker.yaml --channel candidate   # what candidate holds\n"
        "  rollout deploy emphysema --manifest biomarker.yaml --version 1.4.2\n"
        "  rollout deploy emphysema --manifest biomarker.yaml --image reg/biomarkers/emphysema:1.4.2 "
        "--digest sha256:... --public-key keys/signing.pub\n"
        "The attestation is checked before anything is written; in cluster mode the jobs' registry pull\n"
        "credentials are published at nomad/jobs/<job id>.\n" + EXIT))
    _common(p)
    p.add_argument("--manifest", type=Path, required=True, help="the biomarker.yaml")
    p.add_argument("--channel", help="deploy what this channel of the environment holds (image, version, digest)")
    p.add_argument("--version", help="deploy this version (as a channel pins it, else the environment's registry)")
    p.add_argument("--image", help="REGISTRY/IMAGE:VERSION (not needed with --channel/--version; must agree)")
    p.add_argument("--digest", help="sha256:... the image is pinned by (not needed with --channel/--version)")
    p.add_argument("--variant", help="variant to roll out (default: the first)")
    p.add_argument("--public-key", type=Path, help="CI signing public key to verify the attestation")
    p.add_argument("--override-freeze", action="store_true", help="break-glass past a freeze (audited)")
    p.add_argument("--allow-unscanned", action="store_true",
                   help="deploy although the image's vulnerabilities were not (freshly) scanned (audited)")
    p.add_argument("--reason", help="why (required with --override-freeze and --allow-unscanned)")
    for name, fn, text in (("status", _status, "show steps, weight, conditions"),
                           ("watch", _watch, "show a rollout's progress as it happens (blocking queries); acts on "
                                             "nothing"),
                           ("history", _history, "who did what, when and why")):
        note = WATCH_NOTE if name == "watch" else ""
        p = clikit.add_command(sub, name, fn, help=text,
                               epilog=f"example:\n  rollout {name} emphysema --json\n{note}{EXIT}")
        _common(p)
        if name == "watch":
            p.add_argument("--wait", type=bounded_float(0, 3600), default=30.0,
                           help="longest blocking query in seconds")
            p.add_argument("--public-key", type=Path, help=PUBLIC_KEY_HELP)
        if name == "history":
            p.add_argument("--all", action="store_true", help="every environment (and recalls), not only --env")
            audit_cli.add_filters(p)
    for what in ("promote", "pause", "resume", "abort", "rollback"):
        p = clikit.add_command(sub, what, _request(what), help=f"{what} the rollout (rollback is always allowed)",
                               epilog=f"example:\n  rollout {what} emphysema --reason 'why'\n{EXIT}")
        _common(p)
        p.add_argument("--reason", help="why (recorded in the history)")
        p.add_argument("--public-key", type=Path, help=PUBLIC_KEY_HELP)
    p = clikit.add_command(sub, "freeze", _freeze, help="freeze a biomarker (ad-hoc or a recurring window)", epilog=(
        "examples:\n  rollout freeze emphysema --reason 'trial NCT-1' --owner qa@example.org"
        " --pin 1.4.2 --cohort nct-1\n"
        "  rollout freeze emphysema --reason 'weekend' --owner rm --cron '0 18 * * 5' --duration 3840 "
        "--tz Europe/Amsterdam"))
    _common(p)
    p.add_argument("--reason", required=True)
    p.add_argument("--owner", required=True)
    p.add_argument("--pin", help="version resolution sticks to")
    p.add_argument("--cohort", help="trial cohort: pins only that cohort, does not block rollouts")
    p.add_argument("--hours", type=float, help="expires after this many hours")
    p.add_argument("--cron", help="recurring window start (5-field cron)")
    p.add_argument("--duration", type=float, help="recurring window length in minutes")
    p.add_argument("--tz", default="UTC", help="IANA time zone of --cron")
    p = clikit.add_command(sub, "unfreeze", _unfreeze, help="lift a freeze by id",
                           epilog="example:\n  rollout unfreeze emphysema 3f2a9c1b0d4e --reason done")
    _common(p, json_flag=False)
    p.add_argument("id")
    p.add_argument("--reason")
