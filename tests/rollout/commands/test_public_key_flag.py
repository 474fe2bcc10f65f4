"""The "no provenance verifier" hint says `--public-key`: every command that can hit it takes that flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.cli import main
from rollout.controller import operations
from rollout.scheduler import LocalScheduler
from tests.support.nomad_world import ENV, Clock, manifest, release

DRIVING = ("deploy", "controller", "promote", "pause", "resume", "abort", "rollback")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "DELIVERY_DATABASE_URL", "DELIVERY_PUBLIC_KEY", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_ENV", ENV)
    return tmp_path / "home"


@pytest.mark.parametrize("command", DRIVING)
def test_every_command_that_drives_the_controller_documents_public_key(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--public-key" in capsys.readouterr().out


def test_the_controller_accepts_the_public_key_its_hint_asks_for(home: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    m = manifest()
    operations.start_rollout(store=SqliteReleaseStore(home / "release-state.sqlite"),
                             scheduler=LocalScheduler(home / "local-scheduler.json"), manifest=m, variant="fast",
                             release=release(m.name, "1.0.0"), environment=ENV, now=Clock()())
    assert main(["controller", "--once"]) == 0  # the refusal is logged for this rollout; others would go on
    hint = capsys.readouterr().err
    assert "no provenance verifier configured" in hint and "--public-key" in hint
    key = tmp_path / "signing.pub"
    key.write_text("not a key\n")
    code = main(["controller", "--once", "--public-key", str(key)])
    err = capsys.readouterr().err
    assert code == 0 and "unrecognized arguments" not in err and "no provenance verifier" not in err
    assert m.name in err  # the bad key is reported against the rollout
