"""A loopback registry fake for what Debian's 2.8 cannot show: bearer-token auth and paginated tag lists.

It serves `/token` (basic auth -> a token scoped to one repository) and a tiny `/v2/` API that demands
`Bearer` tokens, pages `tags/list` with `n`/`last` and a `Link` header, and answers errors with the
distribution `{"errors": [...]}` body.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlparse


@dataclass
class FakeRegistry:
    """State and request log of the fake."""

    username: str = "robot"
    password: str = "token-pass-1234"
    page_size: int = 100
    tags: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (status, code)
    raw: dict[str, bytes] = field(default_factory=dict)  # path -> a 200 text/html body (a proxy's login page)
    log: list[str] = field(default_factory=list)
    url: str = ""

    def token_requests(self) -> list[str]:
        return [line for line in self.log if line.startswith("GET /token")]


def _handler(fake: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            fake.log.append(f"GET {self.path}")
            parsed = urlparse(self.path)
            if parsed.path == "/token":
                if "/token" in fake.raw:
                    return self._html(fake.raw["/token"])
                return self._token(parse_qs(parsed.query))
            repository = parsed.path.removeprefix("/v2/").rsplit("/", 2)[0] if parsed.path != "/v2/" else ""
            if self.headers.get("Authorization") != f"Bearer tok:{repository}":
                return self._challenge(repository)
            if parsed.path in fake.errors:
                status, code = fake.errors[parsed.path]
                return self._json(status, {"errors": [{"code": code, "message": code.lower(), "detail": None}]})
            if parsed.path in fake.raw:
                return self._html(fake.raw[parsed.path])
            if parsed.path.endswith("/tags/list"):
                return self._tags(repository, parse_qs(parsed.query))
            return self._json(200, {})

        def _token(self, query: dict[str, list[str]]) -> None:
            expected = base64.b64encode(f"{fake.username}:{fake.password}".encode()).decode()
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self._json(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            scope = query.get("scope", ["registry:catalog:*"])[0]
            repository = scope.split(":")[1] if scope.startswith("repository:") else ""
            return self._json(200, {"token": f"tok:{repository}", "expires_in": 300})

        def _challenge(self, repository: str) -> None:
            scope = f',scope="repository:{repository}:pull,push"' if repository else ""
            self.send_response(401)
            self.send_header("Www-Authenticate", f'Bearer realm="{fake.url}/token",service="fake"{scope}')
            self.send_header("Content-Type", "application/json")
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}'
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _tags(self, repository: str, query: dict[str, list[str]]) -> None:
            every = sorted(fake.tags.get(repository, []))
            if repository not in fake.tags:
                return self._json(404, {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known"}]})
            n = min(int(query.get("n", [str(fake.page_size)])[0]), fake.page_size)
            last = query.get("last", [""])[0]
            page = [t for t in every if t > last][:n]
            more = page and page[-1] != every[-1]
            link = f'</v2/{repository}/tags/list?n={n}&last={quote(page[-1])}>; rel="next"' if more else None
            return self._json(200, {"name": repository, "tags": page}, link)

        def _html(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, doc: object, link: str | None = None) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if link:
                self.send_header("Link", link)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def fake_registry(fake: FakeRegistry | None = None) -> Iterator[FakeRegistry]:
    """Run the fake on a free loopback port for the duration of the block."""
    state = fake or FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
