"""The webhook HTTP endpoint: POST /hooks/<rule>; every refusal is an HTTP answer, never a crashed server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rollout.executions.triggers.webhook import WebhookRejected

log = logging.getLogger(__name__)
Handle = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, Any]]]
PREFIX = "/hooks/"
READ_TIMEOUT_S = 10


def serve(host: str, port: int, handle: Handle, body_limit: Callable[[str], int | None]) -> ThreadingHTTPServer:
    """Start the endpoint on a daemon thread; `handle(rule, headers, body)` answers verified-size requests."""

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S  # a client that stalls mid-body is dropped, not waited on forever

        def do_POST(self) -> None:
            try:
                rule = self.path.removeprefix(PREFIX) if self.path.startswith(PREFIX) else ""
                limit = body_limit(rule)
                if limit is None:
                    raise WebhookRejected(404, f"no webhook rule at {self.path}")
                status, doc = handle(rule, {k.lower(): v for k, v in self.headers.items()}, self._body(limit))
            except WebhookRejected as e:
                status, doc = e.status, {"error": e.message}
            self._answer(status, doc)

        def do_GET(self) -> None:
            self._answer(405, {"error": "POST a signed JSON body to /hooks/<rule>"})

        def _body(self, limit: int) -> bytes:
            length = self.headers.get("Content-Length", "")
            if not (length.isascii() and length.isdigit()):  # str.isdigit alone accepts '²', which int() refuses
                raise WebhookRejected(411, "Content-Length is required (a decimal byte count)")
            if len(length) > 18 or int(length) > limit:  # int() refuses over 4300 digits
                raise WebhookRejected(413, f"body is {length} bytes; the limit is {limit}")
            return self.rfile.read(int(length))

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            payload = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("webhook %s: " + format, self.client_address[0], *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="triggers-webhook", daemon=True).start()
    return server
