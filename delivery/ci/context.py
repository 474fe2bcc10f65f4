"""What is being built: commit, ref, tag, version and source, from Jenkins' environment or from git."""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import semver

from delivery.ci.git import git

RELEASE_TAG = re.compile(r"^v([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)$")


@dataclass(frozen=True)
class CiContext:
    """The build's identity; the same on Jenkins and on a laptop."""

    repo: str
    commit: str
    ref: str
    tag: str | None
    branch: str | None
    default_branch: str
    source_url: str
    committed_at: str
    build_url: str | None
    builder_id: str
    invocation_id: str

    @property
    def is_release(self) -> bool:
        """A semver release-tag build: checks that could not run block it unless overridden with a reason."""
        return RELEASE_TAG.match(self.tag or "") is not None

    @property
    def version(self) -> str:
        """`X.Y.Z` on a release tag, else a semver pre-release naming the commit."""
        match = RELEASE_TAG.match(self.tag or "")
        return match.group(1) if match else f"0.0.0-sha.{self.commit[:12]}"

    def push_tag(self) -> tuple[str | None, str]:
        """The registry tag this build gets (never `latest`), or None, with the rule that decided."""
        match = RELEASE_TAG.match(self.tag or "")
        if match:
            return match.group(1), f"release tag {self.tag}"
        if self.branch and self.branch == self.default_branch:
            return f"sha-{self.commit[:12]}", f"default branch {self.branch}"
        return None, f"neither a release tag vX.Y.Z nor the default branch ({self.default_branch}): nothing is pushed"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CiContext:
        return cls(**data)


def detect(repo: Path, env: dict[str, str] | None = None) -> CiContext:
    """Jenkins' variables (GIT_COMMIT, TAG_NAME, BRANCH_NAME, GIT_URL, BUILD_URL) first, then git."""
    env = dict(os.environ if env is None else env)
    commit = env.get("GIT_COMMIT") or git(repo, "rev-parse", "HEAD")
    tag = env.get("TAG_NAME") or _release_tag(repo)
    branch = None if env.get("TAG_NAME") else (env.get("BRANCH_NAME") or _branch(repo))
    ref = f"refs/tags/{tag}" if tag else (f"refs/heads/{branch}" if branch else commit)
    source = env.get("GIT_URL") or git(repo, "remote", "get-url", "origin", required=False) or _file_url(repo)
    builder = env.get("DELIVERY_BUILDER_ID") or (
        f"{env['JENKINS_URL'].rstrip('/')}/#delivery-ci" if env.get("JENKINS_URL")
        else f"urn:biomarker-delivery:builder:local:{socket.gethostname()}")
    return CiContext(
        repo=str(repo.resolve()), commit=commit, ref=ref, tag=tag, branch=branch,
        default_branch=env.get("DELIVERY_DEFAULT_BRANCH") or _default_branch(repo),
        source_url=source, committed_at=git(repo, "show", "-s", "--format=%cI", commit),
        build_url=env.get("BUILD_URL"), builder_id=builder,
        invocation_id=env.get("BUILD_TAG") or f"local-{uuid.uuid4().hex[:12]}",
    )


def _release_tag(repo: Path) -> str | None:
    tags = [t for t in git(repo, "tag", "--points-at", "HEAD", required=False).split() if RELEASE_TAG.match(t)]
    return max(tags, key=lambda t: semver.Version.parse(t[1:])) if tags else None


def _branch(repo: Path) -> str | None:
    name = git(repo, "rev-parse", "--abbrev-ref", "HEAD", required=False)
    return name if name and name != "HEAD" else None


def _default_branch(repo: Path) -> str:
    head = git(repo, "symbolic-ref", "--short", "refs/remotes/origin/HEAD", required=False)
    return head.split("/", 1)[1] if "/" in head else "main"


def _file_url(repo: Path) -> str:
    top = git(repo, "rev-parse", "--show-toplevel", required=False) or str(repo)
    sub = os.path.relpath(repo.resolve(), Path(top).resolve())
    return f"git+file://{top}" + ("" if sub == "." else f"#{sub}")
