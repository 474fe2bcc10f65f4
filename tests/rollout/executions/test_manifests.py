"""Manifests from the organisation folder: parsed once, parsed again when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

from rollout.executions.manifests import FolderManifests
from tests.support.executions_builders import MANIFEST


def test_a_manifest_is_parsed_again_only_when_its_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "alpha" / "biomarker.yaml"
    path.parent.mkdir()
    path.write_text(MANIFEST.format(name="alpha"))
    manifests = FolderManifests(tmp_path)
    first = manifests.manifest("alpha")
    assert manifests.manifest("alpha") is first  # every API request used to parse the YAML again
    path.write_text(MANIFEST.format(name="alpha").replace("A busybox stand-in", "Another stand-in"))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse-grained file system
    changed = manifests.manifest("alpha")
    assert changed.description.startswith("Another stand-in")
