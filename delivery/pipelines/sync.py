"""Jenkins sync: one bulk read decides what changed; plan shows it, apply writes it, prune retires orphans."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from delivery.errors import DeliveryError
from delivery.jenkins import JobSummary
from delivery.pipelines import marker
from delivery.pipelines.render import RenderedFolder, RenderedJob, Settings, render_all, render_folder
from delivery.scm.model import ScanResult, ScmBackend


class Jenkins(Protocol):
    """The Jenkins operations the sync uses (delivery.jenkins.JenkinsClient in production)."""

    def folder_jobs(self, folder: str) -> tuple[JobSummary, ...] | None: ...
    def create_folder(self, folder: str, config_xml: str) -> None: ...
    def job_config(self, full_name: str) -> str: ...
    def create_job(self, full_name: str, config_xml: str) -> None: ...
    def update_job(self, full_name: str, config_xml: str) -> None: ...
    def disable_job(self, full_name: str) -> None: ...
    def delete_job(self, full_name: str) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What apply and prune would do to one organisation's folder."""

    folder: RenderedFolder
    folder_missing: bool
    create: tuple[RenderedJob, ...]
    update: tuple[RenderedJob, ...]
    unchanged: tuple[str, ...]
    orphans: tuple[JobSummary, ...]
    # Jobs with a wanted name that we do not own: never overwritten.
    conflicts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The `--json` shape of a plan."""
        return {
            "folder": self.folder.name, "folder_missing": self.folder_missing,
            "create": [j.full_name for j in self.create], "update": [j.full_name for j in self.update],
            "unchanged": len(self.unchanged), "orphans": [f"{self.folder.name}/{o.name}" for o in self.orphans],
            "conflicts": list(self.conflicts),
        }


def plan(
    jenkins: Jenkins, folder: RenderedFolder, jobs: Iterable[RenderedJob], *, scope: frozenset[str] | None = None
) -> Plan:
    """Compare rendered jobs with the markers of the live ones (one request); `scope` limits orphans to names."""
    live = jenkins.folder_jobs(folder.name)
    by_name = {j.name: j for j in live or ()}
    create, update, unchanged, conflicts = [], [], [], []
    wanted = tuple(jobs)
    for job in wanted:
        summary = by_name.get(job.name)
        owner = marker.parse(summary.description) if summary else None
        if summary is None:
            create.append(job)
        elif owner is None:
            conflicts.append(job.full_name)
        elif owner.digest != job.digest or summary.disabled:
            update.append(job)  # changed, or disabled by an earlier prune and wanted again
        else:
            unchanged.append(job.full_name)
    names = {j.name for j in wanted}
    in_scope = [s for s in live or () if scope is None or s.name in scope]
    orphans = tuple(s for s in in_scope if s.name not in names and marker.parse(s.description))
    return Plan(folder, live is None, tuple(create), tuple(update), tuple(unchanged), orphans, tuple(conflicts))


def diff(jenkins: Jenkins, the_plan: Plan) -> str:
    """A unified diff of live config.xml against the rendered one, for changed and new jobs only."""
    chunks = []
    for job in the_plan.create:
        chunks.append(_unified("", job.config_xml, job.full_name))
    for job in the_plan.update:
        chunks.append(_unified(jenkins.job_config(job.full_name), job.config_xml, job.full_name))
    return "".join(chunks)


def apply(jenkins: Jenkins, the_plan: Plan, progress: Callable[[str], None]) -> int:
    """Create the folder if missing, then create and update exactly the planned jobs; returns jobs written."""
    if the_plan.folder_missing:
        jenkins.create_folder(the_plan.folder.name, the_plan.folder.config_xml)
        progress(f"created folder {the_plan.folder.name}")
    for job in the_plan.create:
        jenkins.create_job(job.full_name, job.config_xml)
        progress(f"created {job.full_name}")
    for job in the_plan.update:
        jenkins.update_job(job.full_name, job.config_xml)
        progress(f"updated {job.full_name}")
    return len(the_plan.create) + len(the_plan.update)


def prune(
    jenkins: Jenkins, the_plan: Plan, scan: ScanResult, *, delete: bool, progress: Callable[[str], None],
    single: bool = False,
) -> int:
    """Disable (or delete) owned jobs whose repository is gone; refuses after a partial or empty scan.

    `single`: the scan looked at one repository only (a webhook), so an empty answer means that one is gone.
    """
    _refuse_unsafe(scan, the_plan, single=single)
    done = 0
    for orphan in the_plan.orphans:
        owner = marker.parse(orphan.description)
        if owner is None or owner.repo in scan.names() or orphan.name in scan.names():
            continue
        full_name = f"{the_plan.folder.name}/{orphan.name}"
        if delete:
            jenkins.delete_job(full_name)
            progress(f"deleted {full_name}")
        elif not orphan.disabled:
            jenkins.disable_job(full_name)
            progress(f"disabled {full_name}")
        else:
            continue
        done += 1
    return done


def sync_repository(
    backend: ScmBackend, jenkins: Jenkins, settings: Settings, name: str, progress: Callable[[str], None]
) -> int:
    """Rescan one repository and bring its job in step: create, update, or disable when it is gone."""
    scan = backend.scan_one(name)
    jobs = render_all(scan.repositories, settings)
    the_plan = plan(jenkins, render_folder(backend.org, settings), jobs, scope=frozenset({name}))
    written = apply(jenkins, the_plan, progress)
    return written + prune(jenkins, the_plan, scan, delete=False, progress=progress, single=True)


def _refuse_unsafe(scan: ScanResult, the_plan: Plan, *, single: bool) -> None:
    if not scan.complete:
        raise DeliveryError(
            f"refusing to prune: the scan of {scan.org} was partial ({'; '.join(scan.errors) or 'rate-limited'})",
            hint="Nothing was disabled or deleted. Run the scan again when GitHub answers fully.",
        )
    if not single and not scan.names() and the_plan.orphans:
        raise DeliveryError(
            f"refusing to prune: the scan of {scan.org} found no biomarker repositories at all",
            hint="An empty scan never empties Jenkins; check --org and the token, or delete jobs by hand.",
        )


def _unified(live: str, rendered: str, name: str) -> str:
    lines = difflib.unified_diff(
        live.splitlines(keepends=True), rendered.splitlines(keepends=True),
        fromfile=f"jenkins/{name}/config.xml", tofile=f"rendered/{name}/config.xml",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
