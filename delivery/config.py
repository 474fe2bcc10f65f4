"""Where the registry is and who we are to it: flags, environment, docker config, or `delivery local up`."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path

from delivery.docker import RegistryAuth
from delivery.errors import ConfigError
from delivery.localenv import read_registry_record
from delivery.paths import state_home
from delivery.registry import RegistryClient
from delivery.secrets import Secret, from_env

LOOPBACK = ("127.", "localhost", "[::1]")


@dataclass(frozen=True)
class RegistrySettings:
    """One registry's address and credentials; the password never prints."""

    host: str
    username: str
    password: Secret

    @property
    def url(self) -> str:
        """Plain HTTP for loopback registries (as the engine treats them), HTTPS otherwise."""
        insecure = os.environ.get("DELIVERY_REGISTRY_INSECURE", "") not in ("", "0", "false")
        return f"{'http' if insecure or self.host.startswith(LOOPBACK) else 'https'}://{self.host}"

    def client(self) -> RegistryClient:
        """A registry API client with these credentials."""
        return RegistryClient(self.url, self.username, self.password)

    def auth(self) -> RegistryAuth:
        """The same credentials for the Docker engine."""
        return RegistryAuth(self.host, self.username, self.password)


def add_registry_flag(parser: argparse.ArgumentParser) -> None:
    """`--registry HOST:PORT` (else DELIVERY_REGISTRY, else the local registry of `delivery local up`)."""
    parser.add_argument("--registry", metavar="HOST:PORT",
                        help="registry address (default: $DELIVERY_REGISTRY, else the one `delivery local up` started)")


def local_dir() -> Path:
    """Where `delivery local up` records the embedded default's registry and engine."""
    return state_home() / "local"


def registry_settings(args: argparse.Namespace | None = None) -> RegistrySettings:
    """The registry from `--registry`, DELIVERY_REGISTRY or the local default, with its credentials."""
    host = getattr(args, "registry", None) or os.environ.get("DELIVERY_REGISTRY")
    if host:
        return _explicit(host.strip().rstrip("/"))
    return _local_default()


def _explicit(host: str) -> RegistrySettings:
    username = os.environ.get("DELIVERY_REGISTRY_USER")
    password = from_env("DELIVERY_REGISTRY_PASSWORD", required=False)
    if username and password:
        return RegistrySettings(host, username, password)
    stored = docker_config_credentials(host)
    if stored:
        return RegistrySettings(host, stored[0], stored[1])
    raise ConfigError(
        f"no credentials for the registry {host}",
        hint="Export DELIVERY_REGISTRY_USER and DELIVERY_REGISTRY_PASSWORD (or DELIVERY_REGISTRY_PASSWORD_FILE), "
             "or log in with `docker login` so ~/.docker/config.json holds them.",
    )


def _local_default() -> RegistrySettings:
    record, password_file = local_dir() / "registry.json", local_dir() / "registry.password"
    data = read_registry_record(record)
    if data is None or not password_file.exists():
        raise ConfigError("no registry configured",
                          hint="Run `delivery local up` for the embedded local registry, or set DELIVERY_REGISTRY.")
    return RegistrySettings(str(data["host"]), str(data["username"]),
                            Secret(password_file.read_text(encoding="utf-8").strip()))


def docker_config_credentials(host: str) -> tuple[str, Secret] | None:
    """User and password stored by `docker login` for `host` (inline `auth` entries only)."""
    config = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"
    try:
        auths = json.loads(config.read_text(encoding="utf-8")).get("auths") or {}
    except (OSError, ValueError):
        return None
    entry = auths.get(host) or auths.get(f"http://{host}") or auths.get(f"https://{host}") or {}
    try:
        user, _, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, Secret(password)) if user and password else None
