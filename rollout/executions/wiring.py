"""Builds the execution services from command-line flags and the environment (the embedded default by default)."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

from delivery import clikit
from delivery.config import add_registry_flag, registry_settings
from delivery.docker import DockerClient
from delivery.paths import default_database_url, state_home
from delivery.release.state import ReleaseState, ReleaseStore, SqliteReleaseStore
from rollout.controller.loop import Controller
from rollout.controller.model import ReleaseRef
from rollout.environment import default_environment
from rollout.executions.backend import Backend
from rollout.executions.ledger import Ledger
from rollout.executions.local_docker import LocalDockerBackend
from rollout.executions.manifests import FolderManifests
from rollout.executions.model import ExecutionError, Resolved
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.rollback import ControllerRollback
from rollout.executions.stats import LedgerExecutionStats
from rollout.executions.submit import Submitter
from rollout.scheduler import LocalScheduler, Scheduler


def add_service_flags(parser: argparse.ArgumentParser, *, backend: bool = True) -> None:
    """Flags shared by submit, recall and triggers."""
    parser.add_argument("--env", default=default_environment(),
                        help="environment whose channels, freezes and rollout apply (default: $DELIVERY_ENV or local)")
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
    return Submitter(ledger=ledger(), store=store, resolver=RegistryPinResolver(settings.client()),
                     manifests=FolderManifests(args.org),
                     backend=_backend(args.backend, settings.auth()), shadow_root=state_home() / "shadow")


def collector(args: argparse.Namespace) -> Submitter:
    """A Submitter that only collects executions already dispatched (no registry needed: nothing is resolved)."""
    store = release_store()
    return Submitter(ledger=ledger(), store=store, resolver=_NoPins(), manifests=FolderManifests(args.org),
                     backend=_backend(args.backend, None), shadow_root=state_home() / "shadow")


class _NoPins:
    def resolve(self, spec: str, *, release: ReleaseState, image_repository: str) -> Resolved:
        raise ExecutionError("collecting an execution resolves no pin", hint="Use `rollout submit` to submit.")


def _backend(name: str, auth: object) -> Backend:
    if name == "nomad":
        from rollout.executions.nomad import NomadBackend
        from rollout.nomad import NomadClient, NomadSettings

        return NomadBackend(NomadClient(NomadSettings.from_env()))
    from delivery.docker import RegistryAuth

    return LocalDockerBackend(DockerClient(), auth if isinstance(auth, RegistryAuth) else None)


def controller_rollback(environments: list[str]) -> ControllerRollback:
    """The controller's rollback where rollouts are kept: Nomad when NOMAD_ADDR is set, else the embedded default
    (the same choice `rollout rollback` makes)."""
    store, scheduler = rollout_backend()
    stats = LedgerExecutionStats(ledger())

    def controller_for(environment: str, biomarker: str) -> Controller:
        return Controller(environment=environment, biomarker=biomarker, scheduler=scheduler, store=store,
                          verifier=_RefuseVerify(), stats=stats, clock=lambda: datetime.now(UTC))

    return ControllerRollback(store, environments, controller_for)


def rollout_backend() -> tuple[ReleaseStore, Scheduler]:
    """Release store and scheduler of the rollout controller."""
    if os.environ.get("NOMAD_ADDR"):
        from rollout.nomad import NomadClient, NomadSettings
        from rollout.nomad_state import NomadReleaseStore

        client = NomadClient(NomadSettings.from_env())
        return NomadReleaseStore(client), client
    return release_store(), LocalScheduler(state_home() / "local-scheduler.json")


class _RefuseVerify:
    """A rollback never verifies a candidate; if asked to, nothing unverified may pass."""

    def verify(self, release: ReleaseRef) -> str:
        raise ExecutionError("a recall's rollback does not verify candidates",
                             hint="Drive the rollout with `rollout watch --public-key …`.")
