"""Thin typed client for the Docker engine; parses every stream event, because failures arrive inside 200s."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import docker.types
import docker.utils
import requests

from delivery.errors import ExternalServiceError
from delivery.secrets import Secret

LOG_TAIL = 30
LineSink = Callable[[str], None]


# Never sent to the engine: VCS data and the run records `delivery ci` writes into the repository.
CONTEXT_EXCLUDES = (".git", ".delivery")
# The engine's only signal that no NVIDIA runtime hook is registered (moby daemon/nvidia_linux.go): a 500 whose
# text names the device driver, so this one error is told apart by its message.
NO_GPU_DRIVER = "could not select device driver"


class DockerError(ExternalServiceError):
    """The Docker engine refused or failed an operation."""

    service = "Docker engine"


class NoGpuRuntime(DockerError):
    """The engine has no NVIDIA device driver, so a GPU device request cannot be met."""


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for one registry; the password never prints."""

    registry: str
    username: str
    password: Secret

    def auth_config(self) -> dict[str, str]:
        """The engine's auth_config mapping (sent, never logged)."""
        return {"username": self.username, "password": self.password.reveal(), "serveraddress": self.registry}


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    tag: str
    log_tail: tuple[str, ...]


@dataclass(frozen=True)
class PushResult:
    reference: str
    digest: str
    size: int
    layers_pushed: int
    layers_existing: int
    bytes_pushed: int = 0  # uncompressed sizes the engine reported for the layers it sent
    pushed_ids: tuple[str, ...] = ()  # truncated diff ids (12 hex) of the layers it sent


@dataclass(frozen=True)
class ImageInfo:
    """What the pipeline needs to know about a local image."""

    id: str
    labels: dict[str, str]
    repo_digests: tuple[str, ...]
    size: int
    layers: tuple[str, ...]


@dataclass(frozen=True)
class Mount:
    """A host folder bound into a job container."""

    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class ContainerJob:
    """One locked-down job container: no network, read-only root, tmpfs /tmp, limits, non-root user."""

    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    nano_cpus: int
    memory_bytes: int
    user: str
    timeout_s: float
    gpus: int = 0
    labels: Mapping[str, str] | None = None
    name: str | None = None
    tmpfs_size: str = "256m"
    environment: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ContainerOutcome:
    """How a job container ended."""

    container_id: str
    exit_code: int
    timed_out: bool
    started_at: str
    finished_at: str
    log_tail: tuple[str, ...]


# The label naming the execution a job container runs, so a restarted server can find the container again.
EXECUTION_LABEL = "delivery.execution"


@dataclass(frozen=True)
class JobContainer:
    """A job container found on the engine: its id and state (`created`, `running`, `exited`, `dead`)."""

    container_id: str
    state: str
    labels: Mapping[str, str]


def private_socket() -> Path:
    """Where the engine `delivery local up` and the test harness start lives (short: socket paths max ~108 bytes).

    A fixed place, so every later command finds that engine without DOCKER_HOST.
    """
    return Path(tempfile.gettempdir()) / f"biomarker-delivery-{os.getuid()}" / "docker.sock"


def default_engine_url() -> str | None:
    """DOCKER_HOST, else the system socket, else our private engine's socket (None: let the SDK decide)."""
    if os.environ.get("DOCKER_HOST"):
        return None
    for sock in (Path("/var/run/docker.sock"), private_socket()):
        if sock.is_socket():
            return f"unix://{sock}"
    return None


