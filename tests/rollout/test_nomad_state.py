"""Release state on Nomad Variables: only ever under `delivery/release/<env>/<biomarker>`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.cli import main
from tests.support.fake_nomad import FakeNomad
from tests.support.nomad_world import client


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNomad]:
    for var in ("NOMAD_ADDR", "NOMAD_TOKEN", "NOMAD_NAMESPACE", "NOMAD_REGION", "DELIVERY_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DELIVERY_HOME", str(tmp_path / "home"))
    # Cluster mode names its shared ledger (no command falls back to a local file); a file URL stands in.
    monkeypatch.setenv("DELIVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'shared-ledger.sqlite'}")
    with FakeNomad() as f:
        yield f


@pytest.mark.parametrize("argv", [("../../../nomad/jobs/registry-auth",), ("emphysema", "--env", "../../nomad")])
def test_a_name_with_path_segments_is_refused_before_any_variable_is_read_or_written(
        fake: FakeNomad, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    secret = {"username": "robot", "password": "hunter2-secret"}
    client(fake.address).put_variable("nomad/jobs/registry-auth", secret, cas=0)
    before = client(fake.address).variable_paths("")
    frozen = main(["freeze", *argv, "--reason", "r", "--owner", "o", "--nomad-addr", fake.address])
    shown = main(["status", *argv, "--nomad-addr", fake.address])
    err = capsys.readouterr().err
    assert frozen == shown == 2
    assert "Traceback" not in err and "hunter2" not in err and "name" in err
    assert client(fake.address).variable_paths("") == before
    assert client(fake.address).variable("nomad/jobs/registry-auth").value.get("password") == "hunter2-secret"


def test_a_variable_that_is_not_release_state_is_a_clear_error_not_a_traceback(
        fake: FakeNomad, capsys: pytest.CaptureFixture[str]) -> None:
    client(fake.address).put_variable("delivery/release/prod/emphysema", {"state": '{"channels": 3}'}, cas=0)
    code = main(["status", "emphysema", "--env", "prod", "--nomad-addr", fake.address])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "delivery/release/prod/emphysema" in err
