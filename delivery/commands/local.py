"""`delivery local up|down|status`: the embedded default's Docker engine and persistent loopback registry."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from delivery import clikit
from delivery.config import local_dir, registry_settings
from delivery.errors import ConfigError, DeliveryError
from delivery.localenv import local_down, local_up


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `local up`, `local down`, `local status`."""
    group = sub.add_parser("local", help="start/stop the embedded default's engine and local registry")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    epilog = ("examples:\n  delivery local up      # prints the registry address; reuses a running one\n"
              "  delivery local status --json\n  delivery local down\n"
              "State: $DELIVERY_HOME/local/registry.json and registry.password (0600).\n")
    for name, handler, text in (("up", _up, "start or reuse dockerd and a persistent registry on loopback"),
                                ("down", _down, "stop what `local up` started"),
                                ("status", _status, "print the local registry's address and whether it answers")):
        parser = clikit.add_command(inner, name, handler, help=text, epilog=epilog)
        clikit.add_json_flag(parser)


def _up(args: argparse.Namespace) -> int:
    env = local_up(local_dir())
    if args.json:
        clikit.print_json(asdict(env))
    else:
        state = "reused" if env.registry_reused else "started"
        print(f"engine   {env.engine_url}{' (started here)' if env.engine_started else ''}")
        print(f"registry {env.registry_host} ({state}, user {env.registry_user}; password in "
              f"{local_dir() / 'registry.password'})")
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = local_down(local_dir())
    if args.json:
        clikit.print_json({"stopped": stopped})
    else:
        print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        settings = registry_settings(None)
    except ConfigError:
        settings = None
    answers = False
    if settings:
        try:
            settings.client().ping()
            answers = True
        except DeliveryError:
            answers = False
    if args.json:
        clikit.print_json({"registry": settings.host if settings else None, "answers": answers})
    else:
        print(f"registry {settings.host}: {'answers' if answers else 'does not answer'}" if settings
              else "no local registry: run `delivery local up`")
    return 0 if answers else 1
