"""The composition root: from one configuration (`delivery.compose.load_config`), the release store, scheduler,
execution backend, ledger, audit log, registry client and provenance verifier of every `rollout` command, the API and
the controller service.

Cluster mode (Nomad configured): Nomad Variables, Nomad jobs and dispatches, the shared `DELIVERY_DATABASE_URL`.
Embedded default: `$DELIVERY_HOME/release-state.sqlite`, the local scheduler record, the local Docker engine and
`$DELIVERY_HOME/ledger.sqlite`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from delivery import compose as root
from delivery.audit import AuditLog
from delivery.config import RegistrySettings, registry_settings
from delivery.docker import DockerClient, RegistryAuth
from delivery.errors import ConfigError
from delivery.paths import state_home
from delivery.registry import RegistryClient
from delivery.release.connect import client_for
from delivery.release.state import ReleaseStore
from delivery.secrets import Secret, from_env
from rollout.controller.decide import Action
from rollout.controller.loop import Controller, ProvenanceVerifier
from rollout.controller.model import ReleaseRef
from rollout.executions.backend import Backend
from rollout.executions.ledger import Ledger
from rollout.executions.stats import LedgerExecutionStats
from rollout.nomad import NomadClient, NomadSettings
from rollout.nomad_state import NomadReleaseStore
from rollout.scheduler import LocalScheduler, Scheduler

Config = root.Config


def _utcnow() -> datetime:
    return datetime.now(UTC)


def nomad_settings(config: Config) -> NomadSettings:
    """Where Nomad is: the configured address, namespace and region; token and TLS from `NOMAD_*` variables."""
    return NomadSettings.from_env(config.nomad_addr, namespace=config.namespace, region=config.region)


def nomad_release_store(config: Config) -> ReleaseStore:
    """The `nomad` plugin of `delivery.release_store`: release state in Nomad Variables."""
    if not config.cluster:
        raise ConfigError("the nomad release store needs a Nomad address",
                          hint="Set NOMAD_ADDR (or pass --nomad-addr), or unset DELIVERY_RELEASE_STORE.")
    return NomadReleaseStore(NomadClient(nomad_settings(config)))


class Composition:
    """Everything a command touches, built lazily so a command builds only what it uses."""

    def __init__(self, config: Config, args: argparse.Namespace | None = None) -> None:
        self.config, self.args = config, args

    @cached_property
    def nomad(self) -> NomadClient | None:
        """The Nomad client in cluster mode; None in the embedded default."""
        return NomadClient(nomad_settings(self.config)) if self.config.cluster else None

    @cached_property
    def store(self) -> ReleaseStore:
        """Release state: Nomad Variables in cluster mode, the SQLite file embedded (plugin group)."""
        return root.release_store(self.config)

    @cached_property
    def scheduler(self) -> Scheduler:
        """Nomad in cluster mode, else the local scheduler record."""
        return self.nomad if self.nomad is not None else LocalScheduler(state_home() / "local-scheduler.json")

    @cached_property
    def ledger(self) -> Ledger:
        """The execution ledger (the shared database in cluster mode; ConfigError when none is configured)."""
        return Ledger(self.config.ledger_url())

    def audit(self) -> AuditLog:
        """The audit log, in the ledger's database (one engine per composition, however many controllers)."""
        return self._audit

    @cached_property
    def _audit(self) -> AuditLog:
        return root.audit_log(self.config)

    def stats(self) -> LedgerExecutionStats:
        """What the gates judge a candidate on."""
        return LedgerExecutionStats(self.ledger)

    def registry(self) -> RegistrySettings:
        """The configured registry and its credentials."""
        return registry_settings(self.args)

    def registry_client_for(self, host: str) -> RegistryClient:
        """A client for `host`: the configured registry's credentials when it is that one, else `host`'s own."""
        try:
            settings: RegistrySettings | None = self.registry()
        except ConfigError:
            settings = None
        if settings is not None and settings.host == host:
            return settings.client()
        return client_for(host, args=self.args)

    def pull_credentials(self) -> tuple[str, Secret]:
        """What Nomad pulls images with: DELIVERY_NOMAD_PULL_USER/_PASSWORD(_FILE), else the registry's own."""
        user = os.environ.get("DELIVERY_NOMAD_PULL_USER")
        password = from_env("DELIVERY_NOMAD_PULL_PASSWORD", required=False)
        if user and password:
            return user, password
        settings = self.registry()
        return settings.username, settings.password

    def backend_name(self) -> str:
        """`--backend`, else `DELIVERY_BACKEND`, else `nomad` in cluster mode and `docker` embedded."""
        chosen = getattr(self.args, "backend", None) or os.environ.get("DELIVERY_BACKEND")
        return chosen or ("nomad" if self.config.cluster else "docker")

    def backend(self, auth: RegistryAuth | None) -> Backend:
        """The execution backend; `auth` lets the local engine pull from the registry."""
        if self.backend_name() == "nomad":
            from rollout.executions.nomad import NomadBackend

            return NomadBackend(self.nomad or NomadClient(nomad_settings(self.config)))
        from rollout.executions.local_docker import LocalDockerBackend

        return LocalDockerBackend(DockerClient(), auth)

    def public_key(self) -> Path | None:
        """`--public-key`, else `DELIVERY_PUBLIC_KEY`, else `$DELIVERY_HOME/keys/signing.pub` when it exists."""
        given = getattr(self.args, "public_key", None) or os.environ.get("DELIVERY_PUBLIC_KEY")
        if given:
            return Path(given)
        default = state_home() / "keys" / "signing.pub"
        return default if default.is_file() else None

    def verifier(self, public_key: Path | None = None) -> ProvenanceVerifier:
        """Checks a candidate's signed attestation; without a key it refuses everything."""
        key = public_key or self.public_key()
        return RegistryVerifier(self.registry_client_for, key) if key else RefusingVerifier()

    def controller_for(self, environment: str, biomarker: str, *, verifier: ProvenanceVerifier | None = None,
                       on_action: Callable[[Action], None] | None = None,
                       clock: Callable[[], datetime] = _utcnow) -> Controller:
        """A controller for one rollout, on this configuration's store, scheduler and ledger."""
        return Controller(environment=environment, biomarker=biomarker, scheduler=self.scheduler, store=self.store,
                          verifier=verifier or self.verifier(), stats=self.stats(), clock=clock, on_action=on_action,
                          audit=self.audit())

    def rollouts(self) -> list[tuple[str, str]]:
        """Every (environment, biomarker) whose release state holds a rollout, in every environment."""
        return [(env, name) for env, name in self.store.pairs()
                if self.store.read(env, name).state.rollout is not None]

    def shadow_root(self, beside: Path | None = None) -> Path:
        """Where paired candidate runs write: `DELIVERY_SHADOW_ROOT`; on a cluster, next to the primary outputs
        (`beside/.shadow`, on the shared data volume every node mounts); embedded, `$DELIVERY_HOME/shadow`."""
        if os.environ.get("DELIVERY_SHADOW_ROOT"):
            return Path(os.environ["DELIVERY_SHADOW_ROOT"])
        if not self.config.cluster:
            return state_home() / "shadow"
        if beside is None:  # a folder on this machine only would fail every paired run at its bind mount
            raise ConfigError("paired candidate runs need a folder on the cluster's shared data volume",
                              hint="Set DELIVERY_SHADOW_ROOT to a folder on the share every Nomad node mounts.")
        return beside / ".shadow"

    def describe(self) -> dict[str, object]:
        """Which mode and systems of record are in use (no secrets), for `--json` outputs."""
        return {"mode": self.config.mode, "nomad": self.config.nomad_addr, "release_store": self.config.release_store,
                "config_file": str(self.config.source) if self.config.source else None}


