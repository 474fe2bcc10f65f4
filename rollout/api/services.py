"""What the API is built on: configuration and the systems of record (release store, ledger, registry, audit)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from delivery.audit import AuditLog
from delivery.compose import apply_config_file
from delivery.errors import ConfigError
from delivery.manifest.model import Biomarker
from delivery.paths import state_home
from delivery.registry import RegistryClient
from delivery.release.state import ReleaseStore
from rollout.api.auth import TokenStore, default_tokens_path
from rollout.api.dispatch import Dispatcher, NotifyingLedger
from rollout.compose import compose
from rollout.environment import default_environment
from rollout.executions.backend import Backend
from rollout.executions.manifests import FixedManifests, FolderManifests
from rollout.executions.pins import PinResolver, RegistryPinResolver
from rollout.executions.stats import LedgerExecutionStats
from rollout.executions.submit import Submitter

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class ApiConfig:
    """Where studies are read and results written, which environments are served, request limits."""

    input_root: Path
    output_root: Path
    environments: tuple[str, ...] = ("local",)
    max_body_bytes: int = MAX_BODY_BYTES
    max_in_flight: int = 64
    secure_cookies: bool = False

    @property
    def default_environment(self) -> str:
        return self.environments[0]


class Catalog(Protocol):
    """The biomarkers the service knows: names and manifests."""

    def names(self) -> list[str]: ...

    def manifest(self, biomarker: str) -> Biomarker: ...


class FolderCatalog(FolderManifests):
    """`<root>/<name>/biomarker.yaml`, the local-folder organisation."""

    def names(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/biomarker.yaml"))


class FixedCatalog(FixedManifests):
    """Manifests given directly (tests, benchmarks)."""

    def __init__(self, *manifests: Biomarker) -> None:
        super().__init__(*manifests)
        self._names = sorted(m.name for m in manifests)

    def names(self) -> list[str]:
        return list(self._names)


@dataclass
class Services:
    """Everything a request handler may touch; all state lives in these systems of record, none in the process."""

    config: ApiConfig
    tokens: TokenStore
    ledger: NotifyingLedger
    store: ReleaseStore
    audit: AuditLog
    catalog: Catalog
    registry: RegistryClient
    resolver: PinResolver
    submitter: Submitter
    dispatcher: Dispatcher = field(init=False)

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.submitter, self.ledger, limit=self.config.max_in_flight)

    @property
    def stats(self) -> LedgerExecutionStats:
        return LedgerExecutionStats(self.ledger)


def build_services(*, config: ApiConfig, tokens: TokenStore, catalog: Catalog, store: ReleaseStore,
                   registry: RegistryClient, backend: Backend, database_url: str,
                   shadow_root: Path | None = None) -> Services:
    """Wire the services the way `rollout submit` does, with the ledger telling the API when a run is recorded."""
    ledger = NotifyingLedger(database_url)
    resolver = RegistryPinResolver(registry)
    submitter = Submitter(ledger=ledger, store=store, resolver=resolver, manifests=catalog, backend=backend,
                          shadow_root=shadow_root or state_home() / "shadow")
    return Services(config=config, tokens=tokens, ledger=ledger, store=store, audit=AuditLog(database_url),
                    catalog=catalog, registry=registry, resolver=resolver, submitter=submitter)


def services_from_env() -> Services:
    """The services `rollout serve` passes to its worker processes through DELIVERY_API_* variables."""
    apply_config_file()  # DELIVERY_API_* may come from the configuration file too
    env = os.environ
    home = state_home()
    input_root = Path(env.get("DELIVERY_API_INPUT_ROOT") or home / "studies")
    output_root = Path(env.get("DELIVERY_API_OUTPUT_ROOT") or home / "results")
    for folder in (input_root, output_root):
        folder.mkdir(parents=True, exist_ok=True)
    environments = tuple(e for e in (env.get("DELIVERY_API_ENVIRONMENTS") or default_environment()).split(",") if e)
    if not environments:
        raise ConfigError("DELIVERY_API_ENVIRONMENTS names no environment")
    config = ApiConfig(input_root.resolve(), output_root.resolve(), environments,
                       secure_cookies=env.get("DELIVERY_API_SECURE_COOKIES", "") not in ("", "0"))
    c = compose(argparse.Namespace(backend=env.get("DELIVERY_API_BACKEND") or None))
    settings = c.registry()
    return build_services(
        config=config, tokens=TokenStore(default_tokens_path()),
        catalog=FolderCatalog(Path(env.get("DELIVERY_ORG_DIR") or "biomarkers")),
        store=c.store, registry=settings.client(), backend=c.backend(settings.auth()),
        database_url=c.config.ledger_url(), shadow_root=c.shadow_root(config.output_root))
