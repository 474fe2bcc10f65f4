"""Builds the execution services from command-line flags and the one configuration (`rollout.compose`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from delivery import clikit
from delivery.config import add_registry_flag
from delivery.errors import ConfigError
from delivery.paths import state_home
from delivery.release.state import ReleaseState
from rollout.compose import Composition, RefusingVerifier, compose
from rollout.environment import default_environment
from rollout.executions.ledger import Ledger
from rollout.executions.manifests import FolderManifests
from rollout.executions.model import ExecutionError, Resolved
from rollout.executions.pins import RegistryPinResolver
from rollout.executions.rollback import ControllerRollback
from rollout.executions.submit import Submitter


def add_service_flags(parser: argparse.ArgumentParser, *, backend: bool = True) -> None:
    """Flags shared by submit, recall and triggers."""
    parser.add_argument("--env", default=default_environment(),
                        help="environment whose channels, freezes and rollout apply (default: $DELIVERY_ENV or local)")
    parser.add_argument("--org", type=Path, default=Path(os.environ.get("DELIVERY_ORG_DIR", "biomarkers")),
                        help="folder of biomarker repositories holding NAME/biomarker.yaml (default: biomarkers)")
    if backend:
        parser.add_argument("--backend", choices=("docker", "nomad"), default=_default_backend(),
                            help="run on the local Docker engine or dispatch to Nomad (default: nomad when a cluster "
                                 "is configured, else docker; $DELIVERY_BACKEND)")
    add_registry_flag(parser)
    clikit.add_json_flag(parser)


def _default_backend() -> str:
    try:
        return compose().backend_name()
    except ConfigError:
        return "docker"  # the command itself reports the broken configuration


def ledger(args: argparse.Namespace | None = None) -> Ledger:
    """The configured ledger (DELIVERY_DATABASE_URL; the embedded SQLite file only without a cluster)."""
    return compose(args).ledger


def submitter(args: argparse.Namespace) -> Submitter:
    """A Submitter for the flags given."""
    c = compose(args)
    settings = c.registry()
    return Submitter(ledger=c.ledger, store=c.store, resolver=RegistryPinResolver(settings.client()),
                     manifests=FolderManifests(args.org), backend=c.backend(settings.auth()),
                     shadow_root=c.shadow_root(args.out.resolve().parent if getattr(args, "out", None) else None))


def collector(args: argparse.Namespace) -> Submitter:
    """A Submitter that only collects executions already dispatched (no registry needed: nothing is resolved)."""
    c = compose(args)
    return Submitter(ledger=c.ledger, store=c.store, resolver=_NoPins(), manifests=FolderManifests(args.org),
                     backend=c.backend(None),
                     shadow_root=state_home() / "shadow")  # collects only: starts no paired run


class _NoPins:
    def resolve(self, spec: str, *, release: ReleaseState, image_repository: str) -> Resolved:
        raise ExecutionError("collecting an execution resolves no pin", hint="Use `rollout submit` to submit.")


def controller_rollback(environments: list[str], args: argparse.Namespace | None = None) -> ControllerRollback:
    """The controller's rollback where rollouts are kept (the same store and scheduler `rollout rollback` uses)."""
    c: Composition = compose(args)
    # A rollback never verifies a candidate; if asked to, nothing unverified may pass.
    return ControllerRollback(c.store, environments,
                              lambda env, name: c.controller_for(env, name, verifier=RefusingVerifier()))


