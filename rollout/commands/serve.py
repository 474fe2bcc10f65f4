"""`rollout serve`: the REST API for execution clients and the status page for release managers."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from pathlib import Path

from delivery import clikit
from delivery.argtypes import bounded_int
from delivery.config import add_registry_flag
from delivery.errors import DeliveryError
from rollout.commands.controller import add_service_flags, build_service, stop_on_signals
from rollout.controller.service import ControllerService, json_log

EPILOG = """\
examples:
  rollout tokens add ris-gateway --role execution-client     # prints the token once
  rollout serve --port 8080 --input-root /mnt/studies --env local
  rollout serve --workers 4 --host 0.0.0.0 --backend nomad  # several copies behind a load balancer are fine
  rollout serve --write-openapi manifests/openapi.json       # regenerate the committed contract and exit
  rollout serve --controller                                 # also advance every rollout (leader-elected)

Studies are referenced relative to --input-root; results go to --output-root/<execution id>.
The status page is at http://HOST:PORT/ (sign in with a release-manager, developer or auditor token).
Access logs are JSON lines on stderr. Stop the server with Ctrl-C (or kill its process id).
"""


def _serve(args: argparse.Namespace) -> int:
    if args.write_openapi:
        from rollout.api.asgi import render_openapi

        args.write_openapi.write_text(render_openapi(), encoding="utf-8")
        print(f"wrote {args.write_openapi}")
        return 0
    _export(args)
    import uvicorn

    from rollout.api.asgi import app, configure_logging

    configure_logging()
    threading.Thread(target=_resume, name="resume", daemon=True).start()
    controller = _start_controller(args) if args.controller else None
    print(f"serving the API and the status page at http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down: then the controller stops and hands its lock back.
    with stop_on_signals(controller[0]) if controller else contextlib.nullcontext():
        if args.workers > 1:
            uvicorn.run("rollout.api.asgi:app", factory=True, host=args.host, port=args.port, workers=args.workers,
                        access_log=False, log_level=args.log_level, proxy_headers=args.proxy_headers,
                        forwarded_allow_ips=args.forwarded_allow_ips)
        else:
            uvicorn.run(app(), host=args.host, port=args.port, access_log=False, log_level=args.log_level,
                        proxy_headers=args.proxy_headers, forwarded_allow_ips=args.forwarded_allow_ips)
    if controller is not None:
        controller[0].stop(release=True)  # the next replica takes over at once
        controller[1].join(30)
    return 0


def _start_controller(args: argparse.Namespace) -> tuple[ControllerService, threading.Thread]:
    """The controller service in a thread beside the API (`rollout controller` is the same loop on its own)."""
    service = build_service(args, on_progress=json_log(sys.stderr))

    def run() -> None:
        try:
            service.run()
        except DeliveryError as e:  # the API keeps serving; the reason is on stderr
            print(json.dumps({"controller": {"error": e.message, "hint": e.hint}}), file=sys.stderr, flush=True)

    thread = threading.Thread(target=run, name="controller", daemon=True)
    thread.start()
    return service, thread


def _resume() -> None:
    """Collect the runs a previous server left behind (bounded: see `rollout executions resume`); one JSON line
    per execution on stderr."""
    from rollout.api.services import services_from_env
    from rollout.executions.resume import resume

    try:
        for done in resume(services_from_env().submitter):
            print(json.dumps({"resume": done.as_json()}), file=sys.stderr, flush=True)
    except DeliveryError as e:
        print(json.dumps({"resume": {"error": e.message}}), file=sys.stderr, flush=True)


def _export(args: argparse.Namespace) -> None:
    """Worker processes read their configuration from the environment (so every copy is configured alike)."""
    values = {"DELIVERY_API_TOKENS": args.tokens, "DELIVERY_API_INPUT_ROOT": args.input_root,
              "DELIVERY_API_OUTPUT_ROOT": args.output_root, "DELIVERY_API_ENVIRONMENTS": ",".join(args.env),
              "DELIVERY_API_BACKEND": args.backend, "DELIVERY_ORG_DIR": args.org, "DELIVERY_REGISTRY": args.registry}
    for name, value in values.items():
        if value:
            os.environ[name] = str(value)
    from rollout.api.services import services_from_env

    services_from_env()  # fail here, once, with the message, rather than in every worker


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `rollout serve`."""
    p = clikit.add_command(sub, "serve", _serve, help="serve the REST API and the live status page", epilog=EPILOG)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=bounded_int(1, 65535), default=8080, help="port (default 8080)")
    p.add_argument("--workers", type=bounded_int(1, 256), default=1, help="server processes (default 1)")
    p.add_argument("--tokens", type=Path, default=None,
                   help="token file (default $DELIVERY_API_TOKENS or $DELIVERY_HOME/api-tokens.yaml)")
    p.add_argument("--input-root", type=Path, default=None,
                   help="folder every input reference is relative to (default $DELIVERY_HOME/studies)")
    p.add_argument("--output-root", type=Path, default=None,
                   help="folder results are written under (default $DELIVERY_HOME/results)")
    p.add_argument("--env", action="append", default=[],
                   help="environment served (repeatable; the first is the default; default $DELIVERY_ENV or local)")
    p.add_argument("--org", type=Path, default=None, help="folder of biomarker repositories (default biomarkers)")
    p.add_argument("--backend", choices=("docker", "nomad"), default=None,
                   help="where executions run: the local Docker engine (default) or Nomad ($NOMAD_ADDR)")
    add_registry_flag(p)
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's own log level (access logs are always written)")
    p.add_argument("--proxy-headers", action="store_true",
                   help="trust X-Forwarded-For/-Proto from the load balancer (https there makes cookies Secure)")
    p.add_argument("--forwarded-allow-ips", default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                   metavar="ADDRS", help="comma-separated addresses of the load balancers whose X-Forwarded-* "
                                         "headers count (default $FORWARDED_ALLOW_IPS or 127.0.0.1)")
    p.add_argument("--write-openapi", type=Path, metavar="FILE", help="write the OpenAPI document to FILE and exit")
    p.add_argument("--controller", action="store_true",
                   help="also run the controller service that advances rollouts (see `rollout controller --help`)")
    add_service_flags(p)
