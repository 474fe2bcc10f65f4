"""Test helpers: cached phantoms, NIfTI writer, CLI runner (DICOM: `emphysema.phantom.write_dicom_series`)."""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emphysema.cli import main
from emphysema.metrics import lung_metrics
from emphysema.phantom import Phantom, PhantomSpec, make_phantom, write_nifti

@lru_cache(maxsize=32)
def _cached(spec_repr: str) -> Phantom:
    return make_phantom(eval(spec_repr, {"PhantomSpec": PhantomSpec}))  # noqa: S307 - our own repr


def phantom(**kw: Any) -> Phantom:
    """Phantom for these spec overrides, generated once per test session."""
    return _cached(repr(replace(PhantomSpec(), **kw)))


def truth_metrics(ph: Phantom) -> dict[str, Any]:
    """Metrics measured on the true mask (what a perfect segmentation would report)."""
    dz, dy, dx = ph.spec.spacing
    return lung_metrics(np.maximum(ph.hu, -1024), ph.side, dz * dy * dx / 1000.0)


def nifti_of(ph: Phantom, folder: Path, name: str = "ct.nii.gz") -> Path:
    """Write the phantom as NIfTI and return its path."""
    path = folder / name
    write_nifti(ph, str(path))
    return path


def quantify_cli(inp: Path, out: Path, *extra: str, variant: str = "accurate") -> tuple[int, dict[str, Any] | None]:
    """Run the real CLI entry point; return exit status and the report if one was written."""
    rc = main(["quantify", str(inp), "--variant", variant, "--out", str(out), *extra])
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return rc, report


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two masks (1 = identical)."""
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
