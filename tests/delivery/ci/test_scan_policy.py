"""The manifest's `scan` section and `test.resources`: what the stages use, and which source wins."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from delivery.audit import AuditLog
from delivery.ci import context as ci_context
from delivery.ci.record import RunRecord
from delivery.ci.scanpolicy import gate
from delivery.ci.stages import Options, StageEnv, confined_container, scan_policy
from delivery.cli import main
from delivery.config import registry_settings
from delivery.docker import DockerClient, create_kwargs
from delivery.errors import ConfigError
from delivery.localenv import RegistryHandle
from delivery.manifest import Biomarker, load_manifest
from delivery.paths import default_database_url
from delivery.trivy import Finding
from tests.support.builders import VALID_MANIFEST
from tests.support.ci_repo import git, make_repo
from tests.support.trivy_db import make_archive

TODAY = dt.date(2025, 6, 1)
FAKE_AWS_KEY = "AKIA" + "Z7Q3" * 4  # assembled here so this file itself is not a finding


def _finding(severity: str, ident: str) -> Finding:
    return Finding(kind="vulnerability", id=ident, severity=severity, target="x", title="t")


def _manifest(tmp_path: Path, extra: str) -> Biomarker:
    path = tmp_path / "biomarker.yaml"
    path.write_text(VALID_MANIFEST + extra, encoding="utf-8")
    return load_manifest(path)


def test_a_severity_list_blocks_exactly_the_listed_severities() -> None:
    findings = [_finding("CRITICAL", "c"), _finding("HIGH", "h"), _finding("MEDIUM", "m"), _finding("LOW", "l")]
    listed = gate(findings, [], ["CRITICAL", "LOW"], TODAY)
    assert {f.id for f in listed.blocking} == {"c", "l"}
    assert listed.below_threshold == 2 and listed.described == "CRITICAL/LOW"
    assert {f.id for f in gate(findings, [], "HIGH", TODAY).blocking} == {"c", "h"}
    with pytest.raises(ConfigError):
        gate(findings, [], ["CRITICAL", "SEVERE"], TODAY)


def test_without_a_scan_section_the_defaults_apply(tmp_path: Path) -> None:
    policy = scan_policy(_manifest(tmp_path, ""), tmp_path, Options())
    assert policy.severity == "HIGH"
    assert policy.ignore_file == tmp_path / "scan-ignore.yaml"
    assert policy.require_vuln_db is True  # fail closed: an unscanned build fails unless told otherwise
    assert policy.max_db_age == dt.timedelta(days=7)


def test_the_manifest_scan_section_sets_the_gate(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, "scan:\n  severity: [HIGH, CRITICAL]\n  ignore_file: policy/ignores.yaml\n"
                                   "  require_vuln_db: true\n")
    policy = scan_policy(manifest, tmp_path, Options())
    assert policy.severity == ("HIGH", "CRITICAL")
    assert policy.ignore_file == tmp_path / "policy/ignores.yaml"
    assert policy.require_vuln_db is True


def test_flags_override_the_manifest_scan_section(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, "scan:\n  severity: [CRITICAL]\n  ignore_file: policy/ignores.yaml\n"
                                   "  require_vuln_db: true\n")
    flags = Options(severity="LOW", ignore_file=Path("/elsewhere/ignores.yaml"), require_vuln_db=False)
    policy = scan_policy(manifest, tmp_path, flags)
    assert (policy.severity, policy.ignore_file, policy.require_vuln_db) == (
        "LOW", Path("/elsewhere/ignores.yaml"), False)


CONTEXT = ci_context.CiContext(repo=".", commit="0" * 40, ref="refs/heads/main", tag=None, branch="main",
                               default_branch="main", source_url="file:///x", committed_at="2025-01-01T00:00:00Z",
                               build_url=None, builder_id="local", invocation_id="1")


@pytest.mark.parametrize(("extra", "nano_cpus", "memory_mb"), [
    ("", 0.5e9, 128),  # the only variant: 500 MHz (floored at half a CPU), 128 MiB
    ("  resources: {cpu_mhz: 2000, memory_mb: 64}\n", 1e9, 64),
])
def test_test_resources_replace_the_largest_variant_limits(tmp_path: Path, extra: str, nano_cpus: float,
                                                           memory_mb: int) -> None:
    text = VALID_MANIFEST.replace('  command: ["sh", "-c", "test -x /bin/sh"]\n',
                                  '  command: ["sh", "-c", "test -x /bin/sh"]\n' + extra)
    path = tmp_path / "biomarker.yaml"
    path.write_text(text, encoding="utf-8")
    env = StageEnv(tmp_path, RunRecord.open(tmp_path / "w"), DockerClient.__new__(DockerClient),
                   load_manifest(path), CONTEXT, registry_settings)
    kwargs = create_kwargs(confined_container(env, "img", ("true",), tmp_path, gpu=False))
    assert kwargs["mem_limit"] == memory_mb * 2**20
    assert kwargs["nano_cpus"] == int(nano_cpus)


def test_the_manifest_scan_section_gates_the_real_scan_and_flags_and_environment_override_it(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "repo", busybox, image=image_name,
                     files={"deploy.sh": f"export AWS_ACCESS_KEY_ID={FAKE_AWS_KEY}\n"},
                     extra_dockerfile="COPY deploy.sh /app/deploy.sh\nUSER 1000\nHEALTHCHECK NONE\n")
    (repo / "policy").mkdir()
    (repo / "policy/ignores.yaml").write_text("ignores:\n  - id: aws-access-key-id\n"
                                             "    reason: fake key used by the tests only\n    expires: 2999-01-01\n")
    manifest = (repo / "biomarker.yaml").read_text()
    # Offline: no vulnerability DB, so this local experiment turns require_vuln_db off (warns only).
    manifest += "scan:\n  require_vuln_db: false\n"
    (repo / "biomarker.yaml").write_text(manifest + "  ignore_file: policy/ignores.yaml\n")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    assert main(["ci", "scan", str(repo)]) == 0
    assert "ignored  aws-access-key-id until 2999-01-01" in capsys.readouterr().out
    assert main(["ci", "scan", str(repo), "--ignore-file", str(tmp_path / "none.yaml")]) == 1
    scan = json.loads((repo / ".delivery" / "run.json").read_text())["stages"]["scan"]
    assert "aws-access-key-id" in scan["details"]["blocking_ids"]
    # The secret is CRITICAL: a manifest gate on UNKNOWN only lets it through, DELIVERY_SCAN_SEVERITY does not.
    (repo / "biomarker.yaml").write_text(manifest + "  severity: [UNKNOWN]\n")
    assert main(["ci", "scan", str(repo)]) == 0
    monkeypatch.setenv("DELIVERY_SCAN_SEVERITY", "CRITICAL")
    assert main(["ci", "scan", str(repo)]) == 1
    assert "finding(s) at CRITICAL or above" in capsys.readouterr().err


def _tiny_repo(tmp_path: Path, busybox: Path, image_name: str, monkeypatch: pytest.MonkeyPatch, *,
               tag: str | None = None) -> Path:
    monkeypatch.setenv("TRIVY_CACHE_DIR", str(tmp_path / "trivy-cache"))  # no vulnerability DB unless imported
    repo = make_repo(tmp_path / "repo", busybox, image=image_name, tag=tag,
                     extra_dockerfile="USER 1000\nHEALTHCHECK NONE\n")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    return repo


def test_without_a_vulnerability_db_a_build_fails_closed_and_a_release_needs_an_audited_override(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _tiny_repo(tmp_path, busybox, image_name, monkeypatch)
    capsys.readouterr()
    assert main(["ci", "scan", str(repo)]) == 1  # the default: fail closed
    assert "vulnerabilities were not scanned" in capsys.readouterr().err
    assert main(["ci", "scan", str(repo), "--no-require-vuln-db"]) == 0  # a local experiment only warns
    assert "WARNING: vulnerabilities NOT scanned: no trivy vulnerability DB" in capsys.readouterr().out
    assert json.loads((repo / ".delivery" / "run.json").read_text())["scan"]["status"] == "unscanned"

    git(repo, "tag", "v1.0.0")
    assert main(["ci", "build", str(repo), "--network", "none"]) == 0
    capsys.readouterr()
    assert main(["ci", "scan", str(repo), "--no-require-vuln-db"]) == 1  # a release cannot opt out
    assert "release build: vulnerabilities were not scanned" in capsys.readouterr().err
    assert main(["ci", "scan", str(repo), "--allow-unscanned"]) == 2
    monkeypatch.setenv("DELIVERY_ACTOR", "release-manager")
    assert main(["ci", "scan", str(repo), "--allow-unscanned", "--reason", "INC-7: DB import pending"]) == 0
    assert "ALLOWED UNSCANNED by release-manager: INC-7: DB import pending" in capsys.readouterr().out
    scan = json.loads((repo / ".delivery" / "run.json").read_text())["scan"]
    assert scan["status"] == "unscanned"
    assert scan["override"] == {"reason": "INC-7: DB import pending", "actor": "release-manager"}
    (event,) = AuditLog(default_database_url()).events(action="allow-unscanned")
    assert event.reason == "INC-7: DB import pending" and event.actor == "release-manager"
    assert event.subject == f"{load_manifest(repo / 'biomarker.yaml').name}@1.0.0"


def test_a_db_the_real_trivy_cannot_open_leaves_the_build_unscanned_and_shows_the_dbs_age(
    ci_env: RegistryHandle, trivy: Path, busybox: Path, tmp_path: Path, image_name: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _tiny_repo(tmp_path, busybox, image_name, monkeypatch, tag="v1.0.0")
    archive = make_archive(tmp_path / "db.tar.gz", updated=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert main(["scanner", "db", "import", str(archive), "--cache-dir", str(tmp_path / "trivy-cache")]) == 0
    capsys.readouterr()
    assert main(["ci", "scan", str(repo)]) == 1
    err = capsys.readouterr().err
    assert "release build: vulnerabilities were not scanned (trivy image failed" in err
    assert "vulnerability DB of" in err and "1.0 days old" in err
    scan = json.loads((repo / ".delivery" / "run.json").read_text())["scan"]
    assert scan["status"] == "unscanned" and scan["db_updated_at"]
