"""`delivery manifest validate`: every broken manifest gets FILE:LINE:COLUMN and exit 1, fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from delivery.cli import main
from delivery.errors import ManifestError
from delivery.manifest import load_manifest
from tests.support.builders import VALID_MANIFEST, manifest_text

REPO = Path(__file__).resolve().parents[3]

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

TEST_LINE = '  command: ["sh", "-c", "test -x /bin/sh"]\n'

# (case id, file content, expected line, fragment expected in the message)
BROKEN: list[tuple[str, str | bytes, int, str]] = [
    ("empty-file", "", 1, "empty"),
    ("only-comment", "# nothing here\n", 1, "empty"),
    ("list-root", "- a\n- b\n", 1, "mapping"),
    ("scalar-root", "just a string\n", 1, "mapping"),
    ("binary-junk", b"\x00\x01\x02\xff\xfe binary", 1, ""),
    ("not-utf8", b"name: caf\xe9\n", 1, "UTF-8"),
    ("tab-indent", VALID_MANIFEST.replace("  dockerfile", "\tdockerfile"), 9, "tab"),
    ("alias-bomb", BOMB, 2, "aliases"),
    ("simple-alias", VALID_MANIFEST + "extra: &x 1\nother: *x\n", 19, "aliases"),
    ("merge-key", VALID_MANIFEST.replace("build:\n", "build:\n  <<: {a: 1}\n"), 9, "merge"),
    ("duplicate-key", VALID_MANIFEST + "name: beta\n", 18, "duplicate key `name`"),
    ("deep-nesting", VALID_MANIFEST + "x: " + "[" * 200 + "]" * 200 + "\n", 18, "nested"),
    ("unclosed-bracket", manifest_text(owners='owners: ["@a"'), 6, "invalid YAML"),
    ("bad-indent", VALID_MANIFEST.replace("  context: .", " context: ."), 10, "invalid YAML"),
    ("missing-name", VALID_MANIFEST.replace("name: alpha\n", ""), 1, "`name` is missing"),
    ("missing-test", VALID_MANIFEST.split("test:")[0] + "variants:" + VALID_MANIFEST.split("variants:")[1], 1, "`test` is missing"),
    ("missing-variants", VALID_MANIFEST.split("variants:")[0], 1, "`variants` is missing"),
    ("wrong-api-version", manifest_text(apiVersion="apiVersion: delivery/v2"), 1, "delivery/v1"),
    ("wrong-kind", manifest_text(kind="kind: Pipeline"), 2, "Biomarker"),
    ("name-uppercase", manifest_text(name="name: Alpha"), 3, "DNS label"),
    ("name-too-long", manifest_text(name="name: " + "a" * 41), 3, "at most 40"),
    ("name-underscore", manifest_text(name="name: al_pha"), 3, "DNS label"),
    ("name-number", manifest_text(name="name: 42"), 3, "string"),
    ("empty-description", manifest_text(description='description: ""'), 4, "at least 1"),
    ("owners-empty", manifest_text(owners="owners: []"), 5, "at least 1"),
    ("owner-bad", manifest_text(owners='owners: ["not an owner"]'), 5, "e-mail"),
    ("image-uppercase", manifest_text(image="image: Biomarkers/Alpha"), 6, "registry repository path"),
    ("image-with-tag", manifest_text(image="image: biomarkers/alpha:1.0"), 6, "registry repository path"),
    ("job-type-bad", manifest_text(job_type="job_type: cron"), 7, "batch"),
    ("service-without-port", manifest_text(job_type="job_type: service"), 1, "`service` section"),
    ("unknown-top-key", VALID_MANIFEST + "varients: {}\n", 18, "did you mean `variants`"),
    ("unknown-nested-key", VALID_MANIFEST.replace("    timeout: 5m", "    timout: 5m"), 17, "did you mean `timeout`"),
    ("dockerfile-escape", VALID_MANIFEST.replace("dockerfile: Dockerfile", "dockerfile: ../../etc/passwd"), 9, "inside the repository"),
    ("context-absolute", VALID_MANIFEST.replace("context: .", "context: /etc"), 10, "inside the repository"),
    ("test-command-empty", VALID_MANIFEST.replace('command: ["sh", "-c", "test -x /bin/sh"]', "command: []"), 12, "at least 1"),
    ("test-command-string", VALID_MANIFEST.replace('command: ["sh", "-c", "test -x /bin/sh"]', "command: make test"), 12, "list"),
    ("cpu-too-low", VALID_MANIFEST.replace("cpu_mhz: 500", "cpu_mhz: 5"), 16, "greater than or equal to 100"),
    ("memory-string", VALID_MANIFEST.replace("memory_mb: 128", "memory_mb: lots"), 16, "integer"),
    ("gpu-negative", VALID_MANIFEST.replace("memory_mb: 128}", "memory_mb: 128, gpu: -1}"), 16, "greater than or equal to 0"),
    ("timeout-format", VALID_MANIFEST.replace("timeout: 5m", "timeout: five minutes"), 17, "duration"),
    ("variant-name-bad", VALID_MANIFEST.replace("  fast:", "  Fast Mode:"), 14, "variants"),
    ("resources-missing", VALID_MANIFEST.replace("    resources: {cpu_mhz: 500, memory_mb: 128}\n", ""), 15, "`resources` is missing"),
    ("step-unknown", VALID_MANIFEST + "rollout:\n  steps:\n    - jump: 10\n", 20, "a step is one of"),
    ("weight-too-high", VALID_MANIFEST + "rollout:\n  steps:\n    - set_weight: 150\n", 20, "less than or equal to 100"),
    ("tolerance-empty", VALID_MANIFEST + "rollout:\n  gates:\n    equivalence:\n      laa950_percent: {}\n", 21, "absolute"),
    ("huge-file", "a: " + "x" * 300_000 + "\n", 1, "limit"),
    ("scan-severity-unknown", VALID_MANIFEST + "scan:\n  severity: [CRITICAL, SEVERE]\n", 19, "'HIGH' or 'CRITICAL'"),
    ("scan-severity-string", VALID_MANIFEST + "scan:\n  severity: HIGH\n", 19, "valid list"),
    ("scan-severity-empty", VALID_MANIFEST + "scan:\n  severity: []\n", 19, "at least 1"),
    ("scan-severity-twice", VALID_MANIFEST + "scan:\n  severity: [HIGH, HIGH]\n", 19, "severity twice"),
    ("scan-ignore-escape", VALID_MANIFEST + "scan:\n  ignore_file: ../secrets.yaml\n", 19, "inside the repository"),
    ("scan-require-not-bool", VALID_MANIFEST + "scan:\n  require_vuln_db: maybe\n", 19, "valid boolean"),
    ("scan-unknown-key", VALID_MANIFEST + "scan:\n  severities: [HIGH]\n", 19, "did you mean `severity`"),
    ("test-resources-gpu", VALID_MANIFEST.replace(TEST_LINE, TEST_LINE + "  resources: {cpu_mhz: 2000, memory_mb: 512, gpu: 1}\n"), 13, "unknown key `gpu`"),
    ("test-resources-memory-low", VALID_MANIFEST.replace(TEST_LINE, TEST_LINE + "  resources: {cpu_mhz: 2000, memory_mb: 8}\n"), 13, "greater than or equal to 32"),
    ("test-resources-missing-memory", VALID_MANIFEST.replace(TEST_LINE, TEST_LINE + "  resources:\n    cpu_mhz: 2000\n"), 14, "`memory_mb` is missing"),
]


def _write(tmp_path: Path, case: str, content: str | bytes) -> Path:
    path = tmp_path / f"{case}.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_the_example_manifest_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "validate", str(REPO / "biomarkers/emphysema/biomarker.yaml")]) == 0
    assert "ok (emphysema)" in capsys.readouterr().out


def test_the_builder_manifest_is_valid(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, "valid", VALID_MANIFEST))
    assert manifest.variants["fast"].resources.memory_mb == 128
    assert manifest.test.resources is None and manifest.scan.severity is None  # both optional
    assert [type(s).__name__ for s in manifest.rollout.steps][0] == "SetWeightStep"


def test_the_corpus_is_large_enough() -> None:
    assert len(BROKEN) >= 30


@pytest.mark.parametrize(("case", "content", "line", "fragment"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_manifest_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, content: str | bytes, line: int, fragment: str
) -> None:
    path = _write(tmp_path, case, content)
    started = time.perf_counter()
    assert main(["manifest", "validate", str(path)]) == 1
    elapsed = time.perf_counter() - started
    err = capsys.readouterr().err
    located = [row for row in err.splitlines() if row.startswith(f"{path}:{line}:")]
    assert located, f"no problem reported on line {line}:\n{err}"
    assert any(fragment in row for row in located), err
    assert "Traceback" not in err
    assert elapsed < 0.5, f"validation took {elapsed:.2f}s"


def test_all_problems_are_reported_not_just_the_first(tmp_path: Path) -> None:
    text = manifest_text(name="name: Bad_Name", image="image: UPPER") + "colour: blue\n"
    with pytest.raises(ManifestError) as caught:
        load_manifest(_write(tmp_path, "many", text))
    fields = {p.field for p in caught.value.problems}
    assert {"name", "image", "colour"} <= fields


def test_json_output_lists_problems_with_positions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _write(tmp_path, "good", VALID_MANIFEST)
    bad = _write(tmp_path, "bad", manifest_text(name="name: Nope"))
    assert main(["manifest", "validate", "--json", str(good), str(bad)]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["valid"] for r in results] == [True, False]
    assert results[1]["problems"][0] | {"text": ""} == {
        "file": str(bad), "line": 3, "column": 7, "field": "name",
        "message": results[1]["problems"][0]["message"], "text": "",
    }


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "validate", str(tmp_path / "nope.yaml")]) == 1
    assert "cannot read file" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["manifest", "validate"])
    assert caught.value.code == 2
