"""DICOM series input: grouping, slice sorting along the normal, rescale, padding, gap checks."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from .errors import EmphysemaError
from .volume import HU_FLOOR, CTVolume, to_hu_int16

NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "DOC", "REG", "RTSTRUCT", "RTPLAN", "RTDOSE"}
SKIP_SUFFIXES = {".txt", ".json", ".xml", ".md", ".csv", ".png", ".jpg", ".jpeg", ".pdf", ".nii", ".gz"}


@dataclass
class SliceHeader:
    """What is needed from one file's header to group, sort and check slices."""

    path: Path
    ds: Any


def _list_files(folder: Path) -> list[Path]:
    files = [
        p for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"
        and p.suffix.lower() not in SKIP_SUFFIXES
    ]
    if not files:
        raise EmphysemaError(f"The folder {folder} contains no DICOM files.")
    return files


def _read_header(path: Path) -> SliceHeader:
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:
        raise EmphysemaError(f"The file {path.name} is not a readable DICOM file (corrupt or truncated): {exc}") from exc
    return SliceHeader(path, ds)


def _is_localizer(ds: Any) -> bool:
    return "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]


def group_series(folder: Path) -> dict[str, list[SliceHeader]]:
    """Read all headers and group image slices by SeriesInstanceUID (scouts dropped)."""
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for path in _list_files(folder):
        h = _read_header(path)
        if "Rows" not in h.ds:
            if str(h.ds.get("Modality", "")).upper() in NON_IMAGE_MODALITIES:
                continue  # reports or presentation states stored next to the slices
            raise EmphysemaError(f"The file {path.name} has no image header; it is probably truncated or corrupt.")
        if not _is_localizer(h.ds):
            groups[str(h.ds.get("SeriesInstanceUID", "unknown"))].append(h)
    if not groups:
        raise EmphysemaError(f"The folder {folder} contains no CT image slices.")
    return dict(groups)


def select_series(groups: dict[str, list[SliceHeader]], uid: str | None) -> tuple[str, list[SliceHeader]]:
    """Pick the requested series, or the only one; otherwise fail listing what is there."""
    if uid is not None:
        if uid not in groups:
            raise EmphysemaError(f"Series {uid} is not in the input. Series found:\n{_describe(groups)}")
        return uid, groups[uid]
    if len(groups) > 1:
        raise EmphysemaError(
            f"The input folder holds {len(groups)} series; choose one with --series UID:\n{_describe(groups)}"
        )
    return next(iter(groups.items()))


def _describe(groups: dict[str, list[SliceHeader]]) -> str:
    lines = []
    for uid, hs in groups.items():
        ds = hs[0].ds
        lines.append(f"  {uid}  ({len(hs)} images, {ds.get('Modality', '?')}, '{ds.get('SeriesDescription', '')}')")
    return "\n".join(lines)


def _check_modality(headers: list[SliceHeader]) -> None:
    modalities = {str(h.ds.get("Modality", "")).upper() for h in headers}
    if modalities != {"CT"}:
        raise EmphysemaError(
            f"The series modality is {', '.join(sorted(modalities)) or 'missing'}, not CT; "
            "this biomarker needs a chest CT series."
        )


def _orientation(headers: list[SliceHeader]) -> tuple[np.ndarray, np.ndarray]:
    iops = np.array([[float(v) for v in h.ds.get("ImageOrientationPatient", [1, 0, 0, 0, 1, 0])] for h in headers])
    if np.abs(iops - iops[0]).max() > 1e-3:
        raise EmphysemaError("The slices have different orientations (ImageOrientationPatient); this is not one CT volume.")
    row, col = iops[0, :3], iops[0, 3:]
    return row, col


def _check_in_plane(headers: list[SliceHeader]) -> tuple[float, float]:
    shapes = {(int(h.ds.Rows), int(h.ds.Columns)) for h in headers}
    spacings = {tuple(round(float(v), 4) for v in h.ds.get("PixelSpacing", [0, 0])) for h in headers}
    if len(shapes) > 1 or len(spacings) > 1:
        raise EmphysemaError("The slices differ in matrix size or pixel spacing; this is not one CT volume.")
    dy, dx = next(iter(spacings))
    if dy <= 0 or dx <= 0:
        raise EmphysemaError("The slices have no valid PixelSpacing.")
    return dy, dx


def sort_slices(headers: list[SliceHeader], normal: np.ndarray) -> tuple[list[SliceHeader], float]:
    """Sort cranial→caudal by position along the slice normal and check for gaps."""
    if any("ImagePositionPatient" not in h.ds for h in headers):
        raise EmphysemaError("Some slices lack ImagePositionPatient, so their order cannot be established.")
    pos = np.array([np.dot([float(v) for v in h.ds.ImagePositionPatient], normal) for h in headers])
    sign = -1.0 if normal[2] >= 0 else 1.0  # LPS +z is superior: most superior slice first
    order = np.argsort(sign * pos, kind="stable")
    steps = np.abs(np.diff(pos[order]))
    return [headers[i] for i in order], _check_steps(steps, pos[order])


