"""`rollout deploy|status|watch|promote|pause|resume|abort|rollback|freeze|unfreeze|history` end to end:
against the fake Nomad (`--nomad-addr`: Nomad Variables + jobs) and against the embedded default (SQLite +
the local scheduler record), with the `--json` shapes and exit codes (0 done, 1 failed/rolled back,
2 usage, 3 waiting on a human) a script relies on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from delivery.release.state import SqliteReleaseStore
from rollout.cli import main
from rollout.controller import operations
from rollout.controller.gates import InMemoryExecutionStats
from rollout.controller.loop import Controller
from rollout.nomad_state import NomadReleaseStore
from rollout.scheduler import LocalScheduler
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import BATCH, ENV, SERVICE, Clock, Verifier, client, manifest, release

COMMANDS = ("deploy", "status", "watch", "promote", "pause", "resume", "abort", "rollback", "freeze", "unfreeze",
            "history")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DELIVERY_ACTOR", "rm-tester")
    monkeypatch.setenv("DELIVERY_ENV", ENV)  # the commands' default environment (else the embedded `local`)
    return tmp_path / "home"


@pytest.fixture
def fake(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    # Cluster mode needs the shared ledger named (no command falls back to a local file); a file URL stands in.
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{home.parent / 'shared-ledger.sqlite'}")
    with FakeNomad() as f:
        yield f


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """Exit code, stdout parsed as JSON when `--json` was given (else the text), stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, json.loads(out) if "--json" in argv and out.strip() else out, err


def nomad_rollout(fake: FakeNomad, version: str, clock: Clock) -> Controller:
    """Start a service rollout the way `rollout deploy` does, with an accepting verifier, and run it."""
    m = manifest(SERVICE)
    store = NomadReleaseStore(client(fake.address))
    operations.start_rollout(store=store, scheduler=client(fake.address), manifest=m, variant="web",
                             release=release(m.name, version), environment=ENV, now=clock())
    ctl = Controller(environment=ENV, biomarker=m.name, scheduler=client(fake.address), store=store,
                     verifier=Verifier(), stats=InMemoryExecutionStats(), clock=clock)
    ctl.run()
    return ctl


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert f"rollout {command}" in out and "example" in out and "biomarker" in out


