"""Environment files: the committed examples validate, the schema is current, errors are located."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.environments import DEFAULT_DIR, FreezeWindow, load_environment, render_schema
from delivery.errors import ManifestError

REPO = Path(__file__).resolve().parents[3]


def test_committed_schema_is_current() -> None:
    assert (REPO / "manifests/environment.schema.json").read_text(encoding="utf-8") == render_schema(), (
        "run `delivery env schema --write manifests/environment.schema.json`")


@pytest.mark.parametrize("name", ["local", "staging", "production"])
def test_the_shipped_environments_validate(name: str) -> None:
    env = load_environment(name, DEFAULT_DIR)
    assert env.name == name and env.channels[0] == "candidate"


def test_problems_are_located_to_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (DEFAULT_DIR / "local.yaml").read_text(encoding="utf-8")
    bad = text.replace("registry: local", "registry: not a host!").replace("channels: [candidate, stable]",
                                                                           "chanels: [candidate]")
    (tmp_path / "local.yaml").write_text(bad, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_environment("local", tmp_path)
    rendered = caught.value.render()
    registry_line = bad.splitlines().index("registry: not a host!") + 1
    assert f"local.yaml:{registry_line}:11: registry:" in rendered
    assert "unknown key `chanels`" in rendered
    assert main(["env", "validate", str(tmp_path / "local.yaml")]) == 1
    assert f":{registry_line}:11:" in capsys.readouterr().err


def test_a_freeze_window_is_evaluated_in_its_time_zone() -> None:
    window = FreezeWindow(name="friday", days=["fri"], start="16:00", end="24:00", timezone="Europe/Amsterdam")
    assert window.active(datetime(2026, 5, 1, 15, 30, tzinfo=UTC))  # Friday 17:30 in Amsterdam
    assert not window.active(datetime(2026, 5, 1, 13, 30, tzinfo=UTC))  # Friday 15:30 there
    assert not window.active(datetime(2026, 5, 2, 15, 30, tzinfo=UTC))  # Saturday
