"""`delivery webhook serve`: rescan and sync one repository per GitHub event."""

from __future__ import annotations

import argparse
import sys

from delivery import clikit
from delivery.argtypes import bounded_int
from delivery.commands.pipelines import add_jenkins_arguments, add_settings_arguments, jenkins_client, settings_of
from delivery.commands.scan import add_org_arguments, spec_from_args
from delivery.pipelines.sync import sync_repository
from delivery.scm import open_backend
from delivery.secrets import from_env
from delivery.webhook import WebhookHandler, serve

EPILOG = """\
examples:
  WEBHOOK_SECRET=... delivery webhook serve --secret-env WEBHOOK_SECRET --org acme \\
      --jenkins-url https://ci.example.com --port 8080

Point the organisation's webhook (content type json, events: repository, push,
create) at http://HOST:PORT/. Bad signatures get 401, oversized or malformed
bodies 400; a replayed delivery id is acknowledged and ignored.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `webhook serve`."""
    group = sub.add_parser("webhook", help="receive GitHub webhooks and sync the job of the repository named")
    inner = group.add_subparsers(title="commands", metavar="COMMAND")
    parser = clikit.add_command(inner, "serve", _serve, help="serve GitHub webhooks until interrupted", epilog=EPILOG)
    parser.add_argument("--secret-env", required=True, metavar="VAR", help="variable holding the webhook secret")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=bounded_int(1, 65535), default=8080, help="port to listen on (default 8080)")
    add_org_arguments(parser)
    add_settings_arguments(parser)
    add_jenkins_arguments(parser)


def _serve(args: argparse.Namespace) -> int:
    secret = from_env(args.secret_env)
    assert secret is not None
    backend = open_backend(spec_from_args(args), progress=_progress)
    client, settings = jenkins_client(args), settings_of(args)
    handler = WebhookHandler(secret, lambda name: sync_repository(backend, client, settings, name, _progress))
    server = serve(handler, args.host, args.port)
    print(f"listening on http://{args.host}:{server.server_address[1]}/", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr)
