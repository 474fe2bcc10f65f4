"""The pipeline's stages: build, test, GPU test, scan, push, attest. Each reads and writes the run record."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from delivery import __version__, compose, contract
from delivery.audit import AuditEvent, AuditLog, current_actor
from delivery.ci import junit, scanpolicy
from delivery.ci.context import CiContext
from delivery.ci.record import RunRecord, StageResult, Status
from delivery.ci.scanpolicy import IGNORE_FILE, gate, load_ignores
from delivery.ci.status import CommitStatusSink
from delivery.config import RegistrySettings
from delivery.docker import ContainerJob, DockerClient, LineSink, Mount, NoGpuRuntime
from delivery.errors import DeliveryError
from delivery.manifest import Biomarker, duration_seconds
from delivery.provenance import build_statement, load_private_key, sign_statement, store_attestation
from delivery.scannerdb import REPOSITORY_ENV, trivy_cache_dir
from delivery.scanrecord import DbMetadata, Override, ScanRecord
from delivery.trivy import Trivy

CA_FILE = "delivery-build-ca.crt"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
NAME_LABEL = "io.biomarker-delivery.biomarker"


class StageFailed(DeliveryError):
    """A stage ran and its result is a failure (tests failed, gate closed, tag refused)."""

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.details = details or {}


@dataclass(frozen=True)
class Outcome:
    status: Status
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Options:
    """Everything a stage takes from flags and environment."""

    base_image: str | None = None
    ca_bundle: bytes = b""
    network: str = "host"
    allow_no_gpu: bool = False  # --allow-no-gpu: a GPU test that cannot run is skipped (release builds: with a reason)
    gpu: str = "require"  # `ci run --gpu`: require (no runtime fails), auto (branch builds skip), skip (not run)
    severity: str | None = None  # flag or DELIVERY_SCAN_SEVERITY; None: the manifest's `scan`, else HIGH
    ignore_file: Path | None = None
    require_vuln_db: bool | None = None
    signing_key: Path | None = None
    max_db_age: str | None = None  # flag or DELIVERY_SCAN_MAX_DB_AGE; None: the manifest's scan.max_db_age
    allow_unscanned: bool = False  # with reason: an unscanned build passes (audited, attested)
    reason: str = ""  # --reason: why this build may pass without a check that could not run (unscanned, no GPU)


@dataclass(frozen=True)
class ScanPolicy:
    """The scan gate's settings after precedence: flag/environment, then the manifest's `scan`, then defaults."""

    severity: str | tuple[str, ...]
    ignore_file: Path
    require_vuln_db: bool
    max_db_age: dt.timedelta


@dataclass
class StageEnv:
    """What every stage works with; the registry is looked up only by the stages that need it."""

    repo: Path
    record: RunRecord
    docker: DockerClient
    manifest: Biomarker
    context: CiContext
    registry: Callable[[], RegistrySettings]
    on_line: LineSink | None = None


StageFn = Callable[[StageEnv, Options], Outcome]


def host_ca_bundle() -> bytes:
    """The host's CA bundle plus the locally added CAs (a TLS-intercepting proxy's CA lives there)."""
    parts = [HOST_CA_BUNDLE.read_bytes()] if HOST_CA_BUNDLE.exists() else []
    parts += [p.read_bytes() for p in sorted(LOCAL_CA_DIR.glob("*.crt"))] if LOCAL_CA_DIR.is_dir() else []
    return b"\n".join(parts)


def oci_labels(manifest: Biomarker, context: CiContext, base_image: str | None) -> dict[str, str]:
    """OCI labels; `created` is the commit time so that rebuilding a commit reproduces the image."""
    labels = {
        "org.opencontainers.image.source": context.source_url,
        "org.opencontainers.image.revision": context.commit,
        "org.opencontainers.image.version": context.version,
        "org.opencontainers.image.created": context.committed_at,
        "org.opencontainers.image.title": manifest.name,
        NAME_LABEL: manifest.name,
    }
    if base_image:
        labels["org.opencontainers.image.base.name"] = base_image
    return labels


def build(env: StageEnv, options: Options) -> Outcome:
    """Build the image from the manifest's `build` section with BASE_IMAGE and the CA bundle file."""
    spec = env.manifest.build
    if options.base_image:
        _ensure_base(env, options.base_image)
    context_dir = env.repo / spec.context
    extra = {CA_FILE: options.ca_bundle}
    dockerfile = os.path.relpath(env.repo / spec.dockerfile, context_dir)
    if dockerfile.startswith(".."):  # outside the context: send it inside, like the docker CLI does
        extra[".delivery.Dockerfile"] = (env.repo / spec.dockerfile).read_bytes()
        dockerfile = ".delivery.Dockerfile"
    args = {**spec.args, "PIP_CERT_BUNDLE": CA_FILE}
    if options.base_image:
        args["BASE_IMAGE"] = options.base_image
    tag = f"{env.manifest.image}:build-{env.context.commit[:12]}"
    labels = oci_labels(env.manifest, env.context, options.base_image)
    env.docker.build(context_dir, tag, dockerfile=dockerfile, buildargs=args, labels=labels,
                     network_mode=options.network, target=spec.target, extra_files=extra, on_line=env.on_line)
    info = env.docker.inspect(tag)
    env.record.put("image", {"tag": tag, "id": info.id, "size": info.size, "base_image": options.base_image,
                             "labels": labels, "build_args": sorted(args)})
    return Outcome("passed", f"{tag} {info.id[7:19]} ({info.size / 1e6:.1f} MB)", {"tag": tag, "id": info.id})


