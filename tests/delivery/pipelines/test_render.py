"""Rendered Jenkinsfiles parse with real Groovy, config.xml has the expected structure, hostile input stays inert."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery.cli import main
from delivery.pipelines import marker
from delivery.pipelines.escape import groovy_text, xml_text
from delivery.pipelines.render import RELEASE_TAG_REGEX, PipelineSpec, Settings, render_folder, render_job
from tests.delivery.pipelines.groovy import parse_all, shape, strings

REPO_ROOT = Path(__file__).resolve().parents[3]
BASE = PipelineSpec("acme", "bm-a", "main", "alpha", "A tiny biomarker.", ("@imaging/alpha",), "biomarkers/alpha",
                    gpu=True, custom=False, test_timeout_s=900)
TRAIT = "org.jenkinsci.plugins.github__branch__source."
HOSTILE = st.one_of(
    st.sampled_from(["'", "\\", "\\'", "${env.SECRET}", "'''", '"""', "</description><x>", "]]>", "\n}\nstage('x')",
                     "\\u0027", "a\r\nb", "\u2028", "$/", "/*", "//", "&amp;", "\x00\x1b", "😀"]),
    st.text(min_size=1, max_size=30),
)
# The fields of PipelineSpec that reach a template as text.
TEXT_FIELDS = ("org", "repo", "default_branch", "biomarker", "description", "image")
XML_FIELDS = ("org", "repo", "biomarker", "description")


def _xml_shape(element: ET.Element) -> list[object]:
    return [element.tag, sorted(element.attrib.items()), [_xml_shape(child) for child in element]]


def test_job_config_has_branch_source_tag_discovery_and_tag_build_strategy() -> None:
    job = render_job(BASE, Settings(github_api_url="https://ghe.example.com/api/v3"))
    root = ET.fromstring(job.config_xml)
    assert root.tag == "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
    source = root.find("sources/data/jenkins.branch.BranchSource/source")
    assert source is not None and source.get("class") == "org.jenkinsci.plugins.github_branch_source.GitHubSCMSource"
    assert (source.findtext("repoOwner"), source.findtext("repository")) == ("acme", "bm-a")
    assert source.findtext("apiUri") == "https://ghe.example.com/api/v3"
    assert source.findtext("credentialsId") == "github-app"
    assert source.find(f"traits/{TRAIT}TagDiscoveryTrait") is not None
    assert source.findtext(f"traits/{TRAIT}BranchDiscoveryTrait/strategyId") == "1"
    strategies = root.find("sources/data/jenkins.branch.BranchSource/buildStrategies")
    assert strategies is not None
    assert strategies.find("jenkins.branch.buildstrategies.basic.TagBuildStrategyImpl") is not None
    assert root.findtext("factory/scriptPath") == "Jenkinsfile"
    owner = marker.parse(root.findtext("description"))
    assert owner == marker.Ownership("bm-a", job.digest)


def test_folder_config_is_a_folder() -> None:
    root = ET.fromstring(render_folder("acme", Settings()).config_xml)
    assert root.tag == "com.cloudbees.hudson.plugins.folder.Folder" and root.findtext("displayName") == "acme"


def test_digest_changes_with_any_input_and_only_then() -> None:
    same = render_job(BASE, Settings())
    assert render_job(BASE, Settings()).digest == same.digest
    assert render_job(dataclasses.replace(BASE, image="biomarkers/other"), Settings()).digest != same.digest
    assert render_job(BASE, Settings(registry_credentials_id="other")).digest != same.digest


def test_custom_pipeline_gets_only_the_job() -> None:
    job = render_job(dataclasses.replace(BASE, custom=True), Settings())
    assert job.jenkinsfile is None and ET.fromstring(job.config_xml) is not None


def test_credentials_appear_by_id_only() -> None:
    text = render_job(BASE, Settings()).jenkinsfile or ""
    assert "credentials('biomarker-registry')" in text and "credentials('biomarker-signing-key')" in text
    assert "password" not in text.lower()


