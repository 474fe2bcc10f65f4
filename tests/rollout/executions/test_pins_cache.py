"""A burst of submissions on a cold cache costs one registry round trip, not one per submission."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.release.state import ReleaseState
from rollout.executions.pins import RegistryPinResolver
from tests.support.oci import attest, make_keys, push_image


def test_concurrent_resolves_on_a_cold_cache_share_one_registry_fetch(registry: RegistryHandle,
                                                                       tmp_path: Path) -> None:
    client = RegistryClient(registry.url, registry.username, registry.password)
    repository = f"pins/{uuid.uuid4().hex[:8]}"
    image = push_image(client, repository, "1.0.0", seed="burst")
    attest(client, repository, image.digest, make_keys(tmp_path))
    release = ReleaseState(environment="local", biomarker="alpha")

    alone = RegistryClient(registry.url, registry.username, registry.password)
    RegistryPinResolver(alone).resolve("1.0.0", release=release, image_repository=repository)
    one_submission = alone.stats.requests

    burst = RegistryClient(registry.url, registry.username, registry.password)
    resolver = RegistryPinResolver(burst)
    start, digests = threading.Barrier(8), []

    def submit() -> None:
        start.wait()
        digests.append(resolver.resolve("1.0.0", release=release, image_repository=repository).digest)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert digests == [image.digest] * 8
    assert burst.stats.requests == one_submission
