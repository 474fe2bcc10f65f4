"""End-to-end quantification: load, segment, measure, report, write outputs."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from . import SCHEMA_VERSION, __version__, dicom_outputs
from .backend import get_backend
from .errors import EmphysemaError
from .io_nifti import read_nifti, write_mask_nifti
from .metrics import cluster_metrics, lung_metrics, tracheal_air
from .outputs import AtomicOutput
from .qc import write_qc_png
from .quality import quality_block
from .segment import Segmentation, segment
from .volume import CTVolume, check_volume


@dataclass(frozen=True)
class Variant:
    """What distinguishes fast from accurate: segmentation grid and extra measures."""

    name: str
    stride: int
    clusters: bool


VARIANTS = {"fast": Variant("fast", 2, False), "accurate": Variant("accurate", 1, True)}


def load_input(path: Path, series_uid: str | None = None) -> CTVolume:
    """DICOM folder or NIfTI file → canonical int16 HU volume (validated)."""
    if not path.exists():
        raise EmphysemaError(f"The input {path} does not exist.")
    if path.is_dir():
        from .io_dicom import read_dicom_series  # noqa: PLC0415 - pydicom import costs 0.2 s; NIfTI runs skip it

        vol = read_dicom_series(path, series_uid)
    elif path.name.endswith((".nii", ".nii.gz")):
        vol = read_nifti(path)
    else:
        raise EmphysemaError(f"The input {path.name} is neither a DICOM series folder nor a NIfTI file (.nii/.nii.gz).")
    check_volume(vol)
    return vol


def _input_block(vol: CTVolume, path: Path) -> dict[str, Any]:
    m = vol.meta
    block = {"format": m["format"], "name": path.name, "voxel_spacing_mm": [round(s, 4) for s in vol.spacing],
             "shape_zyx": list(vol.hu.shape), "slice_count": int(vol.hu.shape[0])}
    for key in ("series_uid", "study_uid", "sha256", "slice_thickness_mm", "kernel", "manufacturer", "kvp"):
        if m.get(key) is not None and not hasattr(m[key], "result"):  # skip a still-running hash
            block[key] = m[key]
    return block


def measure(vol: CTVolume, seg: Segmentation, variant: Variant, timings: dict[str, float]) -> dict[str, Any]:
    """All numbers of the report from original HU inside the full-resolution mask."""
    t = time.perf_counter()
    lm = lung_metrics(vol.hu, seg.labels, vol.voxel_ml, seg.box)
    timings["metrics"] = round(time.perf_counter() - t, 3)
    clusters = None
    if variant.clusters:
        t = time.perf_counter()
        clusters = cluster_metrics(vol.hu, seg.labels, vol.voxel_ml, seg.box)
        timings["clusters"] = round(time.perf_counter() - t, 3)
    w = lm["whole"]
    return {
        "laa950_percent": w["laa950_percent"], "laa910_percent": w["laa910_percent"], "perc15_hu": w["perc15_hu"],
        "pd15_g_per_l": None if w["perc15_hu"] is None else w["perc15_hu"] + 1000,
        "mean_lung_hu": w["mean_hu"], "lung_volume_ml": w["volume_ml"],
        "per_lung": lm["per_lung"], "per_third": lm["per_third"],
        "upper_lower_laa950_ratio": lm["upper_lower_laa_ratio"], "clusters": clusters,
        "_lung_z_range": lm["lung_z_range"],
    }


DEFINITIONS = {
    "laa_rule": "percentage of lung voxels with HU <= threshold (inclusive), thresholds -950 and -910 HU",
    "perc15": "discrete 15th percentile: lowest integer HU at which the cumulative lung histogram reaches 15 %",
    "pd15": "Perc15 + 1000 (g/L); not volume-adjusted",
    "thirds": "equal craniocaudal height of the combined lung z-extent",
    "lung_mask": "air < -400 HU inside the body; vessels filled per axial slice; trachea and main bronchi removed; "
                 "intrapulmonary airways included",
    "lung_mask_labels": {"1": "right lung", "2": "left lung"},
    "densitometry_grid": "original HU on the input grid; the mask is upsampled, HU never resampled",
}


def _segment(vol: CTVolume, variant: Variant, device: str, timings: dict[str, float]) -> Segmentation:
    t = time.perf_counter()
    seg = segment(vol.hu, vol.spacing, variant.stride, get_backend(device))
    timings["segmentation"] = round(time.perf_counter() - t, 3)
    return seg


def _report(vol: CTVolume, seg: Segmentation, variant: Variant, device: str, path: Path, timings: dict[str, float]) -> dict[str, Any]:
    numbers = measure(vol, seg, variant, timings)
    trach = tracheal_air(vol.hu, seg.airway_grid, seg.stride)
    return {
        "schema_version": SCHEMA_VERSION, "biomarker": "emphysema", "version": __version__,
        "variant": variant.name, "device": device, "input": _input_block(vol, path),
        "definitions": {**DEFINITIONS, "segmentation_grid_stride": variant.stride}, **numbers,
        "quality": quality_block(vol, seg, numbers, trach), "timings_s": timings,
    }


def run(path: Path, variant_name: str, device: str = "cpu", series_uid: str | None = None) -> tuple[dict[str, Any], CTVolume, Segmentation]:
    """Quantify one CT without writing anything; returns the report and intermediates."""
    variant, timings = VARIANTS[variant_name], {}
    get_backend(device)  # fail on a missing GPU before spending time on loading
    t0 = time.perf_counter()
    vol = load_input(path, series_uid)
    timings["load"] = round(time.perf_counter() - t0, 3)
    seg = _segment(vol, variant, device, timings)
    report = _report(vol, seg, variant, device, path, timings)
    _finish_meta(vol)
    report["input"] = _input_block(vol, path)
    return report, vol, seg


def quantify(path: Path, variant_name: str, out_dir: Path, device: str = "cpu", series_uid: str | None = None) -> dict[str, Any]:
    """Run and write report.json, lung_mask.nii.gz and qc.png atomically into out_dir."""
    variant, timings = VARIANTS[variant_name], {}
    get_backend(device)
    t0 = time.perf_counter()
    vol = load_input(path, series_uid)
    timings["load"] = round(time.perf_counter() - t0, 3)
    seg = _segment(vol, variant, device, timings)
    out = AtomicOutput(out_dir)
    try:
        t_out = time.perf_counter()
        out.submit("lung_mask.nii.gz", lambda p: write_mask_nifti(seg.labels, vol.affine, p))  # overlaps metrics
        report = _report(vol, seg, variant, device, path, timings)
        z_range = report.pop("_lung_z_range")
        failures = _submit_dicom_outputs(out, vol, seg, report)  # first: its warning is burned into qc.png too
        out.submit("qc.png", lambda p: write_qc_png(vol.hu, seg.labels, vol.spacing, report, z_range, p))
        _finish_meta(vol)
        report["input"] = _input_block(vol, path)
        out.publish(lambda: _final_timings(report, t0, t_out, failures))
    except BaseException:
        out.abort()
        raise
    return report


def _submit_dicom_outputs(out: AtomicOutput, vol: CTVolume, seg: Segmentation, report: dict[str, Any]) -> list[str]:
    """DICOM input: SEG and TID 1500 SR beside the other outputs; returns the list their failures go to."""
    failures: list[str] = []
    if not vol.dicom_sources:
        return failures
    missing = dicom_outputs.highdicom_missing()
    if missing:
        report["quality"]["warnings"].append(missing)
        return failures
    sources = dicom_outputs.completed_headers(vol.dicom_sources)
    seg_writer = lambda p: dicom_outputs.write_seg(sources, seg.labels, vol.dicom_flips, p)  # noqa: E731
    sr_writer = lambda p: dicom_outputs.write_sr(sources, report, p)  # noqa: E731
    out.submit(dicom_outputs.SEG_FILE, _tolerant(seg_writer, failures))
    out.submit(dicom_outputs.SR_FILE, _tolerant(sr_writer, failures))
    return failures


def _tolerant(write: Callable[[Path], None], failures: list[str]) -> Callable[[Path], None]:
    """A DICOM SEG/SR the source headers cannot support is a warning: the numbers and mask stay valid."""
    def run(path: Path) -> None:
        try:
            write(path)
        except Exception as exc:  # noqa: BLE001 - highdicom raises many types for headers it cannot use
            path.unlink(missing_ok=True)
            failures.append(f"{path.name} not written: {type(exc).__name__}: {exc}")
    return run


def _final_timings(report: dict[str, Any], t0: float, t_out: float, failures: list[str]) -> dict[str, Any]:
    report["quality"]["warnings"].extend(failures)  # known only once the writers have finished
    now = time.perf_counter()
    report["timings_s"]["outputs_and_metrics"] = round(now - t_out, 3)
    report["timings_s"]["total"] = round(now - t0, 3)
    return report


def _finish_meta(vol: CTVolume) -> None:
    """Resolve values computed in the background (the input file hash)."""
    pending = vol.meta.get("sha256")
    if hasattr(pending, "result"):
        vol.meta["sha256"] = pending.result()
