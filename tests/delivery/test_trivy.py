"""Trivy reports (SchemaVersion 2, hand-made in the documented shape) and the severity gate with audited ignores."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from delivery.ci.scanpolicy import Ignore, gate, load_ignores
from delivery.errors import ConfigError
from delivery.trivy import parse_report

TODAY = dt.date(2026, 6, 1)
REPORT = {
    "SchemaVersion": 2, "ArtifactType": "container_image",
    "Results": [
        {"Target": "img (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2024-0001", "PkgName": "libfoo", "InstalledVersion": "1.0",
             "FixedVersion": "1.1", "Severity": "CRITICAL", "Title": "overflow"},
            {"VulnerabilityID": "CVE-2024-0002", "PkgName": "libbar", "InstalledVersion": "2.0", "Severity": "LOW"}]},
        {"Target": "app/deploy.sh", "Class": "secret", "Secrets": [
            {"RuleID": "github-pat", "Severity": "CRITICAL", "Title": "GitHub Personal Access Token"}]},
        {"Target": "Dockerfile", "Class": "config", "Type": "dockerfile", "Misconfigurations": [
            {"ID": "DS-0002", "Severity": "HIGH", "Status": "FAIL", "Title": "root user"},
            {"ID": "DS-0001", "Severity": "MEDIUM", "Status": "PASS", "Title": "latest tag"},
            {"AVDID": "AVD-DS-0026", "Severity": "LOW", "Status": "FAIL", "Title": "no healthcheck"}]},
        {"Target": "python-pkg", "Class": "lang-pkgs"},
    ],
}


def test_report_parsing_keeps_failures_and_tolerates_absent_lists() -> None:
    findings = parse_report(REPORT)
    assert {(f.kind, f.id) for f in findings} == {
        ("vulnerability", "CVE-2024-0001"), ("vulnerability", "CVE-2024-0002"), ("secret", "github-pat"),
        ("misconfiguration", "DS-0002"), ("misconfiguration", "AVD-DS-0026")}
    assert parse_report({"SchemaVersion": 2}) == []


def test_gate_blocks_at_or_above_the_threshold_only() -> None:
    findings = parse_report(REPORT)
    high = gate(findings, [], "HIGH", TODAY)
    assert not high.passed
    assert {f.id for f in high.blocking} == {"CVE-2024-0001", "github-pat", "DS-0002"}
    assert high.below_threshold == 2
    assert {f.id for f in gate(findings, [], "CRITICAL", TODAY).blocking} == {"CVE-2024-0001", "github-pat"}


def test_unexpired_ignores_apply_and_expired_ones_do_not() -> None:
    findings = parse_report(REPORT)
    ignores = [Ignore(id="CVE-2024-0001", reason="not reachable from our code", expires=dt.date(2026, 12, 31)),
               Ignore(id="github-pat", reason="revoked test token, kept", expires=dt.date(2026, 1, 1)),
               Ignore(id="DS-0002", reason="base image runs tests as root", expires=TODAY)]
    result = gate(findings, ignores, "HIGH", TODAY)
    assert [f.id for f in result.blocking] == ["github-pat"]
    assert {f.id for f, _ in result.ignored} == {"CVE-2024-0001", "DS-0002"}
    assert [i.id for i in result.expired] == ["github-pat"]


@pytest.mark.parametrize("entry", [
    "  - id: CVE-1\n    expires: 2030-01-01\n",  # no reason
    "  - id: CVE-1\n    reason: because we said so\n",  # no expiry
    "  - id: CVE-1\n    reason: short\n    expires: 2030-01-01\n",  # reason too thin to audit
])
def test_every_ignore_needs_a_reason_and_an_expiry(tmp_path: Path, entry: str) -> None:
    path = tmp_path / "scan-ignore.yaml"
    path.write_text("ignores:\n" + entry)
    with pytest.raises(ConfigError) as caught:
        load_ignores(path)
    assert "ignores.0" in caught.value.message


def test_unknown_threshold_is_refused() -> None:
    with pytest.raises(ConfigError):
        gate([], [], "SEVERE", TODAY)
