"""Builds the execution services from command-line flags and the environment (the embedded default by default)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from delivery import clikit
from delivery.audit import AuditEvent, AuditLog
from delivery.config import add_registry_flag, registry_settings
from delivery.docker import DockerClient
from delivery.paths import default_database_url, state_home
from delivery.release.state import SqliteReleaseStore
from rollout.executions.backend import Backend
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FolderManifests
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.routing import ReleaseStoreRouting
from rollout.executions.submit import Submitter


def add_service_flags(parser: argparse.ArgumentParser, *, backend: bool = True) -> None:
    """Flags shared by submit, recall and triggers."""
    parser.add_argument("--env", default=os.environ.get("DELIVERY_ENVIRONMENT", "local"),
                        help="environment whose channels, freezes and rollout apply (default: $DELIVERY_ENVIRONMENT "
                             "or local)")
    parser.add_argument("--org", type=Path, default=Path(os.environ.get("DELIVERY_ORG_DIR", "biomarkers")),
                        help="folder of biomarker repositories holding NAME/biomarker.yaml (default: biomarkers)")
    if backend:
        parser.add_argument("--backend", choices=("docker", "nomad"), default="docker",
                            help="run on the local Docker engine (default) or dispatch to Nomad ($NOMAD_ADDR)")
    add_registry_flag(parser)
    clikit.add_json_flag(parser)


def ledger() -> Ledger:
    """The ledger at DELIVERY_DATABASE_URL, else the embedded SQLite file."""
    return Ledger(default_database_url())


def release_store() -> SqliteReleaseStore:
    return SqliteReleaseStore(state_home() / "release-state.sqlite")


def submitter(args: argparse.Namespace) -> Submitter:
    """A Submitter for the flags given."""
    settings = registry_settings(args)
    store = release_store()
    return Submitter(ledger=ledger(), store=store, resolver=RegistryPinResolver(settings.client(), store),
                     routing=ReleaseStoreRouting(store), manifests=FolderManifests(args.org),
                     backend=_backend(args.backend, settings.auth()), shadow_root=state_home() / "shadow")


def _backend(name: str, auth: object) -> Backend:
    if name == "nomad":
        from rollout.executions.nomad import NomadBackend
        from rollout.nomad import NomadClient, NomadSettings

        return NomadBackend(NomadClient(NomadSettings.from_env()))
    from delivery.docker import RegistryAuth

    return LocalDockerBackend(DockerClient(), auth if isinstance(auth, RegistryAuth) else None)


class AuditedRollback:
    """The recall's rollback until the controller's one is wired: records the request and says what to run."""

    def __init__(self, audit: AuditLog, environment: str) -> None:
        self._audit, self._environment = audit, environment

    def rollback(self, biomarker: str, version: str, reason: str) -> list[str]:
        store = release_store()
        state = store.read(self._environment, biomarker).state
        tracks = [name for name, pin in state.channels.items() if pin.version == version]
        if not tracks:
            return [f"{version} is on no channel of {self._environment}; nothing to roll back"]
        self._audit.append(AuditEvent("rollback-requested", f"{biomarker}@{version}", reason,
                                      details={"environment": self._environment, "channels": tracks}))
        return [f"{version} is {'/'.join(tracks)} in {self._environment}: run `rollout rollback {biomarker} "
                f"--env {self._environment}` (requested and audited)"]