class DockerClient:
    """The engine operations the pipeline needs, with errors translated to DockerError."""

    def __init__(self, base_url: str | None = None, *, timeout: int = 600) -> None:
        base_url = base_url or default_engine_url()
        try:
            if base_url:
                self._client = docker.DockerClient(base_url=base_url, timeout=timeout)
            else:
                self._client = docker.from_env(timeout=timeout)
        except docker.errors.DockerException as e:
            raise DockerError(
                "no Docker engine answers", hint="Start dockerd or set DOCKER_HOST, then run again."
            ) from e
        self.base_url = self._client.api.base_url

    @property
    def sdk(self) -> docker.DockerClient:
        """The underlying SDK client, for adapters in this package only."""
        return self._client

    def ping(self) -> str:
        """The engine's version; raises DockerError when it does not answer."""
        try:
            return str(self._client.version()["Version"])
        except (docker.errors.DockerException, requests.RequestException) as e:
            raise DockerError(f"Docker engine at {self.base_url} does not answer") from e

    def build(
        self,
        context: Path,
        tag: str,
        *,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        network_mode: str | None = None,
        target: str | None = None,
        extra_files: Mapping[str, bytes] | None = None,
        on_line: LineSink | None = None,
    ) -> BuildResult:
        """Build `context` into `tag`; `extra_files` are added to the context sent, never to the folder.

        Raises:
            DockerError: the engine failed, or a build step failed (with the log tail).
        """
        with _context_tar(context, dockerfile, extra_files or {}) as fileobj:
            try:
                events = self._client.api.build(
                    fileobj=fileobj, custom_context=True, dockerfile=dockerfile, tag=tag,
                    buildargs=dict(buildargs or {}), labels=dict(labels or {}), network_mode=network_mode,
                    target=target, rm=True, forcerm=True, pull=False, decode=True,
                )
                return _parse_build(events, tag, on_line)
            except (docker.errors.APIError, requests.RequestException) as e:
                raise DockerError(f"build of {tag} failed: {_explain(e)}", status=_status(e)) from e

    def push(
        self, repository: str, tag: str, auth: RegistryAuth | None, *, on_line: LineSink | None = None
    ) -> PushResult:
        """Push `repository:tag`.

        Raises:
            DockerError: the engine or the registry refused the push (also inside a 200 stream).
        """
        try:
            events = self._client.api.push(
                repository, tag=tag, stream=True, decode=True,
                auth_config=auth.auth_config() if auth else None,
            )
            return _parse_push(events, f"{repository}:{tag}", on_line)
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"push of {repository}:{tag} failed: {_explain(e)}", status=_status(e)) from e

    def image_labels(self, reference: str) -> dict[str, str]:
        """Labels of a local image."""
        return self.inspect(reference).labels

    def inspect(self, reference: str) -> ImageInfo:
        """Id, labels, repo digests, size and layer diff ids of a local image.

        Raises:
            DockerError: the image is not on this engine (status 404) or the engine failed.
        """
        try:
            attrs = self._client.api.inspect_image(reference)
        except docker.errors.ImageNotFound as e:
            raise DockerError(f"image {reference} is not on this engine", status=404) from e
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"cannot inspect {reference}: {_explain(e)}", status=_status(e)) from e
        config = attrs.get("Config") or {}
        return ImageInfo(str(attrs["Id"]), dict(config.get("Labels") or {}), tuple(attrs.get("RepoDigests") or ()),
                         int(attrs.get("Size") or 0), tuple((attrs.get("RootFS") or {}).get("Layers") or ()))

    def find(self, reference: str) -> ImageInfo | None:
        """`inspect`, or None when the image is not on this engine."""
        try:
            return self.inspect(reference)
        except DockerError as e:
            if e.status == 404:
                return None
            raise

    def tag(self, image: str, repository: str, tag: str) -> None:
        """Give a local image another name."""
        try:
            self._client.api.tag(image, repository, tag)
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"cannot tag {image} as {repository}:{tag}: {_explain(e)}", status=_status(e)) from e

    def save(self, reference: str, target: Path) -> None:
        """Write `docker save` of one image to `target` (what `trivy image --input` reads)."""
        try:
            with target.open("wb") as out:
                for chunk in self._client.images.get(reference).save(named=True):
                    out.write(chunk)
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"cannot save {reference}: {_explain(e)}", status=_status(e)) from e

    def import_tar(self, tar: Path, repository: str, tag: str, changes: Sequence[str]) -> str:
        """`docker import` a root filesystem tar with Dockerfile-style `changes`; returns the image id.

        Raises:
            DockerError: the engine refused the tar or a change line.
        """
        try:
            raw = self._client.api.import_image_from_file(str(tar), repository=repository, tag=tag,
                                                          changes=list(changes))
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"import of {tar} failed: {_explain(e)}", status=_status(e)) from e
        last = json.loads(str(raw).strip().splitlines()[-1])
        if "error" in last or "errorDetail" in last:
            raise DockerError(f"import of {tar} failed: {_event_error(last)}")
        return str(last["status"])

    def pull(self, reference: str, auth: RegistryAuth | None) -> str:
        """Pull `reference` (`repo@sha256:…` or `repo:tag`) unless present; returns the local image id.

        Raises:
            DockerError: the registry or engine refused the pull.
        """
        try:
            try:
                return str(self._client.images.get(reference).id)
            except docker.errors.ImageNotFound:
                pass
            return str(self._client.images.pull(reference, auth_config=auth.auth_config() if auth else None).id)
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"pull of {reference} failed: {_explain(e)}", status=_status(e),
                              hint="Check the registry credentials and that the digest exists.") from e

    def run_job(self, job: ContainerJob) -> ContainerOutcome:
        """Run `job` to completion (or its timeout), then remove the container.

        Raises:
            DockerError: the engine refused to create or start the container (bad image, GPU runtime missing).
        """
        try:
            return _run_job(self._client, job)
        except docker.errors.ImageNotFound as e:
            raise DockerError(f"image {job.image} is not on this engine", status=404,
                              hint="Pull it first (DockerClient.pull) or check the reference.") from e
        except (docker.errors.APIError, requests.RequestException) as e:
            text = _explain(e)
            if job.gpus and NO_GPU_DRIVER in text:
                raise NoGpuRuntime(f"this Docker engine has no GPU runtime ({text})", status=_status(e),
                                   hint="Install NVIDIA's container toolkit on the agent "
                                        "(nvidia-container-runtime-hook on dockerd's PATH) and restart dockerd, "
                                        "run on a GPU agent, or pass --allow-no-gpu.") from e
            raise DockerError(f"job container from {job.image} failed to run: {text}", status=_status(e)) from e

    def start_job(self, job: ContainerJob) -> str:
        """Create and start `job`'s container without waiting for it; returns the container id.

        Raises:
            DockerError: the image is not on this engine (status 404) or the engine refused to create or start it.
        """
        try:
            container = self._client.containers.create(job.image, list(job.command), **create_kwargs(job))
            try:
                container.start()
            except BaseException:
                container.remove(force=True)  # a container that never started must not be found as a job later
                raise
            return str(container.id)
        except docker.errors.ImageNotFound as e:
            raise DockerError(f"image {job.image} is not on this engine", status=404,
                              hint="Pull it first (DockerClient.pull) or check the reference.") from e
        except (docker.errors.APIError, requests.RequestException) as e:
            if job.gpus and NO_GPU_DRIVER in _explain(e):
                raise NoGpuRuntime(f"this Docker engine has no GPU runtime ({_explain(e)})", status=_status(e),
                                   hint="Install NVIDIA's container toolkit on the agent and restart dockerd, "
                                        "or run on a GPU agent.") from e
            raise DockerError(f"job container from {job.image} failed to start: {_explain(e)}",
                              status=_status(e)) from e

    def find_job_container(self, execution_id: str, labels: Mapping[str, str] | None = None) -> JobContainer | None:
        """The job container labelled with `execution_id` (and every one of `labels`), running or ended and not yet
        removed, or None.

        Raises:
            DockerError: the engine failed.
        """
        wanted = [f"{EXECUTION_LABEL}={execution_id}"] + [f"{k}={v}" for k, v in (labels or {}).items()]
        try:
            found = self._client.api.containers(all=True, filters={"label": wanted})
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"cannot list the containers of {execution_id}: {_explain(e)}", status=_status(e)) from e
        if not found:
            return None
        return JobContainer(str(found[0]["Id"]), str(found[0].get("State", "")), dict(found[0].get("Labels") or {}))

    def wait_job(self, container_id: str, timeout_s: float) -> ContainerOutcome:
        """Wait for a started job container to end (killed at `timeout_s`); the container is kept (`remove_job`).

        Raises:
            DockerError: the container no longer exists (status 404) or the engine failed.
        """
        try:
            container = self._client.containers.get(container_id)
            status, timed_out = _wait(container, timeout_s)
            container.reload()
            state = container.attrs.get("State", {})
            logs = container.logs(stdout=True, stderr=True, tail=LOG_TAIL).decode("utf-8", "replace")
        except docker.errors.NotFound as e:
            raise DockerError(f"job container {container_id[:12]} no longer exists", status=404) from e
        except (docker.errors.APIError, requests.RequestException) as e:
            raise DockerError(f"cannot wait for job container {container_id[:12]}: {_explain(e)}",
                              status=_status(e)) from e
        return ContainerOutcome(container_id, status, timed_out, str(state.get("StartedAt", "")),
                                str(state.get("FinishedAt", "")), tuple(logs.splitlines()[-LOG_TAIL:]))

    def remove_job(self, container_id: str) -> None:
        """Remove a job container; one already gone is fine.

        Raises:
            DockerError: the engine refused.
        """
        try:
            self._client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            return
        except (docker.errors.APIError, requests.RequestException) as e:
            if _status(e) == 409:  # another caller is removing it already
                return
            raise DockerError(f"cannot remove job container {container_id[:12]}: {_explain(e)}",
                              status=_status(e)) from e