def _ensure_base(env: StageEnv, base: str) -> None:
    if env.docker.find(base) is not None:
        return
    settings = env.registry()
    env.docker.pull(base, settings.auth() if base.startswith(settings.host + "/") else None)


def _built_image(env: StageEnv) -> dict[str, Any]:
    image = env.record.get("image")
    if not image:
        raise StageFailed("no built image in the run record", hint="Run `delivery ci build` first (same --work-dir).")
    return dict(image)


def test(env: StageEnv, options: Options) -> Outcome:
    """The manifest's test command inside the built image: no network, read-only root, limits, data read-only."""
    return _run_tests(env, options, gpu=False)


def gpu_test(env: StageEnv, options: Options) -> Outcome:
    """The manifest's GPU test command with an NVIDIA device request."""
    return _run_tests(env, options, gpu=True)


def _run_tests(env: StageEnv, options: Options, *, gpu: bool) -> Outcome:
    name, spec = ("gpu-test" if gpu else "test"), env.manifest.test
    command = spec.gpu_command if gpu else spec.command
    if command is None:
        return Outcome("skipped", "the manifest has no test.gpu_command")
    if gpu and options.gpu == "skip":
        return _without_gpu(env, options, "--gpu skip")
    reports = env.record.work_dir / f"reports-{name}"
    reports.mkdir(parents=True, exist_ok=True)
    reports.chmod(0o777)  # the image's (non-root) user writes its reports here
    try:
        outcome = env.docker.run_job(confined_container(env, _built_image(env)["id"], tuple(command), reports, gpu=gpu))
    except NoGpuRuntime as e:
        if not (options.allow_no_gpu or options.gpu == "auto"):
            raise StageFailed(e.message, hint=e.hint) from e
        return _without_gpu(env, options, f"no GPU runtime on this agent: {e.message}")
    path = junit.write(env.record.work_dir / f"junit-{name}.xml", reports, name, command, outcome)
    details = {"junit": str(path), "exit_code": outcome.exit_code, "timed_out": outcome.timed_out}
    if outcome.exit_code != 0:
        why = "timed out" if outcome.timed_out else f"exited with {outcome.exit_code}"
        raise StageFailed(f"{name}: the test command {why}", hint="last output:\n" + "\n".join(outcome.log_tail),
                          details=details)
    return Outcome("passed", f"tests passed ({path.name})", details, outcome.log_tail[-3:])


def _without_gpu(env: StageEnv, options: Options, why: str) -> Outcome:
    """A GPU test that did not run fails closed on release builds unless a reason overrides it (audited, attested);
    a branch build only says so."""
    release = env.context.is_release
    explicit = options.allow_no_gpu or options.gpu == "skip"
    if release and not (explicit and options.reason):
        raise StageFailed(f"release build: the GPU test did not run ({why})",
                          hint="Run it on a GPU agent, or accept this build without it: --allow-no-gpu (or --gpu "
                               "skip) --reason TEXT (audited, recorded in the attestation).")
    if not release:
        return Outcome("skipped", f"GPU test NOT run ({why})")
    override = {"reason": options.reason, "actor": current_actor()}
    _audit_log().append(AuditEvent(
        "allow-no-gpu", f"{env.manifest.name}@{env.context.version}", override["reason"], override["actor"],
        details={"biomarker": env.manifest.name, "command": "ci gpu-test", "commit": env.context.commit,
                 "ref": env.context.ref, "why": why}))
    return Outcome("skipped", f"GPU test NOT run ({why}); ALLOWED by {override['actor']}: {override['reason']}",
                   {"override": override})


