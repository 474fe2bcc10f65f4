"""A loopback fake of the GitHub API (REST + GraphQL) answering with the documented shapes, headers and faults."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "ghp_fake_token_for_tests_0123456789"
NOT_FOUND = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}
ORG_ID = 9


class FakeClock:
    """Time that only moves when someone sleeps: the scanner's waits are instant and observable."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """Answer `reply` instead of the real thing to requests whose path contains `path`, `times` times."""

    method: str
    path: str
    reply: Reply
    times: int = 1
    skip: int = 0  # let this many matching requests through first (a fault mid-scan)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 that hands every request to `route` and logs it."""

    def __init__(self, route: Callable[[str, str, dict[str, str], bytes], Reply]) -> None:
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One buffered write per answer and no Nagle: otherwise delayed ACKs cost 40 ms a request.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner._lock:
                    owner.log.append((self.command, self.path))
                    reply = route(self.command, self.path, headers, body)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def count(self, method: str | None = None, contains: str = "") -> int:
        with self._lock:
            return sum(1 for m, p in self.log if (method is None or m == method) and contains in p)

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def take_fault(faults: list[Fault], method: str, path: str) -> Reply | None:
    """The reply of the first armed fault matching this request, if any."""
    for fault in faults:
        if fault.times > 0 and fault.method == method and fault.path in path:
            if fault.skip > 0:
                fault.skip -= 1
                continue
            fault.times -= 1
            return fault.reply
    return None


@dataclass
class FakeRepo:
    name: str
    default_branch: str = "main"
    archived: bool = False
    disabled: bool = False
    topics: tuple[str, ...] = ()
    files: dict[str, bytes] = field(default_factory=dict)
    pushed_at: str = "2024-01-26T19:06:43Z"


@dataclass
class Limit:
    limit: int = 5000
    remaining: int = 5000
    reset_in: float = 3600.0
    reset_at: float = 0.0


