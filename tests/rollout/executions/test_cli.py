"""`rollout submit`, `rollout executions list|show` and `rollout recall` end to end on the real engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.cli import main
from tests.rollout.executions.conftest import NAME, Builds
from tests.support.executions_builders import study
from tests.support.executions_rollouts import Rollouts


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, object]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_submit_show_and_recall_through_the_cli(home: Path, builds: Builds, capsys: pytest.CaptureFixture[str]) -> None:
    org = ["--org", str(home / "org")]
    code, submitted = _json(capsys, ["submit", f"{NAME}@1.1.0", "--input", str(study(home / "in", 4)),
                                     "--out", str(home / "out"), "--series-uid", "1.2.840.99", "--json", *org])
    assert code == 0
    execution = submitted["execution"]  # type: ignore[index]
    assert execution["digest"] == builds.v1_1.digest and execution["input_identity"] == "dicom-series:1.2.840.99"
    assert json.loads((home / "out" / "provenance.json").read_text())["digest"] == builds.v1_1.digest
    code, listed = _json(capsys, ["executions", "list", "--version", "1.1.0", "--json"])
    assert [e["id"] for e in listed] == [execution["id"]]  # type: ignore[union-attr]
    assert main(["executions", "show", execution["id"]]) == 0
    assert builds.v1_1.digest in capsys.readouterr().out
    rollouts = Rollouts(home / "home" / "local-scheduler.json", home / "home" / "release-state.sqlite")
    rollouts.deploy("local", "1.0.0", promote=True)
    rollouts.deploy("local", "1.1.0", promote=True)
    code, report = _json(capsys, ["recall", NAME, "1.1.0", "--reason", "wrong calibration", "--json", *org])
    assert code == 0 and [e["id"] for e in report["executions"]] == [execution["id"]]  # type: ignore[index]
    assert report["actor"] == "dr-tester"  # type: ignore[index]
    assert any(a.startswith("rolled back alpha 1.1.0 in local") for a in report["actions"])  # type: ignore[index]
    assert rollouts.phase("local") == ("RolledBack", "1.0.0")


def test_a_bad_pin_is_a_usage_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", NAME, "--input", str(home), "--out", str(home / "o")]) == 2
    assert "NAME@SPEC" in capsys.readouterr().err
