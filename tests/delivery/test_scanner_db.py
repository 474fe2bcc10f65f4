"""Trivy's vulnerability DB without internet: the offline archive's import, the age gate, the registry mirror."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from delivery.ci.scanpolicy import db_record, unscanned_problem
from delivery.cli import main
from delivery.localenv import RegistryHandle
from delivery.registry import RegistryClient
from delivery.scannerdb import DB_CONFIG_MEDIA_TYPE, DB_MEDIA_TYPE, TITLE
from tests.support.trivy_db import make_archive

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_import_unpacks_trivys_offline_archive_into_the_cache_and_shows_its_age(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    updated = datetime.now(UTC) - timedelta(days=2)
    archive = make_archive(tmp_path / "db.tar.gz", updated=updated)
    cache = tmp_path / "cache"
    assert main(["scanner", "db", "import", str(archive), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert f"imported into {cache / 'db'}" in out and "2.0 days old" in out
    assert (cache / "db" / "trivy.db").read_bytes() == b"bolt db stand-in"
    assert json.loads((cache / "db" / "metadata.json").read_text())["Version"] == 2
    assert sorted(p.name for p in cache.iterdir()) == ["db"]  # nothing staged is left behind
    assert main(["scanner", "db", "status", "--cache-dir", str(cache), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["age_days"] == pytest.approx(2, abs=0.01)


def test_an_archive_without_metadata_or_with_paths_outside_is_refused_and_the_cache_is_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache"
    no_meta = make_archive(tmp_path / "a.tar.gz", updated=NOW, members=("trivy.db",))
    assert main(["scanner", "db", "import", str(no_meta), "--cache-dir", str(cache)]) == 1
    assert "no metadata.json" in capsys.readouterr().err
    outside = make_archive(tmp_path / "b.tar.gz", updated=NOW, members=("metadata.json", "../escape"))
    assert main(["scanner", "db", "import", str(outside), "--cache-dir", str(cache)]) == 1
    assert "no trivy.db" in capsys.readouterr().err
    assert not (cache / "db" / "trivy.db").exists() and not (tmp_path / "escape").exists()
    assert main(["scanner", "db", "status", "--cache-dir", str(cache)]) == 1
    assert "fail closed" in capsys.readouterr().err


@pytest.mark.parametrize(("age", "status"), [(None, "unscanned"), (timedelta(days=2), "scanned"),
                                             (timedelta(days=9), "stale")])
def test_the_age_gate_counts_only_a_db_younger_than_the_maximum(tmp_path: Path, age: timedelta | None,
                                                                 status: str) -> None:
    cache = tmp_path / "cache"
    if age is not None:
        main(["scanner", "db", "import", str(make_archive(tmp_path / "db.tar.gz", updated=NOW - age)),
              "--cache-dir", str(cache)])
    record, metadata = db_record(cache, WEEK, NOW)
    assert record.status == status
    assert (metadata is None) == (age is None)
    refused = unscanned_problem(record, release=True, require=False)
    assert (refused is None) == (status == "scanned")
    if status == "stale":
        assert "9.0 days old (at most 7 allowed)" in record.reason
    if status == "unscanned":
        assert f"no trivy vulnerability DB in {cache}/db" in record.reason
    # A local experiment (non-release, require_vuln_db off) only warns; require_vuln_db fails it too.
    assert unscanned_problem(record, release=False, require=False) is None
    assert (unscanned_problem(record, release=False, require=True) is None) == (status == "scanned")


def test_a_db_without_metadata_counts_as_unscanned(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "trivy.db").write_bytes(b"x")
    record, _ = db_record(tmp_path, WEEK, NOW)
    assert record.status == "unscanned" and "metadata.json is missing" in record.reason


def test_mirror_pushes_trivys_oci_db_artifact_and_pull_installs_it_elsewhere(
        registry: RegistryHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DELIVERY_REGISTRY", registry.host)
    monkeypatch.setenv("DELIVERY_REGISTRY_USER", registry.username)
    monkeypatch.setenv("DELIVERY_REGISTRY_PASSWORD", registry.password.reveal())
    repository = f"trivy-{uuid.uuid4().hex[:8]}/db"
    updated = datetime.now(UTC) - timedelta(hours=12)
    source = tmp_path / "import"
    main(["scanner", "db", "import", str(make_archive(tmp_path / "db.tar.gz", updated=updated)),
          "--cache-dir", str(source)])
    assert main(["scanner", "db", "mirror", "--cache-dir", str(source), "--repository", repository]) == 0
    assert f"mirrored to {registry.host}/{repository}:2" in capsys.readouterr().out
    client = RegistryClient(registry.url, registry.username, registry.password)
    manifest = client.get_manifest(repository, "2").json()
    (layer,) = manifest["layers"]
    assert manifest["config"]["mediaType"] == DB_CONFIG_MEDIA_TYPE
    assert layer["mediaType"] == DB_MEDIA_TYPE and layer["annotations"][TITLE] == "db.tar.gz"
    agent = tmp_path / "agent"
    assert main(["scanner", "db", "pull", "--cache-dir", str(agent), "--repository", repository]) == 0
    assert "0.5 days old" in capsys.readouterr().out
    assert (agent / "db" / "trivy.db").read_bytes() == (source / "db" / "trivy.db").read_bytes()
    assert main(["scanner", "db", "pull", "--cache-dir", str(agent), "--repository", repository + "-none"]) == 1
    assert "cannot pull the vulnerability DB" in capsys.readouterr().err
