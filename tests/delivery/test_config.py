"""Registry settings: flag, environment, docker config file, or the local registry of `delivery local up`."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from delivery.config import registry_settings
from delivery.errors import ConfigError

VARS = ("DELIVERY_REGISTRY", "DELIVERY_REGISTRY_USER", "DELIVERY_REGISTRY_PASSWORD", "DELIVERY_REGISTRY_PASSWORD_FILE",
        "DELIVERY_REGISTRY_INSECURE")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))


def test_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DELIVERY_REGISTRY_USER", "ci")
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", "pw-from-env")
    settings = registry_settings(argparse.Namespace(registry="127.0.0.1:5999"))
    assert (settings.host, settings.username, settings.url) == ("127.0.0.1:5999", "ci", "http://127.0.0.1:5999")
    assert "pw-from-env" not in repr(settings)
    monkeypatch.setenv("DELIVERY_REGISTRY", "registry.example.org")
    assert registry_settings().url == "https://registry.example.org"


def test_docker_config_credentials(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(b"robot:from-docker-login").decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {"reg.example.org": {"auth": auth}}}))
    settings = registry_settings(argparse.Namespace(registry="reg.example.org"))
    assert settings.username == "robot" and settings.password.reveal() == "from-docker-login"


def test_missing_credentials_and_missing_local_registry_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="no credentials") as caught:
        registry_settings(argparse.Namespace(registry="reg.example.org"))
    assert "DELIVERY_REGISTRY_USER" in (caught.value.hint or "")
    with pytest.raises(ConfigError, match="no registry configured") as caught:
        registry_settings()
    assert "delivery local up" in (caught.value.hint or "")


def test_local_registry_record(tmp_path: Path) -> None:
    local = tmp_path / "home" / "local"
    local.mkdir(parents=True)
    (local / "registry.json").write_text(json.dumps({"host": "127.0.0.1:5123", "username": "delivery"}))
    (local / "registry.password").write_text("local-secret\n")
    settings = registry_settings()
    assert (settings.host, settings.password.reveal()) == ("127.0.0.1:5123", "local-secret")


@pytest.mark.parametrize("record", ["{bad", "{}", '{"host": "127.0.0.1:5123"}', "[]", '{"host": 5, "username": "d"}'])
def test_damaged_local_registry_record_is_a_clear_error(tmp_path: Path, record: str) -> None:
    local = tmp_path / "home" / "local"
    local.mkdir(parents=True)
    (local / "registry.json").write_text(record)
    (local / "registry.password").write_text("local-secret\n")
    with pytest.raises(ConfigError, match=r"registry\.json is damaged") as caught:
        registry_settings()
    assert "delivery local up" in (caught.value.hint or "")
