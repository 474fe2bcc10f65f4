"""Where the embedded default keeps its state: release state, ledger, keys, local registry."""

from __future__ import annotations

import os
from pathlib import Path

from delivery.errors import ConfigError


def state_home(*, create: bool = True) -> Path:
    """`DELIVERY_HOME`, or `$XDG_STATE_HOME/biomarker-delivery` (~/.local/state/biomarker-delivery)."""
    explicit = os.environ.get("DELIVERY_HOME")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "biomarker-delivery"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url() -> str:
    """`DELIVERY_DATABASE_URL`, else the embedded default's SQLite file in the state home (never with a cluster)."""
    explicit = os.environ.get("DELIVERY_DATABASE_URL")
    if explicit:
        return explicit
    if os.environ.get("NOMAD_ADDR"):
        raise cluster_database_error(os.environ["NOMAD_ADDR"])
    return f"sqlite:///{state_home() / 'ledger.sqlite'}"


def cluster_database_error(nomad_addr: str) -> ConfigError:
    """Cluster mode without a shared ledger: a local SQLite file would be a second truth nobody else reads."""
    return ConfigError(
        f"a cluster is configured (Nomad at {nomad_addr}) but DELIVERY_DATABASE_URL is not set",
        hint="Set DELIVERY_DATABASE_URL to the shared ledger (e.g. postgresql://delivery@db.example.org/delivery) "
             "in the environment or in $DELIVERY_CONFIG; in cluster mode no command writes a local SQLite file.")
