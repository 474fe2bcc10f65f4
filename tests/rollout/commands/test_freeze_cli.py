"""`rollout freeze` with values that would store a freeze nobody meant (or crash): refused, nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "DELIVERY_DATABASE_URL", "DELIVERY_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("extra", [("--hours", "1e308"), ("--hours", "nan"), ("--hours", "-5"), ("--hours", "0"),
                                   ("--cron", "0 18 * * 5", "--duration", "nan"),
                                   ("--cron", "0 18 * * 5", "--duration", "1e308"),
                                   ("--pin", "not a version")])
def test_a_freeze_that_could_not_hold_is_a_usage_error_and_nothing_is_stored(
        home: Path, extra: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["freeze", "emphysema", "--reason", "weekend", "--owner", "rm", *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and extra[-2] in err
    store = SqliteReleaseStore(home / "release-state.sqlite")
    assert store.read("local", "emphysema").state.freezes == ()


def test_a_valid_freeze_is_still_stored(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["freeze", "emphysema", "--reason", "trial", "--owner", "qa", "--pin", "1.4.2", "--hours", "2"]) == 0
    [stored] = SqliteReleaseStore(home / "release-state.sqlite").read("local", "emphysema").state.freezes
    assert stored.version == "1.4.2" and stored.expires_at is not None
