"""A loopback webhook receiver that checks `X-Delivery-Signature-256` like a real consumer would."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One POST: its JSON body, headers, and whether the signature verified."""

    body: dict[str, Any]
    headers: dict[str, str]
    signature_ok: bool


@dataclass
class Receiver:
    """What arrived; `fail_next` answers that many requests with 503 first."""

    secret: str
    url: str = ""
    fail_next: int = 0
    attempts: int = 0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[str]:
        """Event names of the verified deliveries, in order."""
        return [r.body["event"] for r in self.received if r.signature_ok]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.attempts += 1
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                expected = "sha256=" + hmac.new(receiver.secret.encode(), raw, hashlib.sha256).hexdigest()
                ok = hmac.compare_digest(expected, self.headers.get("X-Delivery-Signature-256", ""))
                receiver.received.append(Received(json.loads(raw), dict(self.headers.items()), ok))
            self.send_response(204 if ok else 401)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def notify_receiver(secret: str) -> Iterator[Receiver]:
    """A receiver on a free loopback port for the duration of the block."""
    receiver = Receiver(secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/delivery"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