def _audit_log() -> AuditLog:
    """The configured audit trail (the shared database in cluster mode)."""
    return compose.audit_log(compose.load_config())


def test_limits(manifest: Biomarker) -> tuple[int, int]:
    """(cpu_mhz, memory_mb) of the test container: `test.resources`, else the largest variant's."""
    if manifest.test.resources is not None:
        return manifest.test.resources.cpu_mhz, manifest.test.resources.memory_mb
    variants = manifest.variants.values()
    return max(v.resources.cpu_mhz for v in variants), max(v.resources.memory_mb for v in variants)


def confined_container(env: StageEnv, image: str, command: tuple[str, ...], reports: Path, *,
                       gpu: bool) -> ContainerJob:
    """The confined container a test stage runs: limits from `test_limits`, test data read-only."""
    variants = env.manifest.variants.values()
    limits = contract.Limits(*test_limits(env.manifest))  # the one CPU/memory conversion; a test gets >= 0.5 CPU
    mounts = [Mount(reports, contract.REPORTS_DIR, read_only=False)]
    if env.manifest.test.data:
        mounts.append(Mount((env.repo / env.manifest.test.data).resolve(), contract.TEST_DATA_DIR, read_only=True))
    gpus = max([v.resources.gpu for v in variants] + [1]) if gpu else 0
    return ContainerJob(image=image, command=command, mounts=tuple(mounts),
                        nano_cpus=limits.nano_cpus(os.cpu_count(), at_least=0.5), memory_bytes=limits.memory_bytes,
                        user="", timeout_s=duration_seconds(env.manifest.test.timeout),
                        gpus=gpus, labels={"io.biomarker-delivery.stage": "gpu-test" if gpu else "test"},
                        tmpfs_size="1g",
                        environment={"HOME": "/tmp", contract.REPORTS_ENV: contract.REPORTS_DIR})  # noqa: S108


def scan_policy(manifest: Biomarker, repo: Path, options: Options) -> ScanPolicy:
    """Flags (and their environment variables) override the manifest's `scan` section, which overrides defaults."""
    spec = manifest.scan
    severity = options.severity or (tuple(spec.severity) if spec.severity else "HIGH")
    ignore_file = options.ignore_file or repo / (spec.ignore_file or IGNORE_FILE)
    require = spec.require_vuln_db if options.require_vuln_db is None else options.require_vuln_db
    max_age = dt.timedelta(seconds=duration_seconds(options.max_db_age or spec.max_db_age))
    return ScanPolicy(severity, ignore_file, require, max_age)


def scan(env: StageEnv, options: Options) -> Outcome:
    """Trivy: image secrets and vulnerabilities, Dockerfile checks, CycloneDX SBOM; the severity and DB gates."""
    work, policy, now = env.record.work_dir, scan_policy(env.manifest, env.repo, options), dt.datetime.now(dt.UTC)
    repository = os.environ.get(REPOSITORY_ENV)
    mirror = (lambda: env.registry().client(), repository) if repository else None
    record, db = scanpolicy.prepare_db(trivy_cache_dir(), policy.max_db_age, mirror, now)
    trivy = Trivy(trivy_cache_dir())
    tar = work / "image.tar"
    env.docker.save(_built_image(env)["tag"], tar)
    try:
        findings, record = scanpolicy.scan_image(trivy, tar, work / "trivy-image.json", record)
        findings += trivy.scan_dockerfile(env.repo / env.manifest.build.dockerfile, work / "trivy-dockerfile.json")
        components = trivy.sbom(tar, work / "sbom.cdx.json")
    finally:
        tar.unlink(missing_ok=True)
    override = Override(options.reason, current_actor()) if options.allow_unscanned else None
    record = record.with_override(override)
    env.record.put("scan", record.as_json())
    result = gate(findings, load_ignores(policy.ignore_file), policy.severity, now.date())
    lines = [f"{f.severity:8} {f.kind:16} {f.id:22} {f.target} {f.title}" for f in result.blocking]
    lines += [f"ignored  {f.id} until {i.expires}: {i.reason}" for f, i in result.ignored]
    lines += [f"EXPIRED ignore {i.id} (expired {i.expires}) no longer applies" for i in result.expired]
    if not trivy.has_java_db():
        lines.append("note: no trivy Java DB, so Java archives (.jar/.war/.ear/.par) are not in the SBOM")
    lines += _db_lines(record, db, now)
    details = {"findings": len(findings), "blocking": len(result.blocking), "ignored": len(result.ignored),
               "below_threshold": result.below_threshold, "threshold": result.threshold,
               "vulnerability_db": record.scanned, "scan": record.as_json(), "sbom": str(work / "sbom.cdx.json"),
               "sbom_components": components, "blocking_ids": sorted({f.id for f in result.blocking}),
               "ignore_file": str(policy.ignore_file)}
    if not result.passed:
        raise StageFailed(f"scan gate closed: {len(result.blocking)} finding(s) at {result.described}",
                          hint="\n".join(lines) + f"\nFix them, or accept one in {policy.ignore_file.name} with a "
                                                  "reason and an expiry.", details=details)
    problem = scanpolicy.unscanned_problem(record, release=env.context.is_release,
                                           require=policy.require_vuln_db)
    if problem:
        raise StageFailed(problem, hint="\n".join(lines) + "\n" + scanpolicy.UNSCANNED_HINT, details=details)
    if record.override is not None:  # the trail is opened only to write to it (cluster mode: the shared one)
        scanpolicy.audit_override(_audit_log(), record, env.manifest.name, env.context)
    summary = (f"{len(findings)} finding(s), none blocking at {result.described}; SBOM {components} components; "
               + _db_summary(record, db, now))
    return Outcome("passed", summary, details, tuple(lines))


