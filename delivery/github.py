"""Thin typed client for the GitHub API (REST + GraphQL) on PyGithub's requester; errors become GitHubError."""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import github
import requests

from delivery.errors import ExternalServiceError
from delivery.scm.etagcache import EtagCache
from delivery.scm.ratelimit import Governor
from delivery.secrets import Secret

PAGE_SIZE = 100
_LINK_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')

_REPO_FIELDS = """
        name nameWithOwner isArchived isDisabled url
        defaultBranchRef { name }
        repositoryTopics(first: 20) { nodes { topic { name } } }
        manifest: object(expression: "HEAD:biomarker.yaml") { ... on Blob { text byteSize isBinary } }
        jenkinsfile: object(expression: "HEAD:Jenkinsfile") { ... on Blob { byteSize } }
"""
ORG_QUERY = """query($org: String!, $first: Int!, $after: String) {
  organization(login: $org) {
    repositories(first: $first, after: $after, orderBy: {field: NAME, direction: ASC}) {
      pageInfo { hasNextPage endCursor }
      nodes {""" + _REPO_FIELDS + """      }
    }
  }
  rateLimit { cost remaining resetAt }
}"""
REPO_QUERY = """query($owner: String!, $name: String!) {
  repository(owner: $owner, name: $name) {""" + _REPO_FIELDS + """  }
  rateLimit { cost remaining resetAt }
}"""


class GitHubError(ExternalServiceError):
    """GitHub refused or failed a request."""

    service = "GitHub"


@dataclass(frozen=True)
class ApiResponse:
    """One HTTP answer: status, lower-cased headers, body text."""

    status: int
    headers: Mapping[str, str]
    body: str

    def json(self) -> Any:
        """The body as JSON; a GitHubError when it is not."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as e:
            raise GitHubError(f"GitHub sent a body that is not JSON (status {self.status})", status=self.status) from e


@dataclass(frozen=True)
class RemoteRepo:
    """A repository as GitHub lists it; `manifest` is filled only by GraphQL (None when absent)."""

    name: str
    full_name: str
    default_branch: str
    clone_url: str
    archived: bool
    disabled: bool
    topics: tuple[str, ...]
    manifest: bytes | None = None
    has_jenkinsfile: bool = False
    pushed_at: str = ""


@dataclass(frozen=True)
class RepoPage:
    """One GraphQL page of an organisation's repositories."""

    repos: tuple[RemoteRepo, ...]
    end_cursor: str | None
    has_next: bool