@pytest.mark.real
def test_generated_jenkinsfiles_parse_with_real_groovy(tmp_path: Path) -> None:
    variants = {"gpu": BASE, "cpu": dataclasses.replace(BASE, gpu=False)}
    files = []
    for name, spec in variants.items():
        path = tmp_path / f"{name}.Jenkinsfile"
        path.write_text(render_job(spec, Settings()).jenkinsfile or "", encoding="utf-8")
        files.append(path)
    results = parse_all(files)
    assert all(r["ok"] for r in results), results
    gpu, cpu = (r["events"] for r in results)
    assert [s for s in strings(gpu) if s.startswith("delivery ci")] == [
        "delivery ci build", "delivery ci test", "delivery ci build", "delivery ci test --gpu",
        "delivery ci scan", "delivery ci scan --require-vuln-db", "delivery ci push", "delivery ci attest"]
    assert "gpu test" in strings(gpu) and "gpu test" not in strings(cpu)
    # Release tags get the strict scan: its stage runs only when the tag matches the release pattern.
    release = strings(cpu)[strings(cpu).index("scan release"):strings(cpu).index("delivery ci scan --require-vuln-db")]
    assert RELEASE_TAG_REGEX in release and "REGEXP" in release
    assert "call:not" in shape(cpu)
    options = {"call:timeout", "call:buildDiscarder", "call:disableConcurrentBuilds", "call:credentials"}
    assert options <= set(shape(gpu))


@pytest.mark.real
def test_hostile_strings_cannot_change_the_groovy_program(tmp_path: Path) -> None:
    baseline_path = tmp_path / "base.Jenkinsfile"
    baseline_path.write_text(render_job(BASE, Settings()).jenkinsfile or "", encoding="utf-8")
    cases: list[tuple[str, str, Path]] = []

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(field=st.sampled_from(TEXT_FIELDS), value=HOSTILE)
    def render(field: str, value: str) -> None:
        path = tmp_path / f"case{len(cases)}.Jenkinsfile"
        path.write_text(render_job(dataclasses.replace(BASE, **{field: value}), Settings()).jenkinsfile or "",
                        encoding="utf-8")
        cases.append((field, value, path))

    render()
    results = parse_all([baseline_path] + [p for _, _, p in cases])
    base = results[0]["events"]
    for (field, value, _), result in zip(cases, results[1:], strict=True):
        assert result["ok"], (field, value, result.get("error"))
        assert shape(result["events"]) == shape(base), (field, value)
        changed = [new for old, new in zip(strings(base), strings(result["events"]), strict=True) if old != new]
        expected = groovy_text(value) if field != "repo" else f"acme/{groovy_text(value)}"
        assert all(expected in new for new in changed), (field, value, changed)


@settings(max_examples=50, deadline=None)
@given(field=st.sampled_from(XML_FIELDS), value=HOSTILE)
def test_hostile_strings_cannot_change_the_xml_tree(field: str, value: str) -> None:
    baseline = ET.fromstring(render_job(BASE, Settings()).config_xml)
    job = render_job(dataclasses.replace(BASE, **{field: value}), Settings())
    root = ET.fromstring(job.config_xml)
    assert _xml_shape(root) == _xml_shape(baseline)
    texts = [e.text or "" for e in root.iter()]
    assert any(xml_text(value) in t for t in texts)


def test_cli_render_embedded_default(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["pipelines", "render", "--org", f"local:{REPO_ROOT / 'biomarkers'}", "--out", str(out)]) == 0
    assert (out / "biomarkers" / "config.xml").is_file()
    assert "sh 'delivery ci push'" in (out / "biomarkers" / "emphysema" / "Jenkinsfile").read_text()
    ET.parse(out / "biomarkers" / "emphysema" / "config.xml")


def test_cli_render_into_a_path_that_cannot_be_written_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"
    assert main(["pipelines", "render", "--org", f"local:{REPO_ROOT / 'biomarkers'}", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {out}" in err and "Traceback" not in err
