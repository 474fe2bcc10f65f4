"""`rollout tokens add|list|remove`: API bearer tokens, stored as sha256 hashes with their role."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from rollout.api.auth import ROLES, add_token, default_tokens_path, read_tokens, remove_token


def _path(args: argparse.Namespace) -> Path:
    return Path(args.tokens) if args.tokens else default_tokens_path()


def _add(args: argparse.Namespace) -> int:
    token = add_token(_path(args), args.name, args.role)
    if args.json:
        clikit.print_json({"name": args.name, "role": args.role, "token": token})
    else:
        print(token)
    return 0


def _list(args: argparse.Namespace) -> int:
    entries = [{"name": t.name, "role": t.role} for t in read_tokens(_path(args)).tokens]
    if args.json:
        clikit.print_json(entries)
    for e in [] if args.json else entries:
        print(f"{e['name']}\t{e['role']}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    remove_token(_path(args), args.name)
    print(f"revoked: {args.name}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rollout tokens`."""
    group = sub.add_parser("tokens", help="manage API bearer tokens (stored hashed, with a role)",
                           formatter_class=clikit.HelpFormatter,
                           epilog="examples:\n  rollout tokens add ris-gateway --role execution-client\n"
                                  "  rollout tokens list --json\n  rollout tokens remove ris-gateway")
    actions = group.add_subparsers(title="commands", metavar="COMMAND")
    add = clikit.add_command(actions, "add", _add, help="create a token; it is printed once, only its hash is kept",
                             epilog=f"roles: {', '.join(ROLES)}\nexample:\n  TOKEN=$(rollout tokens add rm-alice "
                                    "--role release-manager)")
    add.add_argument("name", help="who holds the token (appears in logs and the ledger as api:NAME)")
    add.add_argument("--role", required=True, choices=ROLES)
    clikit.add_json_flag(add)
    listing = clikit.add_command(actions, "list", _list, help="names and roles (never tokens or hashes)",
                                 epilog="example:\n  rollout tokens list --json")
    clikit.add_json_flag(listing)
    remove = clikit.add_command(actions, "remove", _remove, help="revoke a token by name",
                                epilog="example:\n  rollout tokens remove ris-gateway")
    remove.add_argument("name")
    for parser in (add, listing, remove):
        parser.add_argument("--tokens", type=Path, help="token file (default $DELIVERY_API_TOKENS or "
                                                        "$DELIVERY_HOME/api-tokens.yaml)")
