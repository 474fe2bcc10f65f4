"""`delivery resolve NAME@SPEC`: a version, range, channel or digest to `REGISTRY/IMAGE:VERSION@sha256:…`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from delivery import clikit
from delivery.errors import UsageError
from delivery.release import connect
from delivery.release.resolve import resolve

EPILOG = """\
examples:
  delivery resolve emphysema@0.1.0                 # exact version (a yanked one resolves, with a warning)
  delivery resolve emphysema@^0                    # highest non-yanked 0.x release
  delivery resolve 'emphysema@>=1.2 <2' --json
  delivery resolve emphysema@stable --env local    # what the channel holds (or an active freeze pins)
  delivery resolve emphysema@sha256:4f…            # the version tag on that digest

Ranges: 1.4.2, ~1.4, ^1, >=1.2 <2, 1.x, *, A || B. Pre-releases only when the range names one
(>=2.0.0-rc.1). Yanked versions never match a range. The answer always carries the digest: pin that.

exit status: 0 resolved, 1 nothing satisfies SPEC, 2 usage error
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `resolve`."""
    parser = clikit.add_command(sub, "resolve", _resolve, epilog=EPILOG,
                                help="resolve NAME@SPEC to REGISTRY/IMAGE:VERSION@sha256:… and say which rule chose it")
    parser.add_argument("pin", metavar="NAME@SPEC", help="e.g. emphysema@^1, emphysema@stable, emphysema@1.4.2")
    connect.add_environment_flag(parser)
    clikit.add_json_flag(parser)


def _resolve(args: argparse.Namespace) -> int:
    name, at, spec = args.pin.partition("@")
    if not at or not name or not spec:
        raise UsageError(f"{args.pin!r} is not NAME@SPEC", hint="e.g. emphysema@^1 or emphysema@stable")
    env = connect.environment(args.env)
    _, target = connect.locations(env, name)
    answer = resolve(name, spec, environment=env.name, registry=target.client, store=connect.release_store(),
                     image_repository=target.repository)
    if args.json:
        clikit.print_json(asdict(answer))
        return 0
    print(answer.reference)
    print(f"  rule: {answer.rule}", file=sys.stderr)
    for warning in answer.warnings:
        print(f"  warning: {warning}", file=sys.stderr)
    return 0
