"""ASGI middleware of the front door: request-size limit, security headers and structured JSON access logs."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

access = logging.getLogger("rollout.api.access")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SAFE_PARAM = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# On every response, errors and 413s included: no MIME sniffing of JSON into HTML, no URL (execution ids, the
# status page's paths) leaked to another site through the Referer header.
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in SECURITY_HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, headed)


class BodyLimit:
    """413 for bodies over `limit` bytes: at once from Content-Length, else while a chunked body streams in."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _problem(send, 413, f"request body over {self.limit} bytes")
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _problem(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One JSON line per request: method, route template, path, status, timing, caller's token name and role.

    Never logged: the raw path (a client could type anything into it), headers (so no Authorization or cookie),
    query strings, bodies (so no input reference, study path or patient data), response bodies. Path parameters
    (execution id, biomarker name, action) are logged only when they look like identifiers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        sent: dict[str, Any] = {"status": 500, "bytes": 0}

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            access.info(json.dumps(_entry(scope, sent, request_id, started), sort_keys=True))


def _entry(scope: Scope, sent: dict[str, Any], request_id: str, started: float) -> dict[str, Any]:
    route = scope.get("route")
    principal = (scope.get("state") or {}).get("principal")
    client = scope.get("client")
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "method": scope["method"],
            "route": getattr(route, "path", "unmatched"), "params": _params(scope), "status": sent["status"],
            "bytes": sent["bytes"], "ms": round((time.perf_counter() - started) * 1000, 2),
            "request_id": request_id, "client": client[0] if client else None,
            "caller": getattr(principal, "name", None), "role": getattr(principal, "role", None)}


def _params(scope: Scope) -> dict[str, str]:
    params = scope.get("path_params") or {}
    return {k: str(v) for k, v in params.items() if SAFE_PARAM.match(str(v))}
