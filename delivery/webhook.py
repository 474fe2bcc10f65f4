"""GitHub webhooks: verify, de-duplicate, and rescan + sync only the repository an event names."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from delivery.errors import DeliveryError
from delivery.secrets import Secret, scrub

MAX_BODY = 1024 * 1024
REMEMBERED_DELIVERIES = 10_000
REPOSITORY_ACTIONS = frozenset({"created", "renamed", "archived", "unarchived", "deleted", "transferred", "publicized",
                                "privatized", "edited"})
SyncOne = Callable[[str], int]


@dataclass(frozen=True)
class Outcome:
    """The HTTP answer to one delivery."""

    status: int
    message: str


def signature_ok(secret: Secret, body: bytes, header: str | None) -> bool:
    """`X-Hub-Signature-256` matches the HMAC-SHA256 of the raw body (compared in constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.encode("utf-8", "replace"))


class WebhookHandler:
    """Turns one delivery (headers + raw body) into at most a few single-repository syncs."""

    def __init__(self, secret: Secret, sync_one: SyncOne, *, max_body: int = MAX_BODY) -> None:
        self.secret, self.sync_one, self.max_body = secret, sync_one, max_body
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()  # one sync at a time: deliveries for one repo must not race

    def handle(self, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Verify, parse and act; never raises."""
        headers = {k.lower(): v for k, v in headers.items()}
        if len(body) > self.max_body:
            return Outcome(400, f"body larger than {self.max_body} bytes")
        if not signature_ok(self.secret, body, headers.get("x-hub-signature-256")):
            return Outcome(401, "bad or missing X-Hub-Signature-256")
        delivery = headers.get("x-github-delivery", "")
        with self._lock:
            if delivery and delivery in self._seen:
                return Outcome(200, f"delivery {delivery} already handled")
            outcome = self._act(headers.get("x-github-event", ""), headers.get("content-type", ""), body)
            if outcome.status < 300 and delivery:
                self._remember(delivery)
            return outcome

    def _act(self, event: str, content_type: str, body: bytes) -> Outcome:
        try:
            payload = _payload(content_type, body)
            names = affected_repositories(event, payload)
        except (ValueError, KeyError, TypeError, AttributeError):
            return Outcome(400, "malformed payload")
        if names is None:
            return Outcome(202, f"event {event or '?'} ignored")
        try:
            written = sum(self.sync_one(name) for name in names)
        except DeliveryError as e:
            return Outcome(502, scrub(e.message))
        return Outcome(200, f"synced {', '.join(names)} ({written} job change(s))")

    def _remember(self, delivery: str) -> None:
        self._seen[delivery] = None
        while len(self._seen) > REMEMBERED_DELIVERIES:
            self._seen.popitem(last=False)


def affected_repositories(event: str, payload: Any) -> tuple[str, ...] | None:
    """The repository names an event asks us to rescan, or None when it does not concern pipelines."""
    if event == "ping":
        return ()
    name = str(payload["repository"]["name"])
    if event == "repository" and payload.get("action") in REPOSITORY_ACTIONS:
        old = ((payload.get("changes") or {}).get("repository") or {}).get("name") or {}
        return (str(old["from"]), name) if payload["action"] == "renamed" and "from" in old else (name,)
    if event == "push" or (event == "create" and payload.get("ref_type") == "tag"):
        return (name,)
    return None


def _payload(content_type: str, body: bytes) -> Any:
    text = body.decode("utf-8")
    if content_type.startswith("application/x-www-form-urlencoded"):
        text = urllib.parse.parse_qs(text)["payload"][0]
    payload = json.loads(text)
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def serve(handler: WebhookHandler, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) that answers POSTs with `handler`."""

    class Http(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._answer(Outcome(400, "Content-Length required"))
            if length < 0 or length > handler.max_body:
                self.close_connection = True  # do not read a body we refuse
                return self._answer(Outcome(400, f"body larger than {handler.max_body} bytes"))
            outcome = handler.handle(dict(self.headers.items()), self.rfile.read(length))
            return self._answer(outcome)

        def _answer(self, outcome: Outcome) -> None:
            data = (outcome.message + "\n").encode()
            self.send_response(outcome.status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(scrub(f"webhook: {self.address_string()} {format % args}"), file=sys.stderr)

    return ThreadingHTTPServer((host, port), Http)
