"""Release tests: a private DELIVERY_HOME, registry credentials in the environment, signing keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.environments import Environment
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.release.state import SqliteReleaseStore
from tests.support.oci import Keys, make_keys


@dataclass(frozen=True)
class Release:
    """Everything a release test touches, isolated per test (own repositories, own state, own audit)."""

    client: RegistryClient
    registry: RegistryHandle
    prefix: str
    home: Path
    keys: Keys

    def environment(self, name: str = "local", **fields: object) -> Environment:
        data: dict[str, object] = {"apiVersion": "delivery/v1", "kind": "Environment", "name": name,
                                   "registry": self.registry.host, "repository_prefix": self.prefix,
                                   "nomad": {"address": "http://127.0.0.1:4646"}}
        return Environment.model_validate(data | fields)

    def write_environment(self, name: str = "local", **fields: object) -> Environment:
        env = self.environment(name, **fields)
        folder = self.home / "environments"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.yaml").write_text(env.model_dump_json(by_alias=True), encoding="utf-8")
        return env

    @property
    def store(self) -> SqliteReleaseStore:
        return SqliteReleaseStore(self.home / "release-state.sqlite")

    @property
    def audit(self) -> AuditLog:
        return AuditLog(f"sqlite:///{self.home / 'ledger.sqlite'}")


@pytest.fixture(scope="session")
def session_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
def release(registry: RegistryHandle, session_keys: Keys, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    (home / "keys" / "signing.pub").write_bytes(session_keys.public.read_bytes())
    monkeypatch.setenv("DELIVERY_HOME", str(home))
    monkeypatch.setenv("DELIVERY_ENVIRONMENTS", str(home / "environments"))
    monkeypatch.setenv("DELIVERY_REGISTRY", registry.host)
    monkeypatch.setenv("DELIVERY_REGISTRY_USER", registry.username)
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal())
    monkeypatch.setenv("DELIVERY_ACTOR", "release-tester")
    monkeypatch.delenv("DELIVERY_DATABASE_URL", raising=False)
    client = RegistryClient(registry.url, registry.username, registry.password)
    yield Release(client, registry, f"t{uuid.uuid4().hex[:10]}", home, session_keys)
