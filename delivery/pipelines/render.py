"""From repository facts to Jenkins files: a Jenkinsfile and a multibranch `config.xml` per biomarker."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from delivery.errors import ConfigError
from delivery.pipelines import marker
from delivery.pipelines.escape import groovy_finalize, groovy_literal, xml_finalize
from delivery.scm.model import Repository

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "jenkins"
PUBLIC_GITHUB_API = "https://api.github.com"
# v1.2.3 and v1.2.3-rc.1 style tags (optionally without the `v`) are releases.
RELEASE_TAG_REGEX = r"v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?"
BUILD_OVERHEAD_MINUTES = 30


@dataclass(frozen=True)
class Settings:
    """Site-wide choices: where GitHub is, which credential ids jobs use, the build agents."""

    github_api_url: str = PUBLIC_GITHUB_API
    github_credentials_id: str = "github-app"
    registry_credentials_id: str = "biomarker-registry"
    signing_credentials_id: str = "biomarker-signing-key"
    agent_label: str = "docker"
    num_to_keep: int = 20
    tag_max_age_days: int = 7


@dataclass(frozen=True)
class PipelineSpec:
    """Every value that reaches a template, taken from one repository and its manifest."""

    org: str
    repo: str
    default_branch: str
    biomarker: str
    description: str
    owners: tuple[str, ...]
    image: str
    gpu: bool
    custom: bool
    test_timeout_s: int

    @classmethod
    def of(cls, repo: Repository) -> PipelineSpec:
        """The spec of a scanned repository."""
        m = repo.manifest
        from delivery.manifest import duration_seconds

        return cls(repo.org, repo.name, repo.default_branch, m.name, m.description, tuple(m.owners), m.image,
                   m.test.gpu_command is not None, m.pipeline == "custom", duration_seconds(m.test.timeout))


@dataclass(frozen=True)
class RenderedJob:
    """One job as we want it in Jenkins; `digest` is what its ownership marker records."""

    folder: str
    name: str
    config_xml: str
    jenkinsfile: str | None
    digest: str

    @property
    def full_name(self) -> str:
        """`folder/name`, the job's path in Jenkins."""
        return f"{self.folder}/{self.name}"


@dataclass(frozen=True)
class RenderedFolder:
    """The folder that holds one organisation's jobs."""

    name: str
    config_xml: str


def render_job(spec: PipelineSpec, settings: Settings) -> RenderedJob:
    """Render one repository's Jenkinsfile (unless custom) and job config, and hash them."""
    jenkinsfile = None if spec.custom else _groovy_env().get_template("Jenkinsfile.j2").render(
        _groovy_values(spec, settings))
    draft = _job_xml(spec, settings, marker.PLACEHOLDER)
    digest = hashlib.sha256(f"{draft}\0{jenkinsfile or ''}".encode()).hexdigest()
    return RenderedJob(spec.org, spec.repo, _job_xml(spec, settings, digest), jenkinsfile, digest)


def render_folder(org: str, settings: Settings) -> RenderedFolder:
    """The organisation's folder; its description marks it as ours."""
    text = _xml_env().get_template("folder.xml.j2").render(
        description=f"{marker.PREFIX} folder\nBiomarker pipelines of the GitHub organisation {org}.",
        display_name=org,
    )
    return RenderedFolder(org, text)


def render_all(repos: tuple[Repository, ...], settings: Settings) -> tuple[RenderedJob, ...]:
    """Every repository's job, in name order."""
    return tuple(render_job(PipelineSpec.of(r), settings) for r in sorted(repos, key=lambda r: r.name))


def write_tree(out: Path, folder: RenderedFolder, jobs: tuple[RenderedJob, ...]) -> list[Path]:
    """Write `out/ORG/config.xml` and `out/ORG/REPO/{config.xml,Jenkinsfile}`; returns the files written."""
    written = [write_text_file(out / folder.name / "config.xml", folder.config_xml)]
    for job in jobs:
        written.append(write_text_file(out / job.folder / job.name / "config.xml", job.config_xml))
        if job.jenkinsfile is not None:
            written.append(write_text_file(out / job.folder / job.name / "Jenkinsfile", job.jenkinsfile))
    return written


def _groovy_values(spec: PipelineSpec, settings: Settings) -> dict[str, object]:
    minutes = BUILD_OVERHEAD_MINUTES + math.ceil(spec.test_timeout_s * (2 if spec.gpu else 1) / 60)
    return {
        "agent_label": settings.agent_label, "timeout_minutes": minutes, "num_to_keep": str(settings.num_to_keep),
        "biomarker": spec.biomarker, "image": spec.image, "full_name": f"{spec.org}/{spec.repo}",
        "gpu": spec.gpu, "default_branch": spec.default_branch, "release_tag_regex": RELEASE_TAG_REGEX,
        "registry_credentials_id": settings.registry_credentials_id,
        "signing_credentials_id": settings.signing_credentials_id,
    }


def _job_xml(spec: PipelineSpec, settings: Settings, digest: str) -> str:
    description = "\n".join([
        marker.marker(spec.repo, digest),
        f"Biomarker {spec.biomarker}: {spec.description}",
        f"Owners: {', '.join(spec.owners)}",
        f"Generated by biomarker-delivery from {spec.org}/{spec.repo}; edit biomarker.yaml, not this job.",
    ])
    return _xml_env().get_template("multibranch.xml.j2").render(
        description=description, display_name=spec.biomarker, source_id=f"delivery-{spec.org}-{spec.repo}",
        api_uri=settings.github_api_url, github_credentials_id=settings.github_credentials_id,
        org=spec.org, repo=spec.repo, tag_max_age_ms=settings.tag_max_age_days * 86_400_000,
    )


def write_text_file(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temp file and a rename, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {e.strerror}",
                          hint="Choose a folder you may write to, then run again.") from e
    return path


def _template_dir() -> str:
    return os.environ.get("DELIVERY_TEMPLATES") or str(TEMPLATES)


@cache
def _groovy_env() -> jinja2.Environment:
    # Groovy, not HTML: escaping is the `groovy` filter, and finalize refuses any value that skipped it.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()), autoescape=False,  # noqa: S701
        undefined=jinja2.StrictUndefined,
        finalize=groovy_finalize, keep_trailing_newline=True,
    )
    env.filters["groovy"] = groovy_literal
    return env


@cache
def _xml_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_template_dir()), autoescape=True, undefined=jinja2.StrictUndefined,
        finalize=xml_finalize, keep_trailing_newline=True,
    )
