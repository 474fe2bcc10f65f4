"""What every CLI entry point shares: the top-level error handler, JSON output, secret scrubbing."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

from delivery.errors import DeliveryError
from delivery.secrets import scrub

Handler = Callable[[argparse.Namespace], int]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped examples in descriptions and epilogs as written."""


def new_parser(prog: str, description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A parser with the house formatter and a `--version` flag."""
    from delivery import __version__

    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str = "",
    epilog: str = "",
) -> argparse.ArgumentParser:
    """Register one subcommand; `description` defaults to `help`."""
    parser = sub.add_parser(
        name, help=help, description=description or help, epilog=epilog, formatter_class=HelpFormatter
    )
    parser.set_defaults(handler=handler)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The `--json` flag every data-printing command has."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def dispatch(prog: str, description: str, epilog: str, commands: Iterable[ModuleType],
             argv: Sequence[str] | None) -> int:
    """A CLI's whole `main`: one parser, every command module's `register(sub)`, the one error handler."""
    from delivery.compose import apply_config_file

    try:
        apply_config_file()  # $DELIVERY_CONFIG fills unset variables before any flag default is read
    except DeliveryError as e:
        print(f"error: {scrub(e.render())}", file=sys.stderr)
        return e.exit_code
    parser = new_parser(prog, description, epilog)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in commands:
        command.register(sub)
    return run(parser, argv)


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, dispatch, and turn every DeliveryError into a message and an exit code."""
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except DeliveryError as e:
        print(f"error: {scrub(e.render())}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was left half-written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) left early: not a failure, but stdout must not be flushed again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def print_json(data: Any) -> None:
    """Write `data` as indented JSON to stdout, secrets scrubbed."""
    print(scrub(json.dumps(data, indent=2, sort_keys=True, default=str)))
