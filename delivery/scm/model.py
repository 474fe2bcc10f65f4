"""What a scan learns about an organisation: typed, frozen repository facts."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from delivery.errors import ManifestError
from delivery.manifest import parse_manifest
from delivery.manifest.model import Biomarker

Api = Literal["graphql", "rest"]
MANIFEST_FILE = "biomarker.yaml"
JENKINSFILE = "Jenkinsfile"
# Jenkins item names and GitHub repository names share this safe alphabet; anything else is refused.
REPO_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


@dataclass(frozen=True)
class ScanOptions:
    """Which repositories of the organisation a scan considers."""

    topic: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, name: str, topics: tuple[str, ...]) -> bool:
        """True when `name` passes the topic and glob filters."""
        if self.topic is not None and self.topic not in topics:
            return False
        if self.include and not any(fnmatch.fnmatchcase(name, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)


@dataclass(frozen=True)
class Repository:
    """One biomarker repository: where it lives and its validated manifest."""

    org: str
    name: str
    default_branch: str
    clone_url: str
    manifest: Biomarker
    has_jenkinsfile: bool
    topics: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        """`org/name`, as GitHub spells it."""
        return f"{self.org}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        """The `--json` shape of one repository."""
        return {
            "full_name": self.full_name, "name": self.name, "default_branch": self.default_branch,
            "clone_url": self.clone_url, "biomarker": self.manifest.name, "image": self.manifest.image,
            "pipeline": self.manifest.pipeline, "has_jenkinsfile": self.has_jenkinsfile, "topics": list(self.topics),
        }


@dataclass(frozen=True)
class ScanResult:
    """Biomarker repositories found, problems met, and whether the scan saw everything."""

    org: str
    repositories: tuple[Repository, ...]
    # Repositories that exist but whose manifest is invalid: never pruned, their jobs stay as they are.
    invalid: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    rate_limited: bool = False
    requests: int = 0
    cost: int = 0
    seen: int = 0

    @property
    def complete(self) -> bool:
        """True when nothing failed and no rate limit cut the scan short."""
        return not self.errors and not self.rate_limited

    def names(self) -> frozenset[str]:
        """Every repository name this scan vouches for (valid or invalid manifest)."""
        return frozenset(r.name for r in self.repositories) | frozenset(self.invalid)

    def to_json(self) -> dict[str, Any]:
        """The `--json` shape of a scan."""
        return {
            "org": self.org, "complete": self.complete, "rate_limited": self.rate_limited,
            "repositories": [r.to_json() for r in self.repositories], "invalid": list(self.invalid),
            "problems": list(self.problems), "errors": list(self.errors),
            "requests": self.requests, "cost": self.cost, "seen": self.seen,
        }


@dataclass(frozen=True)
class Candidate:
    """A repository as listed, before its manifest is validated."""

    org: str
    name: str
    default_branch: str
    clone_url: str
    manifest: bytes | None
    has_jenkinsfile: bool
    topics: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Verdict:
    """The outcome of validating one candidate."""

    name: str
    repository: Repository | None = None
    problems: tuple[str, ...] = ()
    invalid: bool = False


def judge(candidate: Candidate) -> Verdict:
    """Validate a candidate's manifest; report problems as `repo/biomarker.yaml:LINE: …`."""
    if candidate.manifest is None:
        return Verdict(candidate.name)
    display = f"{candidate.name}/{MANIFEST_FILE}"
    if not REPO_NAME.match(candidate.name):
        return Verdict(candidate.name, problems=(f"{display}:1: repository name is not a safe job name",), invalid=True)
    try:
        manifest = parse_manifest(candidate.manifest, display)
    except ManifestError as e:
        return Verdict(candidate.name, problems=tuple(str(p) for p in e.problems), invalid=True)
    repo = Repository(
        candidate.org, candidate.name, candidate.default_branch, candidate.clone_url,
        manifest, candidate.has_jenkinsfile, candidate.topics,
    )
    return Verdict(candidate.name, repository=repo)


class ScmBackend(Protocol):
    """A source of biomarker repositories (GitHub organisation, local folder)."""

    org: str

    def scan(self, options: ScanOptions) -> ScanResult:
        """Every biomarker repository of the organisation that passes `options`."""
        ...

    def scan_one(self, name: str) -> ScanResult:
        """Only repository `name` (for webhooks): its facts, or nothing when it is gone."""
        ...
