"""Base images: the cache key follows every input, and the import changes put the venv first on PATH."""

from __future__ import annotations

from delivery.baseimage import KEY_LABEL, BaseImageSpec


def test_cache_key_is_stable_and_changes_with_every_input() -> None:
    spec = BaseImageSpec("bookworm", ("ca-certificates", "python3"), "/opt/venv")
    assert spec.key() == BaseImageSpec("bookworm", ("ca-certificates", "python3"), "/opt/venv").key()
    others = [BaseImageSpec("trixie", spec.packages, spec.venv), BaseImageSpec("bookworm", ("python3",), spec.venv),
              BaseImageSpec("bookworm", spec.packages, None), BaseImageSpec("bookworm", spec.packages, spec.venv, ("numpy",)),
              BaseImageSpec("bookworm", spec.packages, spec.venv, mirror="http://mirror.example/debian")]
    assert len({spec.key(), *(o.key() for o in others)}) == 1 + len(others)


def test_changes_set_path_cmd_and_the_key_label() -> None:
    spec = BaseImageSpec("bookworm", ("python3",), "/opt/venv")
    changes = spec.changes()
    assert "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in changes
    assert 'CMD ["/bin/bash"]' in changes and f"LABEL {KEY_LABEL}={spec.key()}" in changes
