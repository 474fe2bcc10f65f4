"""The I/O edges release commands share: registry clients per environment, the state store, audit, keys."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from delivery import compose
from delivery.audit import AuditLog
from delivery.config import LOOPBACK, docker_config_credentials, registry_settings
from delivery.environments import Environment, RegistryTarget, load_environment
from delivery.paths import state_home
from delivery.provenance import VerifiedProvenance, verify_image
from delivery.registry import RegistryClient
from delivery.release.copy import Location
from delivery.release.promote import Verifier
from delivery.release.state import ReleaseStore
from delivery.secrets import from_env


def add_environment_flag(parser: argparse.ArgumentParser, *, required: bool = False, flag: str = "--env") -> None:
    """`--env ENV`: an environment from manifests/environments (or $DELIVERY_ENVIRONMENTS)."""
    parser.add_argument(flag, dest="env", metavar="ENV", required=required, default=None if required else "local",
                        help="environment name (manifests/environments/ENV.yaml); default: %(default)s")


def client_for(registry: str, credentials_env: str = "DELIVERY_REGISTRY", args: argparse.Namespace | None = None,
               cache: dict[str, RegistryClient] | None = None) -> RegistryClient:
    """A client for `registry` (`local`: the embedded default's, through delivery.config); one per address."""
    cache = cache if cache is not None else {}
    if registry == "local":
        settings = registry_settings(args)
        return cache.setdefault(settings.host, settings.client())
    if registry in cache:
        return cache[registry]
    user = os.environ.get(f"{credentials_env}_USER")
    password = from_env(f"{credentials_env}_PASSWORD", required=False)
    stored = docker_config_credentials(registry) if not (user and password) else None
    insecure = os.environ.get("DELIVERY_REGISTRY_INSECURE", "") not in ("", "0", "false")
    scheme = "http" if insecure or registry.startswith(LOOPBACK) else "https"
    if stored:
        user, password = stored
    return cache.setdefault(registry, RegistryClient(f"{scheme}://{registry}", user, password))


def locations(environment: Environment, name: str,
              args: argparse.Namespace | None = None) -> tuple[Location, Location]:
    """(where promotions into `environment` copy `name` from, where they copy it to); same client if same registry."""
    cache: dict[str, RegistryClient] = {}
    target = Location(client_for(environment.registry, environment.credentials_env, args, cache),
                      environment.repository(name))
    source_spec: RegistryTarget = environment.source()
    source_client = client_for(source_spec.registry, source_spec.credentials_env, args, cache)
    return Location(source_client, f"{source_spec.repository_prefix}/{name}"), target


def environment(name: str) -> Environment:
    """Load an environment by name (see delivery.environments)."""
    return load_environment(name)


def release_store() -> ReleaseStore:
    """The configured release state: Nomad Variables in cluster mode, else `$DELIVERY_HOME/release-state.sqlite`."""
    return compose.release_store(compose.load_config())


def audit_log() -> AuditLog:
    """The audit log in the configured ledger database (the shared one in cluster mode)."""
    return compose.audit_log(compose.load_config())


def default_public_key() -> Path:
    """`DELIVERY_PUBLIC_KEY` (as rollout deploy and the controller read it), else the embedded default's key
    (`$DELIVERY_HOME/keys/signing.pub`)."""
    configured = os.environ.get("DELIVERY_PUBLIC_KEY")
    return Path(configured) if configured else state_home() / "keys" / "signing.pub"


def verifier(public_key: Path) -> Verifier:
    """Check an image's signed provenance with `public_key` (delivery.provenance)."""
    def verify(location: Location, digest: str) -> VerifiedProvenance:
        return verify_image(location.client, location.repository, digest, public_key)
    return verify
