"""The committed JSON Schema is generated from the model and must stay current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.manifest.schema import render_schema

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "manifests/biomarker.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render_schema(), (
        "run `delivery manifest schema --write manifests/biomarker.schema.json`"
    )


def test_schema_forbids_unknown_keys_and_requires_the_core_fields() -> None:
    schema = json.loads(render_schema())
    assert schema["additionalProperties"] is False
    assert {"apiVersion", "kind", "name", "description", "owners", "image", "test", "variants"} <= set(schema["required"])


def test_check_flag_fails_on_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert main(["manifest", "schema", "--check", str(stale)]) == 1
    assert "--write" in capsys.readouterr().err
    assert main(["manifest", "schema", "--write", str(stale)]) == 0
    assert main(["manifest", "schema", "--check", str(stale)]) == 0


def test_write_flag_into_a_path_that_cannot_be_written_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert main(["manifest", "schema", "--write", str(tmp_path / "file" / "schema.json")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err
