"""The one default environment of every `rollout` command: `$DELIVERY_ENV`, else the embedded default `local`."""

from __future__ import annotations

import os

EMBEDDED_DEFAULT = "local"  # manifests/environments/local.yaml


def default_environment() -> str:
    """`DELIVERY_ENV` (older name `DELIVERY_ENVIRONMENT` still read), else `local`."""
    return os.environ.get("DELIVERY_ENV") or os.environ.get("DELIVERY_ENVIRONMENT") or EMBEDDED_DEFAULT