class GitHubClient:
    """The GitHub calls the scanner needs; counts requests and rate-limit cost."""

    def __init__(
        self, base_url: str, token: Secret | None, governor: Governor, *,
        cache: EtagCache | None = None, timeout: int = 15,
    ) -> None:
        auth = github.Auth.Token(token.reveal()) if token is not None else None
        # No PyGithub sleeps or retries: the governor owns waiting, so tests and rate budgets stay exact.
        self._gh = github.Github(
            auth=auth, base_url=base_url.rstrip("/"), timeout=timeout, per_page=PAGE_SIZE, retry=None,
            seconds_between_requests=None, seconds_between_writes=None, lazy=True,
        )
        self._requester = self._gh.requester
        self.governor, self.cache = governor, cache or EtagCache(None)
        self.requests = 0
        self.cost = 0
        self.not_modified = 0

    def org_page(self, org: str, after: str | None) -> RepoPage:
        """One page of `org`'s repositories with both files, via GraphQL.

        Raises:
            GitHubError: the organisation is unknown, or GitHub failed or refused.
            RateLimitExceeded: the limit is spent for longer than the governor may wait.
        """
        data = self._graphql(ORG_QUERY, {"org": org, "first": PAGE_SIZE, "after": after})
        if not data.get("organization"):
            raise GitHubError(f"GitHub organisation {org} was not found", status=404,
                              hint="Check --org and that the token may read it.")
        try:
            conn = data["organization"]["repositories"]
            info = conn.get("pageInfo") or {}
            repos = tuple(_node_repo(n) for n in conn.get("nodes") or [] if n)
        except (KeyError, TypeError, AttributeError) as e:
            raise GitHubError("GitHub sent a GraphQL answer of an unexpected shape") from e
        return RepoPage(repos, info.get("endCursor"), bool(info.get("hasNextPage")))

    def repo(self, org: str, name: str) -> RemoteRepo | None:
        """One repository with both files (GraphQL), or None when it does not exist.

        Raises:
            GitHubError: GitHub failed or refused.
            RateLimitExceeded: the limit is spent for longer than the governor may wait.
        """
        data = self._graphql(REPO_QUERY, {"owner": org, "name": name}, missing_ok=True)
        node = data.get("repository")
        try:
            return _node_repo(node) if node else None
        except (KeyError, TypeError, AttributeError) as e:
            raise GitHubError("GitHub sent a GraphQL answer of an unexpected shape") from e

    def org_repos(self, org: str) -> Iterator[RemoteRepo]:
        """Every repository of `org` via REST, page by page along the Link headers (conditional GETs).

        Raises:
            GitHubError: the organisation is unknown, or GitHub failed or refused.
            RateLimitExceeded: the limit is spent for longer than the governor may wait.
        """
        url: str | None = f"/orgs/{org}/repos?per_page={PAGE_SIZE}&type=all"
        while url is not None:
            response, body = self._conditional_get(url)
            if response.status == 404:
                raise GitHubError(f"GitHub organisation {org} was not found", status=404,
                                  hint="Check --org and that the token may read it.")
            self._check(response, url)
            try:
                repos = [_rest_repo(item) for item in json.loads(body)]
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise GitHubError(f"GitHub sent a repository list of an unexpected shape ({url})") from e
            yield from repos
            match = _LINK_NEXT.search(response.headers.get("link", ""))
            url = match.group(1) if match else None

    def file(self, full_name: str, path: str, ref: str, *, pushed_at: str = "") -> bytes | None:
        """The bytes of `path` at `ref`, or None when absent (conditional GET, cached on disk).

        A 404 carries no ETag, so absence is cached against the repository's `pushed_at`: no push, no request.

        Raises:
            GitHubError: GitHub failed or refused, or sent a file it did not encode.
            RateLimitExceeded: the limit is spent for longer than the governor may wait.
        """
        url = f"/repos/{full_name}/contents/{path}?ref={urllib.parse.quote(ref, safe='')}"
        absent = f"absent@{pushed_at}"
        cached = self.cache.get(url)
        if pushed_at and cached and cached[0] == absent:
            return None
        response, body = self._conditional_get(url)
        if response.status == 404:
            if pushed_at:
                self.cache.put(url, absent, "")
            return None
        self._check(response, url)
        try:
            data = json.loads(body)
        except ValueError as e:
            raise GitHubError(f"GitHub sent {full_name}/{path} as something that is not JSON") from e
        return _decode_content(data, full_name, path)

    def set_commit_status(self, full_name: str, commit: str, context: str, state: str, description: str,
                          target_url: str | None) -> None:
        """Create a commit status (`POST /repos/{full_name}/statuses/{commit}`); the newest per context wins.

        Raises:
            GitHubError: GitHub refused (401/403, 404 unknown repository or commit, 422 bad state) or failed.
            RateLimitExceeded: the limit is spent for longer than the governor may wait.
        """
        body: dict[str, str] = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            body["target_url"] = target_url
        url = f"/repos/{full_name}/statuses/{commit}"
        response = self.governor.run("core", lambda: self._send("POST", url, body=body))
        self._check(response, f"the {context} status of {full_name}@{commit[:12]}")

    def close(self) -> None:
        """Close the connection pool and persist the ETag cache."""
        self.cache.save()
        self._gh.close()

    def _graphql(self, query: str, variables: dict[str, Any], *, missing_ok: bool = False) -> dict[str, Any]:
        response = self.governor.run("graphql", lambda: self._send("POST", self._requester.graphql_url,
                                                                   body={"query": query, "variables": variables}))
        self._check(response, "graphql")
        payload = response.json() or {}
        errors = [e for e in payload.get("errors") or [] if not (missing_ok and e.get("type") == "NOT_FOUND")]
        if errors:
            raise GitHubError(f"GitHub GraphQL error: {errors[0].get('message', 'unknown')}", status=response.status)
        data = payload.get("data") or {}
        self.cost += int((data.get("rateLimit") or {}).get("cost", 1))
        return dict(data)

    def _conditional_get(self, url: str) -> tuple[ApiResponse, str]:
        cached = self.cache.get(url)
        cached = cached if cached and not cached[0].startswith("absent@") else None
        headers = {"If-None-Match": cached[0]} if cached else {}
        response = self.governor.run("core", lambda: self._send("GET", url, headers=headers))
        if response.status == 304 and cached:
            self.not_modified += 1  # a 304 costs no rate limit; it carries no Link header either
            return ApiResponse(304, {**response.headers, "link": cached[2]}, cached[1]), cached[1]
        if response.status < 300:
            self.cost += 1
            if "etag" in response.headers:
                self.cache.put(url, response.headers["etag"], response.body, response.headers.get("link", ""))
        return response, response.body

    def _send(self, verb: str, url: str, *, headers: dict[str, str] | None = None,
              body: Any = None) -> ApiResponse:
        self.requests += 1
        try:
            status, out_headers, text = self._requester.requestJson(verb, url, headers=dict(headers or {}), input=body)
        except (requests.RequestException, OSError) as e:
            raise GitHubError(
                f"GitHub did not answer ({type(e).__name__})", hint="Check --github-url and the network."
            ) from e
        if verb == "POST" and status == 200 and _graphql_rate_limited(text):
            status = 403  # GraphQL reports a spent primary limit inside a 200; treat it like REST does
        return ApiResponse(status, {k.lower(): v for k, v in out_headers.items()}, text)

    def _check(self, response: ApiResponse, what: str) -> None:
        if response.status < 300 or response.status == 304:
            return
        hints = {401: "The token is missing, expired or wrong: check --token-env.",
                 403: "The token lacks access (or a rate limit persisted): check its scopes."}
        raise GitHubError(f"GitHub answered {response.status} for {what}", status=response.status,
                          hint=hints.get(response.status, "Try again later; GitHub may be degraded."))


