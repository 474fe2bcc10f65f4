"""The biomarker manifest: model, hostile-input-safe loading, validation and JSON Schema."""

from __future__ import annotations

from delivery.manifest.model import Biomarker, Resources, Variant, duration_seconds
from delivery.manifest.validate import load_manifest, parse_manifest

__all__ = ["Biomarker", "Resources", "Variant", "duration_seconds", "load_manifest", "parse_manifest"]
