"""Validate any user-written YAML file against a pydantic model, every problem located FILE:LINE:COLUMN.

The manifest's own validation (`validate.py`) adds schema-driven "did you mean" hints; other user files (trigger
rules, …) get the same located loader and the same mapping of pydantic errors to positions through this helper.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from delivery.errors import ManifestError
from delivery.manifest.source import Located, load_file
from delivery.manifest.validate import model_problems, sorted_problems

M = TypeVar("M", bound=BaseModel)


def validate_model(located: Located, model: type[M]) -> M:
    """`model` from parsed YAML; raises ManifestError listing every problem with its position."""
    try:
        return model.model_validate(located.data)
    except ValidationError as e:
        raise ManifestError(sorted_problems(model_problems(located, e))) from None


def load_model(path: Path, model: type[M], display: str | None = None) -> M:
    """Read, parse (hostile-input safe) and validate one YAML file as `model`."""
    return validate_model(load_file(path, display), model)
