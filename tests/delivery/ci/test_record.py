"""The run record: a damaged run.json is a clear error naming the file, never a traceback in a later stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.ci.record import RunRecord
from delivery.errors import ConfigError


@pytest.mark.parametrize("text", ["{trunc", "[]", "{}", '{"stages": []}', '{"stages": {"build": 1}}'])
def test_a_damaged_run_record_is_a_config_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "run.json").write_text(text)
    with pytest.raises(ConfigError, match=r"run\.json is not a run record") as caught:
        RunRecord.open(tmp_path)
    assert "Delete it" in (caught.value.hint or "")


def test_a_missing_record_starts_empty_and_a_saved_one_reopens(tmp_path: Path) -> None:
    record = RunRecord.open(tmp_path)
    record.reset({"commit": "c0ffee"})
    assert RunRecord.open(tmp_path).get("context") == {"commit": "c0ffee"}
