"""The local backend: every sub-folder is a repository; `biomarkers/` is the embedded default org."""

from __future__ import annotations

from pathlib import Path

from delivery.cli import main
from delivery.scm import BackendSpec, ScanOptions, open_backend
from tests.support.builders import manifest_text

REPO_ROOT = Path(__file__).resolve().parents[3]


def _org(tmp_path: Path) -> Path:
    org = tmp_path / "acme"
    for name, text in {"alpha": manifest_text(), "beta": manifest_text(name="name: beta"),
                       "broken": manifest_text(name="name: Not_A_Label")}.items():
        (org / name).mkdir(parents=True)
        (org / name / "biomarker.yaml").write_text(text)
    (org / "docs").mkdir()  # no manifest: not a biomarker
    (org / ".hidden").mkdir()
    git = org / "beta" / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/trunk\n")
    return org


def test_embedded_default_org_finds_emphysema() -> None:
    result = open_backend(BackendSpec(f"local:{REPO_ROOT / 'biomarkers'}")).scan(ScanOptions())
    assert [r.manifest.name for r in result.repositories] == ["emphysema"]
    assert result.complete and result.org == "biomarkers"


def test_scan_keeps_valid_reports_invalid_with_file_and_line(tmp_path: Path) -> None:
    result = open_backend(BackendSpec(f"local:{_org(tmp_path)}")).scan(ScanOptions())
    assert [r.name for r in result.repositories] == ["alpha", "beta"]
    assert result.invalid == ("broken",)
    assert any(p.startswith("broken/biomarker.yaml:3:") and "name" in p for p in result.problems)
    assert result.seen == 4 and result.complete


def test_git_repository_reports_its_checked_out_branch(tmp_path: Path) -> None:
    result = open_backend(BackendSpec(f"local:{_org(tmp_path)}")).scan(ScanOptions())
    branches = {r.name: r.default_branch for r in result.repositories}
    assert branches == {"alpha": "main", "beta": "trunk"}


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    backend = open_backend(BackendSpec(f"local:{_org(tmp_path)}"))
    result = backend.scan(ScanOptions(include=("a*", "b*"), exclude=("beta",)))
    assert [r.name for r in result.repositories] == ["alpha"]


def test_scan_one_sees_only_that_repository_and_nothing_when_gone(tmp_path: Path) -> None:
    backend = open_backend(BackendSpec(f"local:{_org(tmp_path)}"))
    assert [r.name for r in backend.scan_one("beta").repositories] == ["beta"]
    gone = backend.scan_one("../etc")
    assert gone.repositories == () and gone.complete


def test_cli_scan_json_and_exit_status(tmp_path: Path, capsys: object) -> None:
    import json

    import pytest

    assert isinstance(capsys, pytest.CaptureFixture)
    assert main(["scan", "--org", f"local:{_org(tmp_path)}", "--json"]) == 1  # broken manifest → 1
    out = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in out["repositories"]] == ["alpha", "beta"]
    assert out["complete"] is True
    assert main(["scan", "--org", f"local:{REPO_ROOT / 'biomarkers'}"]) == 0
    assert "biomarkers/emphysema: emphysema" in capsys.readouterr().out


def test_missing_folder_is_a_clear_error(tmp_path: Path, capsys: object) -> None:
    import pytest

    assert isinstance(capsys, pytest.CaptureFixture)
    assert main(["scan", "--org", f"local:{tmp_path / 'nope'}"]) == 1
    assert "is not a folder" in capsys.readouterr().err
