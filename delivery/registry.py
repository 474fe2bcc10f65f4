"""Thin typed client for the OCI distribution API (Debian's docker-registry 2.8, Harbor, distribution v3)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from delivery.errors import ExternalServiceError
from delivery.secrets import Secret

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES)
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistryError(ExternalServiceError):
    """The registry refused or failed a request; `code` is the first error code of its body."""

    service = "registry"

    def __init__(self, message: str, *, status: int | None = None, code: str = "", hint: str | None = None) -> None:
        super().__init__(message, status=status, hint=hint)
        self.code = code


class NotFound(RegistryError):
    """The manifest, blob, tag or repository does not exist (404)."""


class Unauthorized(RegistryError):
    """Credentials are missing or wrong (401), or not allowed (403)."""


def sha256_digest(data: bytes) -> str:
    """The content digest of `data`, as registries compute it."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as stored: its bytes, media type and digest."""

    raw: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        """The parsed manifest document."""
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed

    @property
    def is_index(self) -> bool:
        """Whether this is a manifest list / OCI index (it references manifests, not blobs)."""
        return self.media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in self.json()

    def blob_digests(self) -> list[str]:
        """Config and layer digests referenced by an image manifest (empty for an index)."""
        doc = self.json()
        config = [doc["config"]["digest"]] if "config" in doc else []
        return config + [layer["digest"] for layer in doc.get("layers", [])]

    def child_digests(self) -> list[str]:
        """Digests of the platform manifests an index or manifest list references (empty for an image)."""
        return [str(child["digest"]) for child in self.json().get("manifests", [])]


@dataclass(frozen=True)
class RequestStats:
    """What a client sent: request count and body bytes, for benchmarks and tests."""

    requests: int
    bytes_sent: int


