"""A package another team ships is picked up from its entry points alone: nothing of ours names it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from delivery.cli import main
from rollout.controller.gates import GateResult, load_gate
from tests.support.plugin_dist import add_fake_plugin

FAKE_SCM = '''
from delivery.scm.model import ScanResult


class FakeScm:
    def __init__(self, org):
        self.org = org

    def scan(self, options):
        return ScanResult(org="fake:" + self.org, repositories=(), seen=7)

    def scan_one(self, name):
        return ScanResult(org="fake:" + self.org, repositories=(), seen=1)


def open_fake(spec, *, clock=None, progress=None):
    return FakeScm(spec.org)
'''

FAKE_GATE = '''
from rollout.controller.gates import GateResult


class NightShiftGate:
    name = "night-shift"

    def evaluate(self, ctx):
        return GateResult(self.name, "wait", "only promotes at night")
'''


def test_delivery_scan_uses_an_scm_plugin_named_by_the_org_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_fake_plugin(tmp_path / "site", monkeypatch, module="fakescm_mod", source=FAKE_SCM,
                    entry_points={"delivery.scm": {"fake": "fakescm_mod:open_fake"}})
    assert main(["scan", "--org", "fake:x", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["org"] == "fake:x" and result["seen"] == 7
    assert main(["scan", "--scm", "fake", "--org", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["org"] == "fake:acme"


def test_an_unknown_scm_prefix_lists_the_installed_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", "--org", "gitlab:acme"]) == 1
    err = capsys.readouterr().err
    assert "no delivery.scm plugin named 'gitlab' (installed: github, local)" in err and "Traceback" not in err


def test_a_gate_plugin_is_loaded_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_fake_plugin(tmp_path / "site", monkeypatch, module="fakegate_mod", source=FAKE_GATE,
                    entry_points={"rollout.gates": {"night-shift": "fakegate_mod:NightShiftGate"}},
                    distribution="nightshift")
    gate = load_gate("night-shift")
    assert gate.evaluate(None) == GateResult("night-shift", "wait", "only promotes at night")  # type: ignore[arg-type]
    assert type(load_gate("health")).__name__ == "HealthGate"  # the built-ins still answer
