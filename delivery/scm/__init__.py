"""Discovery: which repositories of an organisation are biomarkers, from GitHub, a local folder or a plugin.

Backends are `delivery.scm` entry points: a factory `(spec, *, clock, progress) -> ScmBackend`. The
built-ins are `github` (the default) and `local` (`--org local:PATH`); `--scm NAME` or `--org NAME:TARGET`
picks any installed one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from delivery import plugins
from delivery.errors import UsageError
from delivery.scm.etagcache import EtagCache
from delivery.scm.local import LocalBackend
from delivery.scm.model import Api, Repository, ScanOptions, ScanResult, ScmBackend
from delivery.scm.ratelimit import Clock, Governor, SystemClock
from delivery.secrets import from_env

__all__ = ["BackendSpec", "Repository", "ScanOptions", "ScanResult", "ScmBackend", "open_backend"]

GROUP = "delivery.scm"
LOCAL_PREFIX = "local:"
SCHEME = re.compile(r"^([a-z][a-z0-9_-]*):(.+)$")
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
    scm: str | None = None  # a `delivery.scm` plugin name; None: from an `org` prefix, else github


def open_backend(
    spec: BackendSpec, *, clock: Clock | None = None, progress: Callable[[str], None] | None = None
) -> ScmBackend:
    """The backend `spec` names (`--scm`, else an `org` prefix like `local:`, else GitHub), through its entry point."""
    name, org = _choose(spec)
    make = plugins.factory(GROUP, name)
    return cast(ScmBackend, make(replace(spec, org=org, scm=name), clock=clock, progress=progress))


def _choose(spec: BackendSpec) -> tuple[str, str]:
    if spec.scm:
        return spec.scm, spec.org
    prefixed = SCHEME.match(spec.org)
    if prefixed:
        return prefixed.group(1), prefixed.group(2)
    return "github", spec.org


def open_local(spec: BackendSpec, *, clock: Clock | None = None,
               progress: Callable[[str], None] | None = None) -> ScmBackend:
    """The `local` backend: each sub-folder of the folder `spec.org` is a repository."""
    return LocalBackend(Path(spec.org))


def open_github(spec: BackendSpec, *, clock: Clock | None = None,
                progress: Callable[[str], None] | None = None) -> ScmBackend:
    """The `github` backend; needs a token in `spec.token_env`."""
    if not spec.org or "/" in spec.org:
        raise UsageError(f"--org {spec.org!r} is not an organisation name", hint="Use --org ORG or --org local:PATH.")
    from delivery.github import GitHubClient
    from delivery.scm.github_backend import GitHubBackend

    governor = Governor(clock or SystemClock(), max_wait=spec.max_wait, progress=progress)
    token = from_env(spec.token_env)
    client = GitHubClient(spec.github_url, token, governor, cache=EtagCache(spec.cache))
    return GitHubBackend(client, spec.org, api=spec.api)
