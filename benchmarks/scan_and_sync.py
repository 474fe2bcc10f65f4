"""Benchmark org scan and Jenkins sync on a simulated org of 1,000 repositories (300 biomarkers), loopback fakes.

Usage: python benchmarks/scan_and_sync.py [--repos N] [--biomarkers M]
Prints JSON: requests and rate-limit cost of a cold scan and of an unchanged rescan (GraphQL and REST with
ETags), a naive baseline (list + one contents request per repository) measured in the same run, and the
requests `apply` makes when 1 of N jobs changed against a naive sync that reads every job's config.xml.
Requests are counted by the fakes (what reached the server), cost by the fake's rate-limit accounting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from delivery.github import GitHubClient
from delivery.jenkins import JenkinsClient
from delivery.pipelines import sync
from delivery.pipelines.render import Settings, render_all, render_folder
from delivery.scm.etagcache import EtagCache
from delivery.scm.github_backend import GitHubBackend
from delivery.scm.model import Api, Repository, ScanOptions
from delivery.scm.ratelimit import Governor
from delivery.secrets import Secret
from tests.support.builders import manifest_text
from tests.support.fake_github import TOKEN, FakeClock, FakeGitHub
from tests.support.fake_jenkins import TOKEN as JENKINS_TOKEN
from tests.support.fake_jenkins import USER, FakeJenkins

TARGETS = {"graphql_scan_requests": 15, "apply_one_changed_requests": 5}


def _client(gh: FakeGitHub, clock: FakeClock, cache: Path | None) -> GitHubClient:
    return GitHubClient(gh.url, Secret(TOKEN), Governor(clock), cache=EtagCache(cache))


def _measure_scan(gh: FakeGitHub, clock: FakeClock, api: Api, cache: Path | None) -> dict[str, Any]:
    gh.http.reset_log()
    charged = dict(gh.charged)
    started = time.perf_counter()
    result = GitHubBackend(_client(gh, clock, cache), gh.org, api=api).scan(ScanOptions())
    return {
        "requests": gh.requests(), "rate_limit_cost": sum(gh.charged.values()) - sum(charged.values()),
        "not_modified_304": gh.requests() - (sum(gh.charged.values()) - sum(charged.values())),
        "biomarkers": len(result.repositories), "complete": result.complete,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _naive_scan(gh: FakeGitHub, clock: FakeClock) -> dict[str, Any]:
    """List every repository, then fetch biomarker.yaml of each one, no caching: what most scanners do."""
    gh.http.reset_log()
    charged = sum(gh.charged.values())
    client = _client(gh, clock, None)
    found = sum(1 for repo in list(client.org_repos(gh.org))
                if client.file(repo.full_name, "biomarker.yaml", repo.default_branch) is not None)
    return {"requests": gh.requests(), "rate_limit_cost": sum(gh.charged.values()) - charged, "biomarkers": found}


def scan_figures(repos: int, biomarkers: int, tmp: Path) -> dict[str, Any]:
    clock = FakeClock()
    gh = FakeGitHub("acme", clock=clock)
    gh.limits["core"].limit = gh.limits["core"].remaining = 100_000  # room for the naive baseline
    step = repos // biomarkers
    try:
        for i in range(repos):
            wanted = i % step == 0 and i // step < biomarkers
            gh.add_repo(f"repo-{i:04d}", manifest_text(name=f"name: bm-{i:04d}").encode() if wanted else None)
        cache = tmp / "etags.json"
        return {
            "graphql": {"cold": _measure_scan(gh, clock, "graphql", None),
                        "rescan_unchanged": _measure_scan(gh, clock, "graphql", None)},
            "rest": {"cold": _measure_scan(gh, clock, "rest", cache),
                     "rescan_unchanged": _measure_scan(gh, clock, "rest", cache)},
            "naive_baseline": _naive_scan(gh, clock),
        }
    finally:
        gh.stop()


def _repositories(count: int) -> tuple[Repository, ...]:
    from delivery.manifest import parse_manifest

    base = parse_manifest(manifest_text().encode(), "bench/biomarker.yaml")
    return tuple(Repository("acme", f"repo-{i:04d}", "main", "", base.model_copy(update={"name": f"bm-{i:04d}"}),
                            False) for i in range(count))


def sync_figures(jobs_count: int) -> dict[str, Any]:
    jenkins = FakeJenkins()
    try:
        client = JenkinsClient(jenkins.url, USER, Secret(JENKINS_TOKEN), timeout=30)
        folder = render_folder("acme", Settings())
        repos = _repositories(jobs_count)
        sync.apply(client, sync.plan(client, folder, render_all(repos, Settings())), lambda _m: None)
        naive = _naive_sync(jenkins, render_all(_change(repos, 500), Settings()))
        jobs = render_all(_change(_change(repos, 500), 501), Settings())
        fresh = JenkinsClient(jenkins.url, USER, Secret(JENKINS_TOKEN), timeout=30)
        jenkins.http.reset_log()
        written = sync.apply(fresh, sync.plan(fresh, folder, jobs), lambda _m: None)
        ours = {"requests": jenkins.requests(), "jobs_written": written}
        return {"jobs": jobs_count, "apply_one_changed": ours, "naive_baseline": naive}
    finally:
        jenkins.stop()


def _change(repos: tuple[Repository, ...], index: int) -> tuple[Repository, ...]:
    """The same repositories with one manifest's description changed."""
    changed = list(repos)
    manifest = changed[index].manifest.model_copy(update={"description": f"Changed description {index}."})
    changed[index] = dataclasses.replace(changed[index], manifest=manifest)
    return tuple(changed)


def _naive_sync(jenkins: FakeJenkins, jobs: tuple[Any, ...]) -> dict[str, Any]:
    """Read every job's live config.xml and write the ones that differ."""
    client = JenkinsClient(jenkins.url, USER, Secret(JENKINS_TOKEN), timeout=30)
    jenkins.http.reset_log()
    written = 0
    for job in jobs:
        if client.job_config(job.full_name) != job.config_xml:
            client.update_job(job.full_name, job.config_xml)
            written += 1
    return {"requests": jenkins.requests(), "jobs_written": written}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--biomarkers", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scan = scan_figures(args.repos, args.biomarkers, Path(tmp))
    synced = sync_figures(args.repos)
    report = {
        "org": {"repositories": args.repos, "biomarkers": args.biomarkers},
        "scan": scan, "sync": synced, "targets": TARGETS,
        "targets_met": {
            "graphql_scan_requests": max(scan["graphql"]["cold"]["requests"],
                                         scan["graphql"]["rescan_unchanged"]["requests"]) <= 15,
            "rest_rescan_all_304": scan["rest"]["rescan_unchanged"]["rate_limit_cost"] == 0,
            "apply_one_changed_requests": synced["apply_one_changed"]["requests"] <= 5,
        },
    }
    print(json.dumps(report, indent=2))
    return 0 if all(report["targets_met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
