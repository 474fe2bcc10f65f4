"""End to end: the emphysema image on a debootstrapped base, its own tests inside it, pushed with its semver tag
and attested, all through `delivery ci run`. Slow the first time (debootstrap + pip); caches make reruns fast."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.config import registry_settings
from delivery.localenv import RegistryHandle
from delivery.provenance import verify_image
from tests.support.ci_repo import git
from tests.support.real import missing, need_binary

EMPHYSEMA = Path(__file__).resolve().parents[3] / "biomarkers" / "emphysema"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_emphysema_through_ci_run(ci_env: RegistryHandle, docker_client: object, keys: tuple[Path, Path],
                                  tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_binary("debootstrap", "debootstrap")
    if os.geteuid() != 0:
        missing("root", "debootstrap needs root to build the base image")
    if not (EMPHYSEMA / "Dockerfile").exists():
        missing("emphysema Dockerfile", "biomarkers/emphysema/Dockerfile is not there yet")
    base = f"{ci_env.host}/base/python:bookworm"
    assert main(["base-image", "build", "--suite", "bookworm", "--with", "python3,python3-venv,ca-certificates",
                 "--venv", "/opt/venv", "--push", base]) == 0
    capsys.readouterr()

    repo = tmp_path / "emphysema"
    shutil.copytree(EMPHYSEMA, repo, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".delivery",
                                                                    ".pytest_cache", "build"))
    version = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["version"]
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "emphysema")
    git(repo, "tag", f"v{version}")

    # A release tag: offline there is no vulnerability DB, so the release passes only with the audited override.
    code = main(["ci", "run", str(repo), "--base-image", base, "--key", str(keys[0]), "--json",
                 "--allow-unscanned", "--allow-no-gpu", "--reason",
                 "e2e test machine: offline, no trivy vulnerability DB, no GPU runtime"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads(captured.out)
    results = {s["name"]: s["status"] for s in summary["stages"]}
    assert results["build"] == results["test"] == results["scan"] == results["push"] == results["attest"] == "passed"
    assert summary["push"]["tag"] == version
    verified = verify_image(registry_settings().client(), "biomarkers/emphysema", summary["push"]["digest"], keys[1])
    assert verified.test_passed and verified.scan_passed and verified.ref == f"refs/tags/v{version}"
    assert verified.scan.status == "unscanned" and verified.scan.override is not None

    _quantify_a_phantom_through_rollout_submit(tmp_path, version, summary["push"]["digest"])


def _quantify_a_phantom_through_rollout_submit(org: Path, version: str, digest: str) -> None:
    """The pushed image quantifies a mounted DICOM phantom (local backend); report and provenance name the build."""
    from emphysema.phantom import make_phantom, write_dicom_series

    from rollout.cli import main as rollout

    phantom = make_phantom()
    series = write_dicom_series(phantom, org / "study")
    out = org / "results"
    assert rollout(["submit", f"emphysema@{version}", "--input", str(org / "study"), "--out", str(out),
                    "--series-uid", series, "--org", str(org), "--env", "local"]) == 0
    report = json.loads((out / "report.json").read_text())
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["digest"] == digest and provenance["version"] == version
    assert report["version"] == version and report["input"]["series_uid"] == series
    assert abs(report["laa950_percent"] - phantom.expected_laa950()) <= 0.8  # the `fast` variant's tolerance
    assert {"lung_mask.nii.gz", "qc.png", "lung_seg.dcm", "report_sr.dcm"} <= {p.name for p in out.iterdir()}
