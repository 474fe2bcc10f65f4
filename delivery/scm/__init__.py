"""Discovery: which repositories of an organisation are biomarkers, from GitHub or from a local folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from delivery.errors import UsageError
from delivery.scm.etagcache import EtagCache
from delivery.scm.local import LocalBackend
from delivery.scm.model import Api, Repository, ScanOptions, ScanResult, ScmBackend
from delivery.scm.ratelimit import Clock, Governor, SystemClock
from delivery.secrets import from_env

__all__ = ["BackendSpec", "Repository", "ScanOptions", "ScanResult", "ScmBackend", "open_backend"]

LOCAL_PREFIX = "local:"
DEFAULT_GITHUB = "https://api.github.com"


@dataclass(frozen=True)
class BackendSpec:
    """How to reach an organisation: `local:PATH`, or a GitHub org with its API settings."""

    org: str
    github_url: str = DEFAULT_GITHUB
    token_env: str = "GITHUB_TOKEN"  # noqa: S105 - the variable's name, not a token
    api: Api = "graphql"
    cache: Path | None = None
    max_wait: float = 3600.0


def open_backend(
    spec: BackendSpec, *, clock: Clock | None = None, progress: Callable[[str], None] | None = None
) -> ScmBackend:
    """The backend `spec` names; GitHub needs a token in `spec.token_env`."""
    if spec.org.startswith(LOCAL_PREFIX):
        return LocalBackend(Path(spec.org.removeprefix(LOCAL_PREFIX)))
    if not spec.org or "/" in spec.org:
        raise UsageError(f"--org {spec.org!r} is not an organisation name", hint="Use --org ORG or --org local:PATH.")
    from delivery.github import GitHubClient
    from delivery.scm.github_backend import GitHubBackend

    governor = Governor(clock or SystemClock(), max_wait=spec.max_wait, progress=progress)
    token = from_env(spec.token_env)
    client = GitHubClient(spec.github_url, token, governor, cache=EtagCache(spec.cache))
    return GitHubBackend(client, spec.org, api=spec.api)