def _db_lines(record: ScanRecord, db: DbMetadata | None, now: dt.datetime) -> list[str]:
    """The DB's age on every scan, and a loud warning when vulnerabilities were not (freshly) scanned."""
    lines = [db.describe(now)] if db is not None else []
    if record.status == "unscanned":
        lines.append(f"WARNING: vulnerabilities NOT scanned: {record.reason} "
                     "(import one with `delivery scanner db import db.tar.gz`)")
    elif record.status == "stale":
        lines.append(f"WARNING: vulnerabilities scanned against a STALE DB: {record.reason}")
    if record.override is not None:
        lines.append(f"ALLOWED UNSCANNED by {record.override.actor}: {record.override.reason} (audited, attested)")
    return lines


def _db_summary(record: ScanRecord, db: DbMetadata | None, now: dt.datetime) -> str:
    age = f"DB {db.age(now) / dt.timedelta(days=1):.1f} days old" if db is not None else "no DB"
    if record.scanned:
        return f"vulnerabilities scanned ({age})"
    return f"vulnerabilities NOT scanned ({record.describe()}; {age})"


def push(env: StageEnv, options: Options) -> Outcome:
    """Push `X.Y.Z` on a release tag or `sha-<12 hex>` on the default branch; verify the digest."""
    tag, rule = env.context.push_tag()
    if tag is None:
        return Outcome("skipped", rule)
    settings, image = env.registry(), _built_image(env)
    client, name = settings.client(), env.manifest.image
    if tag[0].isdigit() and client.head_manifest(name, tag):
        stored = client.get_manifest(name, tag)
        if stored.json().get("config", {}).get("digest") != image["id"]:
            raise StageFailed(f"refusing to push {name}:{tag}: the registry already holds it as {stored.digest}, "
                              "built from another image", hint="Release tags are immutable: tag a new version.")
        _record_push(env, settings, name, tag, stored.digest, 0, rule)
        return Outcome("passed", f"{settings.host}/{name}:{tag} already holds this image ({stored.digest}); no-op")
    repository = f"{settings.host}/{name}"
    env.docker.tag(image["id"], repository, tag)
    pushed = env.docker.push(repository, tag, settings.auth(), on_line=env.on_line)
    stored = client.get_manifest(name, pushed.digest)
    if client.head_manifest(name, tag) != pushed.digest:
        raise StageFailed(f"the registry does not hold {pushed.digest} for {name}:{tag} after the push")
    sent = compressed_bytes_sent(stored.json(), env.docker.inspect(image["id"]).layers, pushed.pushed_ids)
    _record_push(env, settings, name, tag, pushed.digest, sent, rule)
    return Outcome("passed", f"{repository}:{tag} {pushed.digest} ({pushed.layers_pushed} layer(s) sent, "
                             f"{sent / 1e6:.1f} MB compressed)",
                   {"bytes_pushed": sent, "bytes_pushed_uncompressed": pushed.bytes_pushed})


def compressed_bytes_sent(manifest: dict[str, Any], diff_ids: tuple[str, ...], pushed_ids: tuple[str, ...]) -> int:
    """Registry (compressed) size of the layers the engine reported as sent; layer i of the manifest is diff id i."""
    sent = set(pushed_ids)
    return sum(int(layer.get("size", 0)) for layer, diff in zip(manifest.get("layers") or [], diff_ids, strict=False)
               if diff.removeprefix("sha256:")[:12] in sent)


