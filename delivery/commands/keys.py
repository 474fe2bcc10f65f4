"""`delivery keys generate`: the ed25519 key pair that signs provenance."""

from __future__ import annotations

import argparse
from pathlib import Path

from delivery import clikit
from delivery.paths import state_home
from delivery.provenance import generate_keys, key_id, load_public_key


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys generate`."""
    group = sub.add_parser("keys", help="signing keys for provenance attestations")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    generate = clikit.add_command(
        inner, "generate", _generate,
        help="write signing.key (0600, PEM ed25519) and signing.pub into a folder",
        epilog="examples:\n  delivery keys generate --out ~/.config/delivery-keys\n"
               "  delivery keys generate            # the embedded default: $DELIVERY_HOME/keys/\n",
    )
    generate.add_argument("--out", type=Path, help="folder (default: $DELIVERY_HOME/keys)")
    generate.add_argument("--force", action="store_true", help="replace an existing key pair")
    clikit.add_json_flag(generate)


def _generate(args: argparse.Namespace) -> int:
    private, public = generate_keys(args.out or state_home() / "keys", force=args.force)
    ident = key_id(load_public_key(public))
    if args.json:
        clikit.print_json({"private_key": str(private), "public_key": str(public), "key_id": ident})
    else:
        print(f"wrote {private} (keep it secret) and {public}\nkey id {ident}")
    return 0
