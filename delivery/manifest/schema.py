"""The committed JSON Schema of `biomarker.yaml`, generated from the model."""

from __future__ import annotations

import json
from typing import Any

from delivery.manifest.model import Biomarker

SCHEMA_ID = "https://biomarker-delivery.invalid/schemas/biomarker.schema.json"


def biomarker_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for editors and other tools."""
    schema = Biomarker.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render_schema() -> str:
    """The exact text of `manifests/biomarker.schema.json`."""
    return json.dumps(biomarker_schema(), indent=2, sort_keys=True) + "\n"
