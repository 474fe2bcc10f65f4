"""`delivery env list|show|validate|schema`: the environments releases move between."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from delivery import clikit
from delivery.environments import environments_dir, load_environment, parse_environment, render_schema
from delivery.errors import DeliveryError, ManifestError
from delivery.manifest.source import load_file

SCHEMA_PATH = Path("manifests/environment.schema.json")
EPILOG = """\
examples:
  delivery env list
  delivery env show production --json
  delivery env validate manifests/environments/*.yaml
  delivery env schema --check

Environment files live in manifests/environments/ (or $DELIVERY_ENVIRONMENTS); `local` is the
embedded default (the registry `delivery local up` starts).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `env list|show|validate|schema`."""
    group = sub.add_parser("env", help="list, show and validate deployment environments", epilog=EPILOG,
                           formatter_class=clikit.HelpFormatter)
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    listing = clikit.add_command(inner, "list", _list, help="environment names and registries")
    clikit.add_json_flag(listing)
    show = clikit.add_command(inner, "show", _show, help="one environment, validated")
    show.add_argument("name", metavar="ENV")
    clikit.add_json_flag(show)
    validate = clikit.add_command(inner, "validate", _validate,
                                  help="check environment files; problems as FILE:LINE:COLUMN: field: message")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    schema = clikit.add_command(inner, "schema", _schema, help="print the JSON Schema of environment files")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", type=Path, metavar="FILE", help="write it to FILE")
    mode.add_argument("--check", type=Path, nargs="?", const=SCHEMA_PATH, metavar="FILE",
                      help=f"exit 1 if FILE (default {SCHEMA_PATH}) is not current")


def _list(args: argparse.Namespace) -> int:
    envs = [load_environment(p.stem) for p in sorted(environments_dir().glob("*.yaml"))]
    if args.json:
        clikit.print_json([e.model_dump(mode="json", by_alias=True) for e in envs])
    for env in [] if args.json else envs:
        print(f"{env.name:<12} {env.registry}/{env.repository_prefix}  channels: {', '.join(env.channels)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    env = load_environment(args.name)
    if args.json:
        clikit.print_json(env.model_dump(mode="json", by_alias=True))
    else:
        print(env.model_dump_json(by_alias=True, indent=2))
    return 0


def _validate(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.paths:
        try:
            env = parse_environment(load_file(path))
            print(f"{path}: ok ({env.name})")
        except ManifestError as e:
            bad += 1
            print(e.render(), file=sys.stderr)
    return 1 if bad else 0


def _schema(args: argparse.Namespace) -> int:
    text = render_schema()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
    elif args.check:
        if (args.check.read_text(encoding="utf-8") if args.check.exists() else "") != text:
            raise DeliveryError(f"{args.check} is out of date with the environment model",
                                hint=f"Run `delivery env schema --write {args.check}` and commit the result.")
        print(f"{args.check} is current")
    else:
        sys.stdout.write(text)
    return 0
