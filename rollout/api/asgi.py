"""Entry points for uvicorn: the app factory each worker process calls, and the OpenAPI document."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from fastapi import FastAPI

from rollout.api.app import create_app
from rollout.api.services import ApiConfig, Services, services_from_env


def app() -> FastAPI:
    """The application of one worker process, configured from DELIVERY_API_* (set by `rollout serve`)."""
    configure_logging()
    return create_app(services_from_env())


def configure_logging() -> None:
    """Access log lines are already JSON: write them to stderr as they are."""
    logger = logging.getLogger("rollout.api.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def openapi_document() -> dict[str, Any]:
    """The contract: the OpenAPI document of the routes (no service is touched to build it)."""
    schema_only = cast(Services, SimpleNamespace(config=ApiConfig(Path("/nonexistent"), Path("/nonexistent"))))
    return create_app(schema_only).openapi()


def render_openapi() -> str:
    """The committed form of the document (manifests/openapi.json)."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