def _record_push(env: StageEnv, settings: RegistrySettings, name: str, tag: str, digest: str, sent: int,
                 rule: str) -> None:
    env.record.put("push", {"registry": settings.host, "repository": name, "tag": tag, "digest": digest,
                            "reference": f"{settings.host}/{name}:{tag}@{digest}", "bytes_pushed": sent,
                            "rule": rule})


def attest(env: StageEnv, options: Options) -> Outcome:
    """Sign an in-toto/SLSA provenance statement for the pushed digest and store it as `sha256-<hex>.att`."""
    pushed = env.record.get("push")
    if not pushed:
        return Outcome("skipped", "nothing was pushed, so there is no digest to attest")
    if options.signing_key is None:
        raise StageFailed("no signing key", hint="Pass --key or set DELIVERY_SIGNING_KEY.")
    key = load_private_key(options.signing_key)
    statement = provenance_statement(env, pushed)
    settings = env.registry()
    envelope = sign_statement(statement, key)
    stored = store_attestation(settings.client(), pushed["repository"], pushed["digest"], envelope)
    env.record.put("attest", {"digest": stored, "tag": pushed["digest"].replace(":", "-") + ".att"})
    return Outcome("passed", f"signed provenance stored as {pushed['digest'].replace(':', '-')}.att ({stored[:19]})")


def provenance_statement(env: StageEnv, pushed: dict[str, Any]) -> dict[str, Any]:
    """The SLSA provenance of this run, with the test, GPU-test and scan results as byproducts."""
    ctx, image, spec = env.context, _built_image(env), env.manifest.build
    results = {r.name: r for r in env.record.stages()}
    byproducts = [{"name": n, "mediaType": "application/vnd.biomarker-delivery.stage-result+json",
                   "annotations": {"status": results[n].status if n in results else "not run",
                                   "summary": results[n].summary if n in results else "",
                                   **({"override": results[n].details["override"]}
                                      if n in results and "override" in results[n].details else {})}}
                  for n in ("test", "gpu-test", "scan")]
    source = {"uri": ctx.source_url, "digest": {"gitCommit": ctx.commit}, "ref": ctx.ref}
    build_params = {"version": ctx.version, "dockerfile": spec.dockerfile, "context": spec.context,
                    "buildArgs": image.get("build_args", []), "baseImage": image.get("base_image")}
    started = min((r.started for r in results.values()), default=_now())
    scan_record = env.record.get("scan") or ScanRecord("unscanned", "the scan stage did not run").as_json()
    deps = [{"uri": f"git+{ctx.source_url}", "digest": {"gitCommit": ctx.commit}}]
    if image.get("base_image"):
        deps.append({"uri": f"oci://{image['base_image']}"})
    return build_statement(
        subject_name=f"{pushed['registry']}/{pushed['repository']}", digest=pushed["digest"], source=source,
        build=build_params, builder_id=ctx.builder_id, invocation_id=ctx.invocation_id, started=started,
        finished=_now(), byproducts=byproducts, dependencies=deps,
        internal={"engine": env.docker.ping(), "delivery": __version__, "imageId": image["id"]}, scan=scan_record,
    )


STAGES: dict[str, StageFn] = {"build": build, "test": test, "gpu-test": gpu_test, "scan": scan, "push": push,
                              "attest": attest}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def execute(name: str, env: StageEnv, options: Options, sink: CommitStatusSink) -> tuple[StageResult, Outcome]:
    """Run one stage, record its result (also a failure), report its commit status; re-raise failures."""
    url, commit = env.context.build_url, env.context.commit
    sink.set_status(commit, f"delivery/{name}", "pending", f"{name} running", url)
    started, clock = _now(), time.monotonic()
    try:
        outcome = STAGES[name](env, options)
    except DeliveryError as e:
        details = e.details if isinstance(e, StageFailed) else {}
        env.record.set_stage(StageResult(name, "failed", e.message, started, time.monotonic() - clock, details))
        sink.set_status(commit, f"delivery/{name}", "failure", e.message[:140], url)
        raise
    result = StageResult(name, outcome.status, outcome.summary, started, round(time.monotonic() - clock, 2),
                         outcome.details)
    env.record.set_stage(result)
    sink.set_status(commit, f"delivery/{name}", "success", outcome.summary[:140], url)
    return result, outcome
