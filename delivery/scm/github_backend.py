"""The GitHub backend: scan an organisation by GraphQL (default) or REST with ETags, keep going past bad repos."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from delivery.github import GitHubClient, GitHubError, RemoteRepo
from delivery.scm.model import JENKINSFILE, MANIFEST_FILE, Api, Candidate, ScanOptions, ScanResult, Verdict, judge
from delivery.scm.ratelimit import RateLimitExceeded


@dataclass
class _Tally:
    """What a scan has gathered so far; turned into a frozen ScanResult at the end."""

    repos: list[Verdict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rate_limited: bool = False
    seen: int = 0


class GitHubBackend:
    """Biomarker repositories of one GitHub organisation."""

    def __init__(self, client: GitHubClient, org: str, *, api: Api = "graphql") -> None:
        self.client, self.org, self.api = client, org, api

    def scan(self, options: ScanOptions) -> ScanResult:
        """Every wanted, live biomarker repository; a partial result (never an exception) when GitHub fails."""
        tally = _Tally()
        listing = self._graphql_repos() if self.api == "graphql" else self.client.org_repos(self.org)
        try:
            for repo in listing:
                tally.seen += 1
                if repo.archived or repo.disabled or not options.wants(repo.name, repo.topics):
                    continue
                tally.repos.append(self._judge(repo, tally))
        except RateLimitExceeded as e:
            tally.rate_limited = True
            tally.errors.append(e.message)
        except GitHubError as e:
            tally.errors.append(e.message)
        return self._result(tally)

    def scan_one(self, name: str) -> ScanResult:
        """Only repository `name`: empty when it is gone, archived or disabled."""
        tally = _Tally(seen=1)
        try:
            repo = self.client.repo(self.org, name) if self.api == "graphql" else self._rest_repo(name)
            if repo is not None and not (repo.archived or repo.disabled):
                tally.repos.append(self._judge(repo, tally))
        except RateLimitExceeded as e:
            tally.rate_limited = True
            tally.errors.append(e.message)
        except GitHubError as e:
            tally.errors.append(e.message)
        return self._result(tally)

    def _graphql_repos(self) -> Iterator[RemoteRepo]:
        after: str | None = None
        while True:
            page = self.client.org_page(self.org, after)
            yield from page.repos
            if not page.has_next or page.end_cursor is None:
                return
            after = page.end_cursor

    def _rest_repo(self, name: str) -> RemoteRepo | None:
        return next((r for r in self.client.org_repos(self.org) if r.name == name), None)

    def _judge(self, repo: RemoteRepo, tally: _Tally) -> Verdict:
        """Validate one repository; a failed file fetch is an error of the scan, not of the repository."""
        if self.api == "graphql":
            return judge(self._candidate(repo, repo.manifest, repo.has_jenkinsfile))
        try:
            manifest = self.client.file(repo.full_name, MANIFEST_FILE, repo.default_branch, pushed_at=repo.pushed_at)
            verdict = judge(self._candidate(repo, manifest, False))
            if verdict.repository is None or verdict.repository.manifest.pipeline != "custom":
                return verdict
            # Only custom pipelines need to know about their Jenkinsfile; generated ones never read it.
            found = self.client.file(repo.full_name, JENKINSFILE, repo.default_branch, pushed_at=repo.pushed_at)
            jenkinsfile = found is not None
            return judge(self._candidate(repo, manifest, jenkinsfile))
        except GitHubError as e:
            if isinstance(e, RateLimitExceeded):
                raise
            tally.errors.append(f"{repo.name}: {e.message}")
            return Verdict(repo.name, invalid=True)

    def _candidate(self, repo: RemoteRepo, manifest: bytes | None, jenkinsfile: bool) -> Candidate:
        return Candidate(self.org, repo.name, repo.default_branch, repo.clone_url, manifest, jenkinsfile, repo.topics)

    def _result(self, tally: _Tally) -> ScanResult:
        self.client.cache.save()  # even a partial scan leaves its ETags for the next one
        repos = tuple(v.repository for v in tally.repos if v.repository is not None)
        invalid = tuple(v.name for v in tally.repos if v.invalid)
        problems = tuple(p for v in tally.repos for p in v.problems)
        return ScanResult(
            self.org, repos, invalid, problems, tuple(tally.errors), tally.rate_limited,
            self.client.requests, self.client.cost, tally.seen,
        )