class RegistryVerifier:
    """`RegistryProvenanceVerifier` against the registry the release's image is in."""

    def __init__(self, client_for_host: Callable[[str], RegistryClient], public_key: Path) -> None:
        self.client_for_host, self.public_key = client_for_host, public_key

    def verify(self, release: ReleaseRef) -> str:
        """The attestation digest of a correctly signed image, else ProvenanceRejected."""
        from rollout.provenance import RegistryProvenanceVerifier

        client = self.client_for_host(release.image.split("/", 1)[0])
        return RegistryProvenanceVerifier(client, self.public_key).verify(release)


class RefusingVerifier:
    """No provenance key configured: refuses, so nothing unverified is ever deployed."""

    def verify(self, release: ReleaseRef) -> str:
        """Always ProvenanceRejected."""
        from rollout.provenance import ProvenanceRejected

        raise ProvenanceRejected("no provenance verifier configured",
                                 hint="Pass --public-key (CI's signing.pub), set DELIVERY_PUBLIC_KEY, or keep it at "
                                      "$DELIVERY_HOME/keys/signing.pub, so the attestation can be checked.")


def compose(args: argparse.Namespace | None = None) -> Composition:
    """The composition for the flags given (`--nomad-addr`, `--namespace`, `--region`, `--registry`, ...)."""
    return Composition(root.load_config(args), args)
