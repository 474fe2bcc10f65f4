"""The composition root's delivery half: one configuration decides which release store, ledger and registry every
command and the API use.

Configuration is the process environment, filled in (never overridden) by an optional file of `KEY=VALUE` lines:
`$DELIVERY_CONFIG`, else `$DELIVERY_HOME/config.env`. Cluster mode is on when `--nomad-addr` or `NOMAD_ADDR` names
a Nomad: release state then lives in Nomad Variables (the `nomad` plugin of the `delivery.release_store` group,
registered by the rollout package) and the ledger must be the shared `DELIVERY_DATABASE_URL`; no command falls back
to a local file. Without a cluster the embedded default keeps its SQLite files under `$DELIVERY_HOME`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from delivery import plugins
from delivery.audit import AuditLog
from delivery.errors import ConfigError
from delivery.paths import cluster_database_error, default_database_url, state_home
from delivery.release.state import ReleaseStore, SqliteReleaseStore

STORE_GROUP = "delivery.release_store"
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


@dataclass(frozen=True)
class Config:
    """Where release state, the ledger and Nomad are; secrets stay in the environment (`NOMAD_TOKEN`, ...)."""

    nomad_addr: str | None = None
    namespace: str | None = None
    region: str | None = None
    database_url: str | None = None
    release_store: str = "sqlite"
    source: Path | None = None

    @property
    def cluster(self) -> bool:
        """True when a Nomad cluster is configured: one shared truth, no local files."""
        return bool(self.nomad_addr)

    @property
    def mode(self) -> str:
        """`cluster` or `embedded`, as `--json` outputs name it."""
        return "cluster" if self.cluster else "embedded"

    def ledger_url(self) -> str:
        """The ledger and audit database; in cluster mode only an explicit `DELIVERY_DATABASE_URL`."""
        if self.database_url:
            return self.database_url
        if self.cluster:
            raise cluster_database_error(str(self.nomad_addr))
        return default_database_url()


def config_file() -> Path | None:
    """`$DELIVERY_CONFIG` (must exist), else `$DELIVERY_HOME/config.env` when present."""
    explicit = os.environ.get("DELIVERY_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"DELIVERY_CONFIG names {path}, which is not a file",
                              hint="Point DELIVERY_CONFIG at a file of KEY=VALUE lines, or unset it.")
        return path
    default = state_home(create=False) / "config.env"
    return default if default.is_file() else None


def read_config_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (`#` comments, blank lines, `export `, one pair of quotes allowed); errors name FILE:LINE."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {line.split('=')[0][:40]!r}",
                              hint="Write one setting per line, e.g. NOMAD_ADDR=https://nomad.example.org:4646.")
        value = match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[match.group(1)] = value
    return values


def apply_config_file() -> Path | None:
    """Fill unset environment variables from the configuration file, so every reader sees one configuration."""
    path = config_file()
    if path is not None:
        for key, value in read_config_file(path).items():
            os.environ.setdefault(key, value)
    return path


def load_config(args: argparse.Namespace | None = None) -> Config:
    """The configuration: `--nomad-addr/--namespace/--region` flags, then the environment, then the file."""
    source = apply_config_file()
    env = os.environ
    address = getattr(args, "nomad_addr", None) or env.get("NOMAD_ADDR") or None
    store = env.get("DELIVERY_RELEASE_STORE") or ("nomad" if address else "sqlite")
    return Config(nomad_addr=address, namespace=getattr(args, "namespace", None) or env.get("NOMAD_NAMESPACE"),
                  region=getattr(args, "region", None) or env.get("NOMAD_REGION"),
                  database_url=env.get("DELIVERY_DATABASE_URL") or None, release_store=store, source=source)


def release_store(config: Config) -> ReleaseStore:
    """The release store the configuration names, through the `delivery.release_store` plugin group."""
    make = cast(Callable[[Config], ReleaseStore], plugins.factory(STORE_GROUP, config.release_store))
    return make(config)


def sqlite_release_store(config: Config) -> ReleaseStore:
    """The embedded default's `$DELIVERY_HOME/release-state.sqlite` (refused in cluster mode: no second truth)."""
    if config.cluster:
        raise ConfigError(f"the sqlite release store is a local file, but Nomad is configured ({config.nomad_addr})",
                          hint="Unset DELIVERY_RELEASE_STORE (cluster mode keeps release state in Nomad Variables).")
    return SqliteReleaseStore(state_home() / "release-state.sqlite")


def audit_log(config: Config) -> AuditLog:
    """The audit log in the ledger database."""
    return AuditLog(config.ledger_url())


