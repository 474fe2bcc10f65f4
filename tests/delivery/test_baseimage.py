"""Base images: the cache key follows every input, and the import changes put the venv first on PATH."""

from __future__ import annotations

import tarfile
import uuid
from pathlib import Path

import pytest

from delivery.baseimage import KEY_LABEL, BaseImageSpec, build_base_image
from delivery.config import RegistrySettings
from delivery.docker import DockerClient
from delivery.localenv import RegistryHandle, cache_dir


def test_cache_key_is_stable_and_changes_with_every_input() -> None:
    spec = BaseImageSpec("bookworm", ("ca-certificates", "python3"), "/opt/venv")
    assert spec.key() == BaseImageSpec("bookworm", ("ca-certificates", "python3"), "/opt/venv").key()
    others = [BaseImageSpec("trixie", spec.packages, spec.venv), BaseImageSpec("bookworm", ("python3",), spec.venv),
              BaseImageSpec("bookworm", spec.packages, None),
              BaseImageSpec("bookworm", spec.packages, spec.venv, ("numpy",)),
              BaseImageSpec("bookworm", spec.packages, spec.venv, mirror="http://mirror.example/debian")]
    assert len({spec.key(), *(o.key() for o in others)}) == 1 + len(others)


def test_changes_set_path_cmd_and_the_key_label() -> None:
    spec = BaseImageSpec("bookworm", ("python3",), "/opt/venv")
    changes = spec.changes()
    assert "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in changes
    assert 'CMD ["/bin/bash"]' in changes and f"LABEL {KEY_LABEL}={spec.key()}" in changes


def _seed_rootfs(spec: BaseImageSpec, busybox: Path) -> None:
    """A cached root filesystem tar for `spec` holding only busybox as /bin/sh (no debootstrap needed)."""
    folder = cache_dir() / "base-images"
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / f"{spec.key()}.tar", "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)


def test_reruns_reuse_the_import_and_never_an_image_built_from_it(
    registry: RegistryHandle, docker_client: DockerClient, busybox: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_CACHE", str(tmp_path / "cache"))
    settings = RegistrySettings(registry.host, registry.username, registry.password)
    spec = BaseImageSpec(f"test-{uuid.uuid4().hex[:8]}", ("busybox",))
    _seed_rootfs(spec, busybox)
    quiet = lambda _line: None  # noqa: E731
    first = build_base_image(spec, f"{registry.host}/base/tiny:1", docker_client, settings, progress=quiet)
    assert first.steps == ("rootfs cached", "imported", "pushed")
    context = tmp_path / "derived"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {registry.host}/base/tiny:1\nRUN echo derived > /derived\n")
    docker_client.build(context, f"derived-{spec.suite}:1", network_mode="none")  # inherits the key label

    second = build_base_image(spec, f"{registry.host}/base/tiny2:1", docker_client, settings, progress=quiet)
    assert second.steps == ("local image reused", "pushed")
    assert second.digest == first.digest  # the imported base itself, not the derived image
    third = build_base_image(spec, f"{registry.host}/base/tiny:1", docker_client, settings, progress=quiet)
    assert third.steps == ("registry hit",)