def create_kwargs(job: ContainerJob) -> dict[str, Any]:
    """The engine request a job makes (`containers.create` keyword arguments); tests check it directly."""
    return dict(
        name=job.name, detach=True, user=job.user, network_mode="none",
        read_only=True, tmpfs={"/tmp": f"rw,size={job.tmpfs_size}"}, nano_cpus=job.nano_cpus,  # noqa: S108
        mem_limit=job.memory_bytes, memswap_limit=job.memory_bytes, security_opt=["no-new-privileges"],
        cap_drop=["ALL"], labels=dict(job.labels or {}), environment=dict(job.environment or {}),
        volumes={str(m.source): {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in job.mounts},
        device_requests=[docker.types.DeviceRequest(count=job.gpus, capabilities=[["gpu"]])] if job.gpus else None,
    )


def _run_job(client: docker.DockerClient, job: ContainerJob) -> ContainerOutcome:
    container = client.containers.create(job.image, list(job.command), **create_kwargs(job))
    try:
        container.start()
        status, timed_out = _wait(container, job.timeout_s)
        container.reload()
        state = container.attrs.get("State", {})
        logs = container.logs(stdout=True, stderr=True, tail=LOG_TAIL).decode("utf-8", "replace")
        return ContainerOutcome(str(container.id), status, timed_out, str(state.get("StartedAt", "")),
                                str(state.get("FinishedAt", "")), tuple(logs.splitlines()[-LOG_TAIL:]))
    finally:
        container.remove(force=True)


def _wait(container: Any, timeout_s: float) -> tuple[int, bool]:
    """Exit code and whether the timeout killed it (the SDK reports a wait timeout as a connection error)."""
    try:
        return int(container.wait(timeout=timeout_s).get("StatusCode", -1)), False
    except requests.exceptions.ConnectionError:
        container.kill()
        return int(container.wait(timeout=60).get("StatusCode", -1)), True


@contextmanager
def _context_tar(context: Path, dockerfile: str, extra_files: Mapping[str, bytes]) -> Iterator[IO[bytes]]:
    """The build context as a tar: .dockerignore and CONTEXT_EXCLUDES honoured, extra files appended."""
    ignore = context / ".dockerignore"
    patterns = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    patterns = [p.strip() for p in patterns if p.strip() and not p.startswith("#")] + list(CONTEXT_EXCLUDES)
    with tempfile.TemporaryFile() as fileobj:
        docker.utils.tar(str(context), exclude=patterns, dockerfile=(dockerfile, None), fileobj=fileobj)
        fileobj.seek(0)
        with tarfile.open(fileobj=fileobj, mode="a") as tar:
            for name, data in sorted(extra_files.items()):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        fileobj.seek(0)
        yield fileobj


def _event_error(event: Mapping[str, Any]) -> str:
    return str((event.get("errorDetail") or {}).get("message") or event.get("error", "unknown error"))


def _parse_build(events: Iterable[dict[str, Any]], tag: str, on_line: LineSink | None) -> BuildResult:
    tail: deque[str] = deque(maxlen=LOG_TAIL)
    image_id = ""
    for event in events:
        if "error" in event or "errorDetail" in event:
            message = (event.get("errorDetail") or {}).get("message") or event.get("error", "unknown error")
            log = "\n".join(tail)
            raise DockerError(f"build of {tag} failed: {message}", hint=f"last build output:\n{log}")
        text = event.get("stream")
        if isinstance(text, str) and text.strip():
            for line in text.rstrip("\n").splitlines():
                tail.append(line)
                if on_line:
                    on_line(line)
        aux = event.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            image_id = str(aux["ID"])
    if not image_id:
        raise DockerError(f"build of {tag} ended without an image id", hint="\n".join(tail))
    return BuildResult(image_id=image_id, tag=tag, log_tail=tuple(tail))


def _parse_push(events: Iterable[dict[str, Any]], reference: str, on_line: LineSink | None) -> PushResult:
    digest, size, pushed, existing = "", 0, 0, 0
    layer_bytes: dict[str, int] = {}
    pushed_ids: list[str] = []
    for event in events:
        if "error" in event or "errorDetail" in event:
            raise DockerError(f"the registry rejected the push of {reference}: {_event_error(event)}",
                              hint="Check the registry credentials and that the tag exists locally.")
        status = str(event.get("status", ""))
        if status == "Pushing":  # progressDetail.total: the compressed size of the layer being sent
            layer = str(event.get("id", ""))
            total = int((event.get("progressDetail") or {}).get("total") or 0)
            layer_bytes[layer] = max(total, layer_bytes.get(layer, 0))
        if status == "Pushed":
            pushed += 1
            pushed_ids.append(str(event.get("id", "")))
        existing += status in ("Layer already exists",) or status.startswith("Mounted from")
        if on_line and status and "progressDetail" not in event:
            on_line(f"{event.get('id', '')} {status}".strip())
        aux = event.get("aux")
        if isinstance(aux, dict) and "Digest" in aux:
            digest, size = str(aux["Digest"]), int(aux.get("Size", 0))
    if not digest:
        raise DockerError(f"push of {reference} ended without a digest; the registry may have dropped it")
    return PushResult(reference, digest, size, pushed, existing, sum(layer_bytes.values()), tuple(pushed_ids))


def _status(e: Exception) -> int | None:
    response = getattr(e, "response", None)
    code = getattr(response, "status_code", None)
    return int(code) if code is not None else None


def _explain(e: Exception) -> str:
    if isinstance(e, docker.errors.APIError):
        return str(e.explanation or e)
    return f"cannot reach the Docker engine ({type(e).__name__})"
