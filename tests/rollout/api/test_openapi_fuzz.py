"""schemathesis against the committed OpenAPI document on a real server: no input makes the API answer 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.rollout.api.conftest import Api
from tests.rollout.executions.conftest import Builds

DOCUMENT = Path(__file__).resolve().parents[3] / "manifests" / "openapi.json"
schema = schemathesis.openapi.from_path(str(DOCUMENT))


@pytest.mark.parametrize("role", ["developer", "release-manager"])
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_the_api_fail(case: Any, role: str, api: Api, builds: Builds) -> None:
    response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {api.tokens[role]}"}, timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