class FakeGitHub:
    """State of one organisation plus rate limits; faults are injected per path."""

    def __init__(self, org: str = "acme", *, clock: FakeClock | None = None) -> None:
        self.org = org
        self.clock = clock or FakeClock()
        self.repos: dict[str, FakeRepo] = {}
        self.faults: list[Fault] = []
        self.limits = {"core": Limit(), "graphql": Limit()}
        for limit in self.limits.values():
            limit.reset_at = self.clock.now() + limit.reset_in
        self.charged = {"core": 0, "graphql": 0}
        self.http = LoopbackServer(self._route)
        self.url = self.http.url

    # ---- test controls -------------------------------------------------
    def add_repo(self, name: str, manifest: bytes | None = None, **kwargs: Any) -> FakeRepo:
        repo = FakeRepo(name, **kwargs)
        if manifest is not None:
            repo.files["biomarker.yaml"] = manifest
        self.repos[name] = repo
        return repo

    def fail(self, method: str, path: str, status: int, *, times: int = 1, skip: int = 0,
             headers: dict[str, str] | None = None, body: Any = None) -> None:
        payload = json.dumps(body if body is not None else {"message": "Server Error"}).encode()
        self.faults.append(Fault(method, path, Reply(status, payload, headers or {}), times, skip))

    def exhaust(self, resource: str, reset_in: float) -> None:
        """Spend the primary limit of `resource`; it comes back `reset_in` seconds later (fake clock)."""
        limit = self.limits[resource]
        limit.remaining, limit.reset_at = 0, self.clock.now() + reset_in

    def requests(self, method: str | None = None, contains: str = "") -> int:
        return self.http.count(method, contains)

    def stop(self) -> None:
        self.http.stop()

    # ---- HTTP ----------------------------------------------------------
    def _route(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        parsed = urllib.parse.urlsplit(raw_path)
        path, query = parsed.path, dict(urllib.parse.parse_qsl(parsed.query))
        fault = take_fault(self.faults, method, raw_path)
        if fault is not None:
            return fault
        if headers.get("authorization") != f"token {TOKEN}":
            return _json(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
        resource = "graphql" if path == "/graphql" else "core"
        limited = self._limited(resource)
        if limited is not None:
            return limited
        if method == "POST" and path == "/graphql":
            return self._graphql(json.loads(body or b"{}"))
        if method == "GET":
            return self._rest(path, query, headers)
        return _json(404, NOT_FOUND)

    def _limited(self, resource: str) -> Reply | None:
        limit = self.limits[resource]
        if self.clock.now() >= limit.reset_at:
            limit.remaining, limit.reset_at = limit.limit, self.clock.now() + limit.reset_in
        if limit.remaining > 0:
            return None
        reply = _json(403, {"message": "API rate limit exceeded for user ID 1.",
                            "documentation_url": "https://docs.github.com/rest/overview/rate-limits"})
        reply.headers.update(self._rate_headers(resource))
        return reply

    def _rate_headers(self, resource: str) -> dict[str, str]:
        limit = self.limits[resource]
        return {"X-RateLimit-Limit": str(limit.limit), "X-RateLimit-Remaining": str(limit.remaining),
                "X-RateLimit-Used": str(limit.limit - limit.remaining),
                "X-RateLimit-Reset": str(int(limit.reset_at)), "X-RateLimit-Resource": resource}

    def _charge(self, resource: str, reply: Reply) -> Reply:
        if reply.status != 304:  # conditional requests answered 304 cost nothing
            self.limits[resource].remaining -= 1
            self.charged[resource] += 1
        reply.headers.update(self._rate_headers(resource))
        return reply

    def _rest(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        parts = path.strip("/").split("/")
        if parts[:1] == ["orgs"] and parts[2:] == ["repos"] and parts[1] == self.org:
            return self._charge("core", self._conditional(self._list_page(1), headers))
        if parts[:2] == ["organizations", str(ORG_ID)] and parts[2:] == ["repos"]:
            return self._charge("core", self._conditional(self._list_page(int(query.get("page", "1"))), headers))
        if len(parts) >= 5 and parts[0] == "repos" and parts[1] == self.org and parts[3] == "contents":
            return self._charge("core", self._conditional(self._content(parts[2], "/".join(parts[4:])), headers))
        return self._charge("core", _json(404, NOT_FOUND))

    def _conditional(self, reply: Reply, headers: dict[str, str]) -> Reply:
        if reply.status != 200:
            return reply
        etag = '"' + hashlib.sha256(reply.body).hexdigest()[:32] + '"'
        if headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        reply.headers["ETag"] = etag
        return reply

    def _sorted(self) -> list[FakeRepo]:
        return [self.repos[k] for k in sorted(self.repos)]

    def _list_page(self, page: int) -> Reply:
        repos = self._sorted()
        chunk = repos[(page - 1) * 100 : page * 100]
        reply = _json(200, [self._rest_item(r) for r in chunk])
        last = max(1, -(-len(repos) // 100))
        if page < last:
            base = f"{self.url}/organizations/{ORG_ID}/repos?per_page=100&type=all"
            reply.headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return reply

    def _rest_item(self, repo: FakeRepo) -> dict[str, Any]:
        full = f"{self.org}/{repo.name}"
        return {"id": abs(hash(full)) % 10**8, "name": repo.name, "full_name": full, "owner": {"login": self.org},
                "private": True, "html_url": f"https://github.com/{full}", "url": f"{self.url}/repos/{full}",
                "clone_url": f"https://github.com/{full}.git", "default_branch": repo.default_branch,
                "archived": repo.archived, "disabled": repo.disabled, "topics": list(repo.topics),
                "fork": False, "visibility": "private", "pushed_at": repo.pushed_at}

    def _content(self, name: str, file_path: str) -> Reply:
        repo = self.repos.get(name)
        if repo is None or file_path not in repo.files:
            return _json(404, NOT_FOUND)
        data = repo.files[file_path]
        return _json(200, {"type": "file", "encoding": "base64", "size": len(data), "name": file_path,
                           "path": file_path, "content": base64.encodebytes(data).decode(),
                           "sha": hashlib.sha1(data).hexdigest()})

    def _graphql(self, payload: dict[str, Any]) -> Reply:
        query, variables = str(payload.get("query", "")), payload.get("variables") or {}
        rate = {"cost": 1, "remaining": self.limits["graphql"].remaining - 1, "resetAt": "2030-01-01T00:00:00Z"}
        if "organization(" in query:
            connection = self._org_connection(variables)
            data: dict[str, Any] = {"organization": {"repositories": connection}, "rateLimit": rate}
            if variables.get("org") != self.org:
                return self._charge("graphql", _json(200, {"data": {"organization": None, "rateLimit": rate},
                    "errors": [{"type": "NOT_FOUND", "path": ["organization"],
                                "message": "Could not resolve to an Organization."}]}))
        else:
            repo = self.repos.get(str(variables.get("name"))) if variables.get("owner") == self.org else None
            data = {"repository": self._node(repo) if repo else None, "rateLimit": rate}
            if repo is None:
                return self._charge("graphql", _json(200, {"data": data, "errors": [
                    {"type": "NOT_FOUND", "path": ["repository"], "message": "Could not resolve to a Repository."}]}))
        return self._charge("graphql", _json(200, {"data": data}))

    def _org_connection(self, variables: dict[str, Any]) -> dict[str, Any]:
        first = min(int(variables.get("first", 100)), 100)
        after = variables.get("after")
        start = int(base64.b64decode(after).decode()) if after else 0
        repos = self._sorted()
        chunk = repos[start : start + first]
        end = start + len(chunk)
        cursor = base64.b64encode(str(end).encode()).decode()
        return {"pageInfo": {"hasNextPage": end < len(repos), "endCursor": cursor},
                "nodes": [self._node(r) for r in chunk]}

    def _node(self, repo: FakeRepo) -> dict[str, Any]:
        manifest = repo.files.get("biomarker.yaml")
        jenkinsfile = repo.files.get("Jenkinsfile")
        return {
            "name": repo.name, "nameWithOwner": f"{self.org}/{repo.name}", "isArchived": repo.archived,
            "isDisabled": repo.disabled, "url": f"https://github.com/{self.org}/{repo.name}",
            "defaultBranchRef": {"name": repo.default_branch},
            "repositoryTopics": {"nodes": [{"topic": {"name": t}} for t in repo.topics]},
            "manifest": None if manifest is None else {
                "text": manifest.decode("utf-8", "replace"), "byteSize": len(manifest), "isBinary": False},
            "jenkinsfile": None if jenkinsfile is None else {"byteSize": len(jenkinsfile)},
        }


def _json(status: int, body: Any) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})


@contextmanager
def running(org: str = "acme", clock: FakeClock | None = None) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(org, clock=clock)
    try:
        yield fake
    finally:
        fake.stop()
