"""Where the embedded default keeps its state: release state, ledger, keys, local registry."""

from __future__ import annotations

import os
from pathlib import Path


def state_home() -> Path:
    """`DELIVERY_HOME`, or `$XDG_STATE_HOME/biomarker-delivery` (~/.local/state/biomarker-delivery)."""
    explicit = os.environ.get("DELIVERY_HOME")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "biomarker-delivery"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_database_url() -> str:
    """The embedded default's SQL database (ledger and audit log): a SQLite file in the state home."""
    return os.environ.get("DELIVERY_DATABASE_URL") or f"sqlite:///{state_home() / 'ledger.sqlite'}"