class RegistryClient:
    """Manifests, blobs and tags of one registry, with basic or bearer-token auth."""

    def __init__(self, url: str, username: str | None = None, password: Secret | None = None,
                 *, timeout: float = 60.0, verify: bool | str = True) -> None:
        self.url = url.rstrip("/") if "://" in url else f"https://{url.rstrip('/')}"
        self.host = self.url.split("://", 1)[1]
        self._session = requests.Session()
        self._session.verify = verify
        self._basic = (username, password) if username and password else None
        self._tokens: dict[str, str] = {}  # bearer tokens by repository (a token's scope is one repository)
        self._timeout = timeout
        self._requests = 0
        self._bytes_sent = 0

    @property
    def stats(self) -> RequestStats:
        return RequestStats(self._requests, self._bytes_sent)

    def ping(self) -> None:
        """Check reachability and credentials.

        Raises:
            Unauthorized: credentials missing or wrong.
            RegistryError: unreachable or failing.
        """
        self._request("GET", "/v2/")

    def get_manifest(self, name: str, reference: str) -> Manifest:
        """The manifest bytes of `name` at a tag or digest, digest-verified.

        Raises:
            NotFound: no such manifest.
        """
        response = self._request("GET", f"/v2/{_name(name)}/manifests/{_ref(reference)}", headers={"Accept": ACCEPT})
        digest = sha256_digest(response.content)
        claimed = response.headers.get("Docker-Content-Digest", digest)
        if claimed != digest or (DIGEST.match(reference) and reference != digest):
            raise RegistryError(f"{name}@{reference}: the registry sent bytes whose digest is {digest}, not {claimed}")
        media_type = response.headers.get("Content-Type", "").split(";")[0] or _media_type(response.content)
        return Manifest(response.content, media_type, digest)

    def head_manifest(self, name: str, reference: str) -> str | None:
        """The digest a tag or digest resolves to, or None if it does not exist."""
        try:
            path = f"/v2/{_name(name)}/manifests/{_ref(reference)}"
            response = self._request("HEAD", path, headers={"Accept": ACCEPT})
        except NotFound:
            return None
        return response.headers.get("Docker-Content-Digest")

    def put_manifest(self, name: str, reference: str, manifest: Manifest) -> str:
        """Store the exact manifest bytes under a tag or digest; returns the digest the registry computed.

        Raises:
            RegistryError: refused (e.g. MANIFEST_BLOB_UNKNOWN) or the digest changed.
        """
        response = self._request("PUT", f"/v2/{_name(name)}/manifests/{_ref(reference)}",
                                 data=manifest.raw, headers={"Content-Type": manifest.media_type})
        digest = response.headers.get("Docker-Content-Digest", manifest.digest)
        if digest != manifest.digest:
            raise RegistryError(f"{name}:{reference}: the registry stored digest {digest}, expected {manifest.digest}")
        return digest

    def delete_manifest(self, name: str, digest: str) -> None:
        """Delete a manifest (and every tag on it) by digest."""
        if not DIGEST.match(digest):
            raise RegistryError(f"delete needs a digest, got {digest!r}")
        self._request("DELETE", f"/v2/{_name(name)}/manifests/{digest}")

    def list_tags(self, name: str) -> list[str]:
        """Every tag of `name`, sorted; follows `Link` pagination when the registry sends it."""
        tags: list[str] = []
        path: str | None = f"/v2/{_name(name)}/tags/list?n=1000"
        while path:
            response = self._request("GET", path)
            tags += _listing(response, "tags")
            path = _next_link(response)
        return sorted(set(tags))

    def catalog(self) -> list[str]:
        """Every repository name in the registry."""
        names: list[str] = []
        path: str | None = "/v2/_catalog?n=1000"
        while path:
            response = self._request("GET", path)
            names += _listing(response, "repositories")
            path = _next_link(response)
        return sorted(names)

    def blob_exists(self, name: str, digest: str) -> bool:
        """Whether the blob is in repository `name`."""
        try:
            self._request("HEAD", f"/v2/{_name(name)}/blobs/{digest}")
        except NotFound:
            return False
        return True

    def get_blob(self, name: str, digest: str, *, max_bytes: int | None = None) -> bytes:
        """The blob's bytes, digest-verified; more than `max_bytes` is refused without reading the rest.

        Raises:
            NotFound: no such blob.
            RegistryError: the bytes are corrupted or larger than `max_bytes`.
        """
        if max_bytes is None:
            data = self._request("GET", f"/v2/{_name(name)}/blobs/{digest}").content
        else:
            data = b""
            for chunk in self.open_blob(name, digest, chunk_size=min(max_bytes + 1, 1 << 20)):
                data += chunk
                if len(data) > max_bytes:
                    raise RegistryError(f"blob {digest} of {name} is larger than the {max_bytes} bytes allowed")
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} of {name} arrived corrupted")
        return data

    def open_blob(self, name: str, digest: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The blob's bytes as a stream of chunks (for copying between registries without holding it).

        Raises:
            NotFound: no such blob.
            RegistryError: the stream ended with bytes of another digest.
        """
        response = self._request("GET", f"/v2/{_name(name)}/blobs/{digest}", stream=True)
        hasher = hashlib.sha256()
        with response:
            for chunk in response.iter_content(chunk_size):
                hasher.update(chunk)
                yield chunk
        if "sha256:" + hasher.hexdigest() != digest:
            raise RegistryError(f"blob {digest} of {name} arrived corrupted")

    def upload_blob_stream(self, name: str, digest: str, chunks: Iterable[bytes]) -> str:
        """Upload a blob of known digest from a stream of chunks (one POST, one chunked PUT).

        Raises:
            RegistryError: refused, e.g. DIGEST_INVALID when the bytes do not match `digest`.
        """
        started = self._request("POST", f"/v2/{_name(name)}/blobs/uploads/")
        self._request("PUT", _with_digest(_location(started), digest), data=self._counted(chunks),
                      headers={"Content-Type": "application/octet-stream"})
        return digest

    def upload_blob(self, name: str, data: bytes) -> str:
        """Upload a blob monolithically (POST then PUT); a no-op if it exists."""
        digest = sha256_digest(data)
        if self.blob_exists(name, digest):
            return digest
        started = self._request("POST", f"/v2/{_name(name)}/blobs/uploads/")
        self._request("PUT", _with_digest(_location(started), digest), data=data,
                      headers={"Content-Type": "application/octet-stream"})
        return digest

    def mount_blob(self, name: str, digest: str, source: str) -> bool:
        """Cross-repository mount; True if mounted, False if the registry opened an upload instead."""
        response = self._request("POST", f"/v2/{_name(name)}/blobs/uploads/?mount={digest}&from={_name(source)}")
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")
        if location:  # abandon the upload the registry opened instead of mounting
            self._request("DELETE", location, allow=(204, 404))
        return False

    def _counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._bytes_sent += len(chunk)
            yield chunk

    def _request(self, method: str, path: str, *, data: bytes | Iterator[bytes] | None = None,
                 headers: dict[str, str] | None = None, allow: tuple[int, ...] = (),
                 stream: bool = False) -> requests.Response:
        url = urljoin(self.url + "/", path.lstrip("/")) if not path.startswith("http") else path
        response = self._send(method, url, data, headers or {}, stream)
        if response.status_code == 401 and self._authenticate(response):
            if not isinstance(data, bytes | None):
                raise Unauthorized(f"the registry at {self.host} asked for a token in the middle of a stream",
                                   status=401, hint="Run the command again; the token is now cached.")
            response = self._send(method, url, data, headers or {}, stream)
        if response.status_code >= 400 and response.status_code not in allow:
            raise _error(method, path, response)
        return response

    def _send(self, method: str, url: str, data: bytes | Iterator[bytes] | None, headers: dict[str, str],
              stream: bool = False) -> requests.Response:
        headers = dict(headers)
        token = self._tokens.get(_scope_key(url))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        auth = (self._basic[0], self._basic[1].reveal()) if self._basic and not token else None
        self._requests += 1
        self._bytes_sent += len(data) if isinstance(data, bytes) else 0
        try:
            return self._session.request(method, url, data=data, headers=headers, auth=auth,
                                         timeout=self._timeout, allow_redirects=True, stream=stream)
        except requests.RequestException as e:
            raise RegistryError(f"cannot reach the registry at {self.host} ({type(e).__name__})",
                                hint="Check the registry address and that it is running.") from e

    def _authenticate(self, response: requests.Response) -> bool:
        """Answer a Bearer challenge by fetching a token for its scope; basic auth needs no extra step."""
        challenge = response.headers.get("Www-Authenticate", "")
        key = _scope_key(response.request.url or "")
        if not challenge.lower().startswith("bearer ") or key in self._tokens:
            return False  # basic auth was refused, or a fresh token was: the credentials are wrong
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        auth = (self._basic[0], self._basic[1].reveal()) if self._basic else None
        self._requests += 1
        try:
            token = self._session.get(params["realm"], params={k: v for k, v in params.items() if k != "realm"},
                                      auth=auth, timeout=self._timeout)
        except (requests.RequestException, KeyError) as e:
            raise Unauthorized(f"cannot get a token from the registry at {self.host}", status=401) from e
        if token.status_code != 200:
            raise _error("GET", "token", token)
        try:
            body = token.json()
            self._tokens[key] = str(body.get("token") or body.get("access_token") or "")
        except (ValueError, AttributeError) as e:
            raise Unauthorized(f"the token service of the registry at {self.host} answered with something that is "
                               "not a JSON token", status=401) from e
        return bool(self._tokens[key])


def _error(method: str, path: str, response: requests.Response) -> RegistryError:
    code, message = _first_error(response)
    text = f"registry answered {response.status_code} to {method} {path.split('?')[0]}: {code or ''} {message}".strip()
    status = response.status_code
    if status in (401, 403):
        return Unauthorized(text, status=status, code=code,
                            hint="Check the registry user and password (never printed).")
    if status == 404:
        return NotFound(text, status=status, code=code)
    return RegistryError(text, status=status, code=code)


def _first_error(response: requests.Response) -> tuple[str, str]:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return "", response.text[:200].strip()
    if errors and isinstance(errors[0], dict):
        return str(errors[0].get("code", "")), str(errors[0].get("message", ""))
    return "", ""


def _listing(response: requests.Response, key: str) -> list[str]:
    """The `key` list of a JSON listing page; a page that is not one (a proxy's login page) is a RegistryError."""
    try:
        items = response.json().get(key) or []
    except (ValueError, AttributeError) as e:
        where = response.request.path_url.split("?")[0] if response.request else ""
        raise RegistryError(f"the registry answered {where} with something that is not JSON "
                            f"({response.headers.get('Content-Type', 'no content type')})",
                            hint="Check the registry address: it may be a proxy or a web page, not a registry.") from e
    if not isinstance(items, list):
        raise RegistryError(f"the registry sent a {key} listing that is not a list")
    return [str(item) for item in items]


def _scope_key(url: str) -> str:
    """The repository a request URL is about ("" for /v2/ and the catalog): bearer tokens are scoped to it."""
    match = re.search(r"/v2/(.+?)/(?:manifests|blobs|tags)/", url)
    return match.group(1) if match else ""


def _next_link(response: requests.Response) -> str | None:
    link = response.links.get("next", {}).get("url")
    return str(link) if link else None


def _location(response: requests.Response) -> str:
    """Where an upload continues; a registry (or proxy) that omits it cannot take blobs."""
    location = response.headers.get("Location")
    if not location:
        raise RegistryError(f"the registry opened an upload without a Location header ({response.status_code})",
                            hint="Check that the address points at the registry itself, not a proxy page.")
    return location


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _media_type(raw: bytes) -> str:
    return str(json.loads(raw).get("mediaType") or OCI_MANIFEST)


def _name(name: str) -> str:
    if not NAME.match(name) or len(name) > 255:
        raise RegistryError(f"{name!r} is not a valid repository name (lowercase path components)")
    return name


def _ref(reference: str) -> str:
    if not (TAG.match(reference) or DIGEST.match(reference)):
        raise RegistryError(f"{reference!r} is not a valid tag or digest")
    return reference