def test_deploy_without_a_verifier_touches_nothing_in_nomad(fake: FakeNomad, home: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = home.parent / "biomarker.yaml"
    path.write_text(SERVICE.replace("GPU", "0"))
    rel = release("quicklook", "1.0.0")
    code, _, err = cli(capsys, "deploy", "quicklook", "--nomad-addr", fake.address, "--manifest", str(path),
                       "--image", f"{rel.image}:1.0.0", "--digest", rel.digest, "--json")
    assert code == 1 and "no provenance verifier" in err and "--public-key" in err
    assert fake.count("POST", "/v1/job") == 0 and fake.count("PUT", "/v1/job") == 0


def test_deploy_with_a_malformed_digest_is_refused(fake: FakeNomad, home: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = home.parent / "biomarker.yaml"
    path.write_text(SERVICE.replace("GPU", "0"))
    code, _, err = cli(capsys, "deploy", "quicklook", "--nomad-addr", fake.address, "--manifest", str(path),
                       "--image", "registry.test/biomarkers/quicklook:1.0.0", "--digest", "latest")
    assert code == 1 and "sha256:<64 hex>" in err
    assert fake.count("GET", "/v1/var") == 0  # refused before any state was touched


def test_service_rollout_status_pause_resume_watch_rollback_history_on_nomad(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    nomad_rollout(fake, "1.0.0", clock)
    fake.default_health = None  # the 1.1.0 canary waits for its health report
    nomad_rollout(fake, "1.1.0", clock)
    at = ("quicklook", "--nomad-addr", fake.address, "--json")

    code, status, _ = cli(capsys, "status", *at)
    assert code == 0 and status["phase"] == "Progressing" and status["candidate"]["version"] == "1.1.0"
    assert {"steps", "weight", "conditions", "pause_reasons", "history"} <= set(status)
    assert "candidate_spec" not in status and "promote_spec" not in status
    assert [s["kind"] for s in status["steps"]] == ["analysis", "promote"]

    code, status, _ = cli(capsys, "pause", *at, "--reason", "look at logs")
    assert code == 3 and status["phase"] == "Paused" and "Manual" in status["pause_reasons"]
    assert cli(capsys, "status", *at)[0] == 3
    code, status, _ = cli(capsys, "resume", *at)
    assert code == 0 and status["phase"] == "Progressing" and status["pause_reasons"] == []

    fake.default_health = True
    canary = next(a for a in fake.allocs_of("quicklook-web") if a["DeploymentStatus"]["Canary"])
    fake.set_alloc_health(canary["ID"], True)
    assert cli(capsys, "controller", "--once", "--nomad-addr", fake.address)[0] == 0  # the service acts, watch shows
    code, status, _ = cli(capsys, "watch", *at, "--wait", "1")
    assert code == 0 and status["phase"] == "Succeeded" and status["stable"]["version"] == "1.1.0"

    code, status, _ = cli(capsys, "rollback", *at, "--reason", "QC drift")
    assert code == 1 and status["phase"] == "RolledBack"
    current = client(fake.address).job("quicklook-web").value
    assert current is not None and current.meta_value("version") == "1.0.0"

    code, events, _ = cli(capsys, "history", *at)
    assert code == 0 and {"at", "actor", "action", "reason"} <= set(events[0])
    mine = [(e["actor"], e["action"], e["reason"]) for e in events if e["actor"] == "rm-tester"]
    assert ("rm-tester", "rollout-pause", "look at logs") in mine
    assert ("rm-tester", "rollout-rollback", "QC drift") in mine


def test_abort_rolls_back_with_exit_1_and_text_output(fake: FakeNomad,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    nomad_rollout(fake, "1.0.0", clock)
    fake.default_health = None
    nomad_rollout(fake, "1.1.0", clock)
    fake.default_health = True  # the allocations Nomad's auto-revert updates report healthy again
    code, out, _ = cli(capsys, "abort", "quicklook", "--nomad-addr", fake.address, "--reason", "wrong build")
    assert code == 1 and out.startswith("quicklook prod: 1.1.0 RolledBack") and "Aborted: wrong build" in out
    assert cli(capsys, "promote", "quicklook", "--nomad-addr", fake.address)[0] == 1  # already ended


def test_freeze_blocks_deploy_and_unfreeze_lifts_it_on_nomad(fake: FakeNomad, home: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    at = ("quicklook", "--nomad-addr", fake.address)
    code, item, _ = cli(capsys, "freeze", *at, "--reason", "trial NCT-1", "--owner", "qa@example.org",
                        "--pin", "1.0.0", "--hours", "2", "--json")
    assert code == 0 and item["owner"] == "qa@example.org" and item["version"] == "1.0.0" and item["expires_at"]
    path = home.parent / "biomarker.yaml"
    path.write_text(SERVICE.replace("GPU", "0"))
    rel = release("quicklook", "1.1.0")
    code, _, err = cli(capsys, "deploy", *at, "--manifest", str(path), "--image", f"{rel.image}:1.1.0",
                       "--digest", rel.digest)
    assert code == 1 and "frozen" in err and "trial NCT-1" in err and "--override-freeze" in err
    assert cli(capsys, "unfreeze", *at, item["id"], "--reason", "trial over")[0] == 0
    assert NomadReleaseStore(client(fake.address)).read(ENV, "quicklook").state.freezes == ()
    code, _, err = cli(capsys, "unfreeze", *at, item["id"])
    assert code == 1 and "no freeze" in err


def test_freeze_usage_errors_exit_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "freeze", "alpha", "--reason", "weekend", "--owner", "rm", "--cron", "0 18 * *",
                       "--duration", "60")
    assert code == 2 and "5 fields" in err
    code, _, err = cli(capsys, "freeze", "alpha", "--reason", "weekend", "--owner", "rm", "--cron", "0 18 * * 5",
                       "--duration", "60", "--tz", "Mars/Olympus")
    assert code == 2 and "time zone" in err


def local_rollout(home: Path, version: str, clock: Clock) -> None:
    """A batch rollout on the embedded default's own paths (what `rollout deploy` writes without Nomad)."""
    m = manifest(BATCH)
    store = SqliteReleaseStore(home / "release-state.sqlite")
    scheduler = LocalScheduler(home / "local-scheduler.json")
    operations.start_rollout(store=store, scheduler=scheduler, manifest=m, variant="fast",
                             release=release(m.name, version), environment=ENV, now=clock())
    Controller(environment=ENV, biomarker=m.name, scheduler=scheduler, store=store, verifier=Verifier(),
               stats=InMemoryExecutionStats(), clock=clock).run()


def test_embedded_default_status_promote_rollback_freeze_history(home: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    local_rollout(home, "1.0.0", clock)  # the first version becomes stable directly
    assert cli(capsys, "status", "alpha", "--json")[1]["phase"] == "Succeeded"
    local_rollout(home, "1.1.0", clock)
    code, status, _ = cli(capsys, "status", "alpha", "--json")
    assert code == 0 and status["phase"] == "Progressing" and status["weight"] == 10  # waiting for executions
    code, status, _ = cli(capsys, "promote", "alpha", "--json", "--reason", "trial sponsor sign-off")
    assert code == 0 and status["phase"] == "Succeeded" and status["stable"]["version"] == "1.1.0"
    code, status, _ = cli(capsys, "rollback", "alpha", "--json")
    assert code == 1 and status["phase"] == "RolledBack"
    stable = LocalScheduler(home / "local-scheduler.json").job("alpha-fast").value
    assert stable is not None and stable.meta_value("version") == "1.0.0"
    code, item, _ = cli(capsys, "freeze", "alpha", "--reason", "weekend", "--owner", "rm",
                        "--cron", "0 18 * * 5", "--duration", "3840", "--tz", "Europe/Amsterdam", "--json")
    assert code == 0 and (item["cron"], item["duration_s"], item["timezone"]) == ("0 18 * * 5", 230400,
                                                                                  "Europe/Amsterdam")
    code, text, _ = cli(capsys, "history", "alpha")
    assert code == 0 and "rm-tester  rollout-promote  prod/alpha: trial sponsor sign-off" in text


def test_status_without_a_rollout_exits_1(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "status", "nothing")
    assert code == 1 and "no rollout" in err
    code, events, _ = cli(capsys, "history", "nothing", "--json")
    assert code == 0 and events == []
