"""Test helpers: cached phantoms, NIfTI/DICOM writers, CLI runner."""
from __future__ import annotations

import json
import random
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from emphysema.cli import main
from emphysema.metrics import lung_metrics
from emphysema.phantom import Phantom, PhantomSpec, make_phantom, write_nifti

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


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


def _dataset(hu_slice: np.ndarray, k: int, spacing: tuple[float, float, float], uids: dict[str, str],
             modality: str, z_mm: float) -> Dataset:
    dz, dy, dx = spacing
    ny, nx = hu_slice.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.Modality, ds.PatientID, ds.InstanceNumber = modality, "PHANTOM", random.randint(1, 10_000)
    ds.Rows, ds.Columns, ds.PixelSpacing, ds.SliceThickness = ny, nx, [dy, dx], dz
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, z_mm]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.PixelPaddingValue = -1024, 1, -2000
    ds.ConvolutionKernel, ds.ImageType = "STANDARD", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelData = (hu_slice.astype(np.int32) + 1024).astype(np.int16).tobytes()
    return ds


def _save(ds: Dataset, path: Path) -> None:
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:  # pydicom 2.x (Debian bookworm)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def write_dicom(ph: Phantom, folder: Path, modality: str = "CT", series_uid: str | None = None,
                z_mm: list[float] | None = None, skip: set[int] = frozenset()) -> str:
    """Write the phantom as a CT series with shuffled file names; slice 0 is the most cranial."""
    folder.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": series_uid or generate_uid()}
    dz = ph.spec.spacing[0]
    zs = z_mm or [100.0 - k * dz for k in range(ph.hu.shape[0])]
    names = list(range(ph.hu.shape[0]))
    random.Random(0).shuffle(names)  # file names must not define the order
    for k in range(ph.hu.shape[0]):
        if k not in skip:
            _save(_dataset(ph.hu[k], k, ph.spec.spacing, uids, modality, zs[k]), folder / f"IM{names[k]:04d}.dcm")
    return uids["series"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap of two masks (1 = identical)."""
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))
