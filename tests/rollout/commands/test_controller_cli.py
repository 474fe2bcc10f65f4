"""`rollout controller`: one pass or a service, in cluster mode (Nomad lock) and embedded (file lock)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from delivery.localenv import RegistryHandle
from delivery.release.state import ReleaseStore, SqliteReleaseStore
from rollout.cli import main
from rollout.commands.controller import build_service
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.leader import LOCK_PATH, FileLease, NomadLease
from rollout.controller.loop import Controller, load_status
from rollout.nomad_state import NomadReleaseStore
from rollout.scheduler import LocalScheduler, Scheduler
from tests.support.api_server import free_port
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, SERVICE, Verifier, client, manifest, release


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL",
                "DELIVERY_PUBLIC_KEY", "DELIVERY_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{home.parent / 'shared-ledger.sqlite'}")
    with FakeNomad() as f:
        yield f


def start(store: ReleaseStore, scheduler: Scheduler, text: str, version: str, *, verified: bool = True) -> None:
    """A rollout as `rollout deploy` records it; `verified`: its attestation was already checked."""
    m = manifest(text)
    operations.start_rollout(store=store, scheduler=scheduler, manifest=m, variant=next(iter(m.variants)),
                             release=release(m.name, version), environment=ENV, now=now())
    if verified:
        Controller(environment=ENV, biomarker=m.name, scheduler=scheduler, store=store, verifier=Verifier(),
                   stats=InMemoryExecutionStats(), clock=now).step()


def phase(store: ReleaseStore, biomarker: str) -> str | None:
    status = load_status(store.read(ENV, biomarker).state)
    return status.phase if status else None


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_help_teaches_the_service_and_its_lock(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["controller", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "rollout controller --once" in out and "examples" in out
    assert LOCK_PATH in out and "rollout watch" in out


def test_one_pass_advances_every_rollout_and_an_error_in_one_stops_no_other(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    start(store, client(fake.address), SERVICE.replace("GPU", "0"), "1.0.0", verified=False)  # no key: refused
    assert main(["controller", "--once", "--json", "--nomad-addr", fake.address]) == 0
    out, err = capsys.readouterr()
    actions = lines(out)
    assert {a["biomarker"] for a in actions} == {"alpha"}
    assert {"Register", "UpdateStatus"} <= {a["action"] for a in actions}
    assert phase(store, "alpha") == "Succeeded"
    refused = [e for e in lines(err) if e.get("biomarker") == "quicklook"]
    assert refused and "no provenance verifier" in refused[0]["error"] and refused[0]["environment"] == ENV
    assert client(fake.address).job("quicklook-web").value is None
    lock = client(fake.address).variable(LOCK_PATH).value
    assert lock is not None and lock.get("holder") == ""  # released after the pass


def test_one_pass_does_nothing_while_another_replica_leads(fake: FakeNomad,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    assert NomadLease(client(fake.address), identity="replica-1").acquire()
    assert main(["controller", "--once", "--nomad-addr", fake.address]) == 0
    _, err = capsys.readouterr()
    assert "another controller leads" in err and "replica-1" in err
    assert phase(store, "alpha") == "Progressing" and client(fake.address).job("alpha-fast").value is None


def test_a_refused_lock_ends_with_a_clear_message_and_no_action(fake: FakeNomad,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    fake.inject("GET", f"^/v1/var/{LOCK_PATH}$", status=403, text="Permission denied", times=100)
    assert main(["controller", "--once", "--nomad-addr", fake.address]) == 1
    _, err = capsys.readouterr()
    assert LOCK_PATH in err and "403" in err and "NOMAD_TOKEN" in err
    assert client(fake.address).job("alpha-fast").value is None


@pytest.mark.timeout(60)  # without a service moving it, watch would wait forever
def test_watch_shows_what_the_service_does(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    service = build_service(argparse.Namespace(nomad_addr=fake.address, interval=0.2, ttl=1.0))
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        code = main(["watch", "alpha", "--env", ENV, "--nomad-addr", fake.address, "--wait", "2", "--json"])
    finally:
        service.stop()
        thread.join(10)
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["phase"] == "Succeeded"
    assert "Succeeded" in err.splitlines()[-1]  # progress lines went to stderr, the status JSON to stdout


def test_watch_acts_on_nothing(fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    operations.request(store, ENV, "alpha", "pause", now=now(), reason="hold")
    assert main(["watch", "alpha", "--env", ENV, "--nomad-addr", fake.address]) == 3  # waiting on a human
    assert "1.0.0 Paused" in capsys.readouterr().out
    assert fake.count("PUT", "/v1/job") + fake.count("POST", "/v1/job") == 0


def test_embedded_default_uses_a_file_lock(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = SqliteReleaseStore(home / "release-state.sqlite")
    scheduler = LocalScheduler(home / "local-scheduler.json")
    start(store, scheduler, BATCH, "1.0.0")
    other = FileLease(home / "controller.lock", identity="other-process")
    assert other.acquire()
    assert main(["controller", "--once"]) == 0
    assert "another controller leads" in capsys.readouterr().err and phase(store, "alpha") == "Progressing"
    other.release()
    assert main(["controller", "--once"]) == 0
    assert "alpha: UpdateStatus" in capsys.readouterr().out and phase(store, "alpha") == "Succeeded"
    assert scheduler.job("alpha-fast").value is not None


def until(what: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def released(fake: FakeNomad) -> bool:
    lock = client(fake.address).variable(LOCK_PATH).value
    return lock is not None and lock.get("holder") == ""


def test_the_service_runs_until_sigterm_and_hands_the_lock_back(fake: FakeNomad, home: Path) -> None:
    store = NomadReleaseStore(client(fake.address))
    env = {**os.environ, "NOMAD_ADDR": fake.address, "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen([sys.executable, "-m", "rollout.cli", "controller", "--json", "--interval", "0.2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: client(fake.address).variable(LOCK_PATH).value is not None)
        start(store, client(fake.address), BATCH, "1.0.0")  # a deploy while the service runs
        until(lambda: phase(store, "alpha") == "Succeeded")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert {"Register", "MarkStable"} <= {a["action"] for a in lines(out)}
    assert any(e.get("leader") == "acquired" for e in lines(err)) and released(fake)


def test_serve_with_controller_advances_rollouts_beside_the_api(fake: FakeNomad, home: Path,
                                                                 registry: RegistryHandle) -> None:
    store = NomadReleaseStore(client(fake.address))
    start(store, client(fake.address), BATCH, "1.0.0")
    env = {**os.environ, "NOMAD_ADDR": fake.address, "DELIVERY_REGISTRY": registry.host,
           "DELIVERY_REGISTRY_USER": registry.username, "DELIVERY_REGISTRY_PASSWORD": registry.password.reveal(),
           "NO_PROXY": "127.0.0.1,localhost"}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rollout.cli", "serve", "--port", str(port), "--controller",
                               "--interval", "0.2", "--org", "biomarkers"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until(lambda: phase(store, "alpha") == "Succeeded" or server.poll() is not None)
        # The controller starts before uvicorn listens: on a loaded machine the rollout can finish first.
        until(lambda: server.poll() is not None or answers(f"http://127.0.0.1:{port}/healthz"))
        api = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert phase(store, "alpha") == "Succeeded" and api.status_code == 200, err
    assert any(e.get("action") == "Register" and e.get("biomarker") == "alpha" for e in lines_of_json(err))
    assert released(fake)


def lines_of_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
