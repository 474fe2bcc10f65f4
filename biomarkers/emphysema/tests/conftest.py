"""Shared fixtures; registers the `gpu` marker so the suite runs with or without pyproject.toml."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py, also when run as /app/tests in the image


def pytest_configure(config: pytest.Config) -> None:
    """Register markers used by this suite."""
    config.addinivalue_line("markers", "gpu: needs CuPy and a CUDA GPU (skipped when cupy is not importable)")
