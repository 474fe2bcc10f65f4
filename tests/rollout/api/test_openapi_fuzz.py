"""schemathesis against the committed OpenAPI document on a real server, with every check: no 5xx, every status
code and header documented, bodies matching their schemas, invalid data refused, valid data accepted, Allow on 405.

Valid data may still be refused with 422 for facts only the running server knows (an environment it does not
serve, a study that is not on the input volume), so positive_data_acceptance also expects 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.rollout.api.conftest import Api
from tests.rollout.executions.conftest import Builds

DOCUMENT = Path(__file__).resolve().parents[3] / "manifests" / "openapi.json"
CONFIG = SchemathesisConfig.from_str("""
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
""")
schema = schemathesis.openapi.from_path(str(DOCUMENT), config=CONFIG)


@pytest.mark.parametrize("role", ["developer", "release-manager"])
@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_request_makes_the_api_fail(case: Any, role: str, api: Api, builds: Builds) -> None:
    response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {api.tokens[role]}"}, timeout=30)
    case.validate_response(response)
