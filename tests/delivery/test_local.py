"""`delivery local up|status|down`: a persistent loopback registry that later commands find without flags."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.config import registry_settings
from tests.support.real import need_binary


def test_local_up_starts_then_reuses_and_down_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, docker_engine: object, capsys: pytest.CaptureFixture[str]
) -> None:
    need_binary("docker-registry", "docker-registry")
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path))
    monkeypatch.delenv("DELIVERY_REGISTRY", raising=False)
    try:
        assert main(["local", "up", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["registry_reused"] is False
        password = tmp_path / "local" / "registry.password"
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        registry_settings().client().ping()  # found with no flags, credentials accepted
        assert main(["local", "up", "--json"]) == 0
        second = json.loads(capsys.readouterr().out)
        assert second["registry_reused"] is True and second["registry_host"] == first["registry_host"]
        assert password.read_text() not in json.dumps(second)
        assert main(["local", "status"]) == 0
    finally:
        assert main(["local", "down"]) == 0
    deadline = time.monotonic() + 15  # the registry exits gracefully within a few seconds of SIGTERM
    while main(["local", "status"]) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert main(["local", "status"]) == 1


def test_local_down_with_a_damaged_record_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path))
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "registry.json").write_text("{trunc")
    assert main(["local", "down"]) == 1
    err = capsys.readouterr().err
    assert "registry.json is damaged" in err and "Traceback" not in err


def test_local_down_never_signals_a_process_that_reused_a_recorded_pid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        monkeypatch.setenv("DELIVERY_HOME", str(tmp_path))
        (tmp_path / "local").mkdir()
        (tmp_path / "local" / "registry.json").write_text(json.dumps(
            {"host": "127.0.0.1:1", "username": "u", "pid": bystander.pid}))
        (tmp_path / "local" / "dockerd.pid").write_text(f"{bystander.pid}\n")
        assert main(["local", "down"]) == 0
        time.sleep(0.2)
        assert bystander.poll() is None, "local down killed a process that was not ours"
    finally:
        bystander.kill()
        bystander.wait()
