"""The configuration every command reads: environment first, then `$DELIVERY_CONFIG`/`$DELIVERY_HOME/config.env`;
cluster mode never falls back to a local file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from delivery import compose, plugins
from delivery.cli import main
from delivery.errors import ConfigError
from delivery.release.state import SqliteReleaseStore

KEYS = ("NOMAD_ADDR", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL", "DELIVERY_CONFIG",
        "DELIVERY_RELEASE_STORE", "DELIVERY_ENV")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in KEYS:  # set then delete: the teardown also removes what a config file filled in
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_home_config_file_fills_unset_variables_and_the_environment_wins(home: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    home.mkdir()
    (home / "config.env").write_text(
        "# cluster\n\nexport NOMAD_ADDR=https://nomad.example.org:4646\nNOMAD_NAMESPACE = \"imaging\"\n"
        "DELIVERY_DATABASE_URL='postgresql://delivery@db/delivery'\nNOMAD_REGION=eu\n", encoding="utf-8")
    monkeypatch.setenv("NOMAD_REGION", "us")
    config = compose.load_config()
    assert config.cluster and config.mode == "cluster" and config.release_store == "nomad"
    assert (config.nomad_addr, config.namespace, config.region) == ("https://nomad.example.org:4646", "imaging", "us")
    assert config.ledger_url() == "postgresql://delivery@db/delivery" and config.source == home / "config.env"


def test_a_bad_line_is_named_by_file_and_line_and_every_command_says_so(home: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "delivery.env"
    path.write_text("NOMAD_ADDR=http://127.0.0.1:4646\nthis is not a setting\n", encoding="utf-8")
    monkeypatch.setenv("DELIVERY_CONFIG", str(path))
    assert main(["env", "list"]) == 1
    assert f"{path}:2: expected KEY=VALUE" in capsys.readouterr().err
    monkeypatch.setenv("DELIVERY_CONFIG", str(tmp_path / "missing.env"))
    with pytest.raises(ConfigError, match="not a file"):
        compose.load_config()


def test_cluster_mode_needs_the_shared_ledger_and_never_the_sqlite_store(home: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:4646")
    with pytest.raises(ConfigError, match="DELIVERY_DATABASE_URL is not set"):
        compose.load_config().ledger_url()
    monkeypatch.setenv("DELIVERY_RELEASE_STORE", "sqlite")
    with pytest.raises(ConfigError, match="local file"):
        compose.release_store(compose.load_config())
    assert not (home / "release-state.sqlite").exists() and not (home / "ledger.sqlite").exists()


def test_the_embedded_default_keeps_its_sqlite_files(home: Path) -> None:
    config = compose.load_config()
    assert not config.cluster and config.ledger_url() == f"sqlite:///{home / 'ledger.sqlite'}"
    store = compose.release_store(config)
    assert isinstance(store, SqliteReleaseStore) and store.path == home / "release-state.sqlite"


def test_release_stores_are_plugins_and_an_unknown_one_lists_the_installed(home: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"sqlite", "nomad"} <= set(plugins.names(compose.STORE_GROUP))
    monkeypatch.setenv("DELIVERY_RELEASE_STORE", "nomda")
    with pytest.raises(plugins.PluginError, match="Did you mean 'nomad'"):
        compose.release_store(compose.load_config())
    assert "NOMAD_ADDR" not in os.environ
