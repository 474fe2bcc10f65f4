"""Every `rollout` command acts on `$DELIVERY_ENV`, else the embedded default `local` (never a guessed `prod`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.cli import main
from rollout.executions.triggers.rules import load_rules

TRIGGERS = """\
apiVersion: delivery/v1
kind: Triggers
rules:
  - {name: inbox, on: file_created, folder: /incoming, submit: alpha@stable, output: /results}
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "DELIVERY_ENV", "DELIVERY_ENVIRONMENT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    return tmp_path / "home"


def _frozen_in(home: Path) -> set[str]:
    store = SqliteReleaseStore(home / "release-state.sqlite")
    return {env for env in ("local", "prod", "staging") if store.read(env, "alpha").state.freezes}


def test_rollout_commands_default_to_the_embedded_local_environment(home: Path) -> None:
    assert main(["freeze", "alpha", "--reason", "audit week", "--owner", "qa"]) == 0
    assert _frozen_in(home) == {"local"}


def test_delivery_env_chooses_the_environment_of_every_command(home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_ENV", "staging")
    assert main(["freeze", "alpha", "--reason", "audit week", "--owner", "qa"]) == 0
    assert _frozen_in(home) == {"staging"}
    (tmp_path / "triggers.yaml").write_text(TRIGGERS, encoding="utf-8")
    assert load_rules(tmp_path / "triggers.yaml").rules[0].environment == "staging"
