"""Input identity: an unreadable study is a clear ExecutionError (an API 4xx, a CLI message), never an OSError."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.executions.model import ExecutionError
from rollout.executions.sandbox import input_identity


def test_a_study_file_that_cannot_be_read_is_named() -> None:
    unreadable = Path("/proc/self/mem")  # a regular file whose first read fails, even for root
    if not unreadable.is_file():
        pytest.skip("no /proc on this system")
    with pytest.raises(ExecutionError) as caught:
        input_identity(unreadable)
    assert "/proc/self/mem" in caught.value.message