def _check_steps(steps: np.ndarray, pos: np.ndarray) -> float:
    if steps.size == 0:
        return 1.0
    if steps.min() < 1e-3:
        raise EmphysemaError("Two or more slices share the same position (duplicate slices); check the export.")
    med = float(np.median(steps))
    gaps = np.nonzero(steps > 1.5 * med)[0]
    if gaps.size:
        i = int(gaps[0])
        n = int(round(steps[i] / med)) - 1
        raise EmphysemaError(
            f"Slices are missing: gap of {steps[i]:.2f} mm between positions {pos[i]:.2f} and {pos[i + 1]:.2f} mm "
            f"(about {n} slice(s) at {med:.2f} mm spacing). Re-send the complete series."
        )
    if np.abs(steps - med).max() > max(0.1 * med, 0.01):
        raise EmphysemaError(
            f"Slice spacing is inconsistent ({steps.min():.2f} to {steps.max():.2f} mm); a uniformly spaced series is needed."
        )
    return float(steps.mean())


def _slice_hu(h: SliceHeader) -> np.ndarray:
    try:
        ds = pydicom.dcmread(str(h.path))
        raw = ds.pixel_array
    except Exception as exc:
        raise EmphysemaError(f"The image data of {h.path.name} cannot be decoded (corrupt file or unsupported compression): {exc}") from exc
    if raw.ndim != 2:
        raise EmphysemaError(f"{h.path.name} is a multi-frame image; only single-frame CT slices are supported.")
    hu = to_hu_int16(raw, float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0)))
    pad = ds.get("PixelPaddingValue")
    if pad is not None:
        hu[raw == pad] = HU_FLOOR  # outside the reconstruction circle: air, never tissue
    return hu


def _affine(first: Any, row: np.ndarray, col: np.ndarray, step: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """RAS affine for NIfTI voxel axes (x, y, z) of the canonical array."""
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = row * dx, col * dy, step
    lps[:3, 3] = [float(v) for v in first.ImagePositionPatient]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def read_dicom_series(folder: Path, series_uid: str | None = None) -> CTVolume:
    """Load one CT series from a folder into a canonical int16 HU volume."""
    uid, headers = select_series(group_series(folder), series_uid)
    _check_modality(headers)
    row, col = _orientation(headers)
    dy, dx = _check_in_plane(headers)
    ordered, dz = sort_slices(headers, np.cross(row, col))
    hu = np.empty((len(ordered), int(ordered[0].ds.Rows), int(ordered[0].ds.Columns)), dtype=np.int16)
    for i, h in enumerate(ordered):
        hu[i] = _slice_hu(h)
    ipp = [np.array([float(v) for v in h.ds.ImagePositionPatient]) for h in (ordered[0], ordered[-1])]
    step = (ipp[1] - ipp[0]) / max(1, len(ordered) - 1)
    hu, affine, flips = _canonical_in_plane(hu, _affine(ordered[0].ds, row, col, step, dy, dx))
    return CTVolume(hu=hu, spacing=(dz, dy, dx), affine=affine, meta=_meta(uid, ordered),
                    dicom_sources=tuple(h.ds for h in ordered), dicom_flips=flips)


def _canonical_in_plane(hu: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Flip rows/columns so x runs right→left and y anterior→posterior (RAS affine columns negative)."""
    flips: list[int] = []
    for axis_arr, axis_aff, world in ((2, 0, 0), (1, 1, 1)):
        if affine[world, axis_aff] > 0:  # voxel axis points to +R / +A: flip it
            n = hu.shape[axis_arr]
            hu = np.flip(hu, axis=axis_arr)
            affine = affine.copy()
            affine[:3, 3] += affine[:3, axis_aff] * (n - 1)
            affine[:3, axis_aff] *= -1
            flips.append(axis_arr)
    return np.ascontiguousarray(hu), affine, tuple(flips)


def _meta(uid: str, ordered: list[SliceHeader]) -> dict[str, Any]:
    ds = ordered[0].ds

    def get(name: str) -> Any:
        v = ds.get(name)
        return None if v is None or v == "" else str(v)

    return {
        "format": "dicom", "series_uid": uid, "study_uid": get("StudyInstanceUID"),
        "slice_thickness_mm": float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None,
        "kernel": get("ConvolutionKernel"), "manufacturer": get("Manufacturer"), "kvp": get("KVP"),
        "contrast_agent": get("ContrastBolusAgent"),
    }
