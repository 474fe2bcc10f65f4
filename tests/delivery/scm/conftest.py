"""Fixtures: a loopback GitHub with a fake clock, and the client the scanner uses against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from delivery.github import GitHubClient
from delivery.scm.etagcache import EtagCache
from delivery.scm.github_backend import GitHubBackend
from delivery.scm.model import Api
from delivery.scm.ratelimit import Governor
from delivery.secrets import Secret
from tests.support.fake_github import TOKEN, FakeClock, FakeGitHub


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gh(clock: FakeClock) -> Iterator[FakeGitHub]:
    fake = FakeGitHub("acme", clock=clock)
    yield fake
    fake.stop()


def make_backend(gh: FakeGitHub, clock: FakeClock, *, api: Api = "graphql", cache: Path | None = None,
                 max_wait: float = 3600.0, progress: list[str] | None = None) -> GitHubBackend:
    messages = progress if progress is not None else []
    governor = Governor(clock, max_wait=max_wait, progress=messages.append)
    client = GitHubClient(gh.url, Secret(TOKEN), governor, cache=EtagCache(cache))
    return GitHubBackend(client, "acme", api=api)
