"""`mypy --strict` and `ruff` stay clean on the product packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.real import missing

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    if shutil.which(name) is None and not (Path(sys.executable).parent / name).exists():
        missing(name, "install the dev extra: pip install -e .[dev]")
    return [sys.executable, "-m", name]


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    done = subprocess.run([*_tool("ruff"), "check", "delivery", "rollout"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    done = subprocess.run([*_tool("mypy"), "--strict", "delivery", "rollout"], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
