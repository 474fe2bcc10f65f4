"""Where submissions find a biomarker's manifest (variants, resources, tolerances, workflows)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from delivery.manifest.model import Biomarker, Variant
from delivery.manifest.validate import load_manifest
from rollout.executions.model import ExecutionError


class ManifestSource(Protocol):
    def manifest(self, biomarker: str) -> Biomarker: ...


class FolderManifests:
    """`<root>/<name>/biomarker.yaml`: the local-folder organisation of the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._parsed: dict[Path, tuple[tuple[int, int], Biomarker]] = {}

    def manifest(self, biomarker: str) -> Biomarker:
        """The manifest, parsed again only when the file changed (parsing YAML on every API request held the GIL
        for a fifth of a loaded server's time)."""
        path = self.root / biomarker / "biomarker.yaml"
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None or not path.is_file():
            raise ExecutionError(f"no manifest for {biomarker} at {path}",
                                 hint="Pass --org pointing at the folder holding the biomarker repositories.")
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        manifest = load_manifest(path)
        if manifest.name != biomarker:
            raise ExecutionError(f"{path} declares biomarker {manifest.name}, not {biomarker}")
        self._parsed[path] = (version, manifest)
        return manifest


class FixedManifests:
    """Manifests given directly (tests, triggers, API callers that already hold them)."""

    def __init__(self, *manifests: Biomarker) -> None:
        self._by_name = {m.name: m for m in manifests}

    def manifest(self, biomarker: str) -> Biomarker:
        try:
            return self._by_name[biomarker]
        except KeyError:
            raise ExecutionError(f"no manifest for biomarker {biomarker}") from None


def pick_variant(manifest: Biomarker, name: str | None) -> tuple[str, Variant]:
    """The requested variant, or the first one the manifest declares."""
    chosen = name or next(iter(manifest.variants))
    variant = manifest.variants.get(chosen)
    if variant is None:
        known = ", ".join(manifest.variants)
        raise ExecutionError(f"{manifest.name} has no variant {chosen!r}", hint=f"Choose one of: {known}.")
    return chosen, variant
