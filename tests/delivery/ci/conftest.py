"""CI-stage fixtures: the session registry as the configured one, a private state home, signing keys."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from delivery.localenv import RegistryHandle
from delivery.provenance import generate_keys


@pytest.fixture
def ci_env(monkeypatch: pytest.MonkeyPatch, registry: RegistryHandle, tmp_path: Path) -> RegistryHandle:
    """The session registry configured through the documented environment variables."""
    monkeypatch.setenv("DELIVERY_REGISTRY", registry.host)
    monkeypatch.setenv("DELIVERY_REGISTRY_USER", registry.username)
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal())
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    for name in ("BUILD_URL", "JENKINS_URL", "TAG_NAME", "BRANCH_NAME", "GIT_COMMIT", "GIT_URL", "BUILD_TAG"):
        monkeypatch.delenv(name, raising=False)
    return registry


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keys(tmp_path / "keys")


@pytest.fixture
def image_name() -> str:
    return f"ci-test/tiny-{uuid.uuid4().hex[:8]}"
