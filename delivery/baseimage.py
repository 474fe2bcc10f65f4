"""Base images without any upstream registry: debootstrap, strip, reproducible tar, `docker import`, push."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from delivery.config import RegistrySettings
from delivery.docker import DockerClient
from delivery.errors import ConfigError, ExternalServiceError
from delivery.localenv import cache_dir
from delivery.registry import RegistryClient

RECIPE = 1  # bump when the steps below change what lands in the image
KEY_LABEL = "io.biomarker-delivery.base-key"
CACHE_REPOSITORY = "delivery-cache/base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCE_DATE_EPOCH = "1704067200"  # 2024-01-01: every file's mtime is clamped to it
STRIP = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*", "var/cache/ldconfig/aux-cache",
         "var/cache/debconf/*-old", "tmp/*", "root/.cache")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Progress = Callable[[str], None]


class BaseImageError(ExternalServiceError):
    """debootstrap, chroot or tar failed."""

    service = "debootstrap"


@dataclass(frozen=True)
class BaseImageSpec:
    """Everything that decides the image's content; its hash is the cache key."""

    suite: str
    packages: tuple[str, ...]
    venv: str | None = None
    pip: tuple[str, ...] = ()
    mirror: str = DEFAULT_MIRROR
    variant: str = "minbase"

    def key(self) -> str:
        data = json.dumps({"recipe": RECIPE, **asdict(self)}, sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()[:20]

    def changes(self) -> list[str]:
        """`docker import` changes: PATH (venv first), LANG, CMD and the key label."""
        path = f"{self.venv}/bin:{PATH}" if self.venv else PATH
        env = [f"ENV PATH={path}", "ENV LANG=C.UTF-8"] + ([f"ENV VIRTUAL_ENV={self.venv}"] if self.venv else [])
        return [*env, 'CMD ["/bin/bash"]', f"LABEL {KEY_LABEL}={self.key()}",
                f"LABEL org.opencontainers.image.title=debian-{self.suite}"]


@dataclass(frozen=True)
class BaseImageResult:
    reference: str
    digest: str
    key: str
    steps: tuple[str, ...] = field(default_factory=tuple)


def build_base_image(spec: BaseImageSpec, target: str, docker: DockerClient, registry: RegistrySettings,
                     *, ca_bundle: bytes = b"", progress: Progress = print) -> BaseImageResult:
    """Make `target` (REGISTRY/REPO:TAG) hold the image of `spec`, doing only what is not cached."""
    repository, _, tag = target.rpartition(":")
    if not repository.startswith(registry.host + "/") or not tag:
        raise ConfigError(f"--push {target}: expected {registry.host}/REPOSITORY:TAG (the configured registry)")
    name, key, client = repository[len(registry.host) + 1:], spec.key(), registry.client()
    remote = client.head_manifest(name, tag)
    if remote and _remote_key(client, name, tag) == key:
        progress(f"{target} already holds base {key} ({remote}); nothing to do")
        return BaseImageResult(target, remote, key, ("registry hit",))
    steps: list[str] = []
    # Re-importing would make a new image id and void every build cache above it, so the import keeps a
    # local name of its own (a label would not do: images built FROM the base inherit it).
    local = docker.find(f"{CACHE_REPOSITORY}:{key}")
    if local is None:
        tar = cached_rootfs(spec, ca_bundle, progress, steps)
        progress(f"importing {tar.name}")
        docker.import_tar(tar, CACHE_REPOSITORY, key, spec.changes())
        steps.append("imported")
    else:
        steps.append("local image reused")
    docker.tag(f"{CACHE_REPOSITORY}:{key}", repository, tag)
    pushed = docker.push(repository, tag, registry.auth())
    if client.head_manifest(name, tag) != pushed.digest:
        raise BaseImageError(f"the registry does not hold {pushed.digest} for {target} after the push")
    return BaseImageResult(target, pushed.digest, key, (*steps, "pushed"))


def _remote_key(client: RegistryClient, name: str, tag: str) -> str | None:
    """The base key label in the image config the registry holds for `name:tag`."""
    manifest = client.get_manifest(name, tag).json()
    if "config" not in manifest:
        return None
    config = json.loads(client.get_blob(name, manifest["config"]["digest"]))
    labels = (config.get("config") or {}).get("Labels") or {}
    return labels.get(KEY_LABEL)


def cached_rootfs(spec: BaseImageSpec, ca_bundle: bytes, progress: Progress, steps: list[str]) -> Path:
    """The reproducible root filesystem tar of `spec`, from the cache or built now."""
    folder = cache_dir() / "base-images"
    folder.mkdir(parents=True, exist_ok=True)
    tar = folder / f"{spec.key()}.tar"
    if tar.exists():
        steps.append("rootfs cached")
        return tar
    root = folder / f"{spec.key()}.rootfs"
    _remove_root(root)
    try:
        progress(f"debootstrap {spec.suite} ({', '.join(spec.packages)}) from {spec.mirror}")
        _sh(["debootstrap", f"--variant={spec.variant}", f"--include={','.join(spec.packages)}", spec.suite,
             str(root), spec.mirror])
        _python_env(spec, root, ca_bundle, progress)
        _strip(root)
        if mounted := _mounts_under(root):
            raise BaseImageError(f"{', '.join(mounted)} still mounted after debootstrap; refusing to pack it")
        partial = tar.with_suffix(".partial")
        _sh(["tar", "--sort=name", f"--mtime=@{SOURCE_DATE_EPOCH}", "--clamp-mtime", "--numeric-owner", "--xattrs",
             "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime", "-C", str(root), "-cf",
             str(partial), "."])
        partial.replace(tar)
        steps.append("debootstrapped")
    finally:
        _remove_root(root)
    return tar


def _remove_root(root: Path) -> None:
    """Delete a debootstrap root, but never across a mount (a failed run can leave /proc or a /dev bind inside)."""
    if not root.exists():
        return
    for mount in _mounts_under(root):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    left = _mounts_under(root)
    if left:
        raise BaseImageError(f"{root} still has mounts ({', '.join(left)}); not deleting it",
                             hint="Unmount them by hand, then delete the folder.")
    shutil.rmtree(root, ignore_errors=True)


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    lines = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _python_env(spec: BaseImageSpec, root: Path, ca_bundle: bytes, progress: Progress) -> None:
    if not spec.venv:
        return
    clean = ["env", "-i", f"PATH={PATH}", "LANG=C.UTF-8"]
    _sh(["chroot", str(root), *clean, "python3", "-m", "venv", spec.venv])
    if spec.pip:  # the CA bundle and resolv.conf exist only for this step
        progress(f"pip install {' '.join(spec.pip)} into {spec.venv}")
        (root / "tmp" / "build-ca.crt").write_bytes(ca_bundle)
        shutil.copyfile("/etc/resolv.conf", root / "etc" / "resolv.conf")
        try:
            _sh(["chroot", str(root), *clean, "PIP_CERT=/tmp/build-ca.crt", f"{spec.venv}/bin/pip", "install",
                 "--no-cache-dir", *spec.pip])
        finally:
            (root / "tmp" / "build-ca.crt").unlink(missing_ok=True)
            (root / "etc" / "resolv.conf").unlink(missing_ok=True)


def _strip(root: Path) -> None:
    for pattern in STRIP:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _sh(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise ConfigError(f"{command[0]} is not installed", hint="Run scripts/bootstrap (Debian: debootstrap, tar).")
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={"PATH": os.environ.get("PATH", PATH), "LANG": "C.UTF-8"})
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise BaseImageError(f"{command[0]} failed with exit code {done.returncode}", hint=tail)