def _graphql_rate_limited(text: str) -> bool:
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("type") == "RATE_LIMITED" for e in errors)


def _node_repo(node: dict[str, Any]) -> RemoteRepo:
    manifest = node.get("manifest") or None
    text = manifest.get("text") if manifest and not manifest.get("isBinary") else None
    branch = (node.get("defaultBranchRef") or {}).get("name") or "main"
    topics = tuple(t["topic"]["name"] for t in (node.get("repositoryTopics") or {}).get("nodes") or [])
    return RemoteRepo(
        node["name"], node["nameWithOwner"], branch, f"{node.get('url', '')}.git", bool(node.get("isArchived")),
        bool(node.get("isDisabled")), topics, text.encode("utf-8") if text is not None else None,
        node.get("jenkinsfile") is not None,
    )


def _rest_repo(item: dict[str, Any]) -> RemoteRepo:
    return RemoteRepo(
        item["name"], item["full_name"], item.get("default_branch") or "main", item.get("clone_url", ""),
        bool(item.get("archived")), bool(item.get("disabled")), tuple(item.get("topics") or ()),
        pushed_at=str(item.get("pushed_at") or ""),
    )


def _decode_content(data: Any, full_name: str, path: str) -> bytes:
    if not isinstance(data, dict) or data.get("encoding") != "base64":
        raise GitHubError(f"{full_name}/{path} is not a file GitHub sent inline (too large or a folder?)")
    try:
        return base64.b64decode(data.get("content", ""))
    except (binascii.Error, ValueError) as e:
        raise GitHubError(f"{full_name}/{path}: GitHub sent content that is not base64") from e
