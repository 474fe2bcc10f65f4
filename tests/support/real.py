"""Real components: skip with the reason when missing, fail instead under REQUIRE_REAL=1."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_real() -> bool:
    """True when CI demands every real component (REQUIRE_REAL=1)."""
    return os.environ.get("REQUIRE_REAL", "") not in ("", "0", "false", "no")


def missing(component: str, reason: str) -> NoReturn:
    """Skip the test, or fail it under REQUIRE_REAL=1, naming what is missing."""
    message = f"{component} is not available: {reason}"
    if require_real():
        pytest.fail(f"REQUIRE_REAL=1 but {message}", pytrace=False)
    pytest.skip(message)


def need_binary(name: str, package: str) -> str:
    """Path of `name`, or skip/fail saying which Debian package provides it."""
    path = shutil.which(name)
    if path is None:
        missing(name, f"install Debian's {package}")
    return path
