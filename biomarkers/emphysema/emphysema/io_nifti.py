"""NIfTI input: reorient to the canonical (z, y, x) layout without a float64 copy."""
from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from .errors import EmphysemaError
from .volume import CTVolume, to_hu_int16

# Voxel axes i, j, k of the reoriented image point to patient Left, Posterior, Inferior,
# so the transposed array is (z cranial→caudal, y anterior→posterior, x right→left).
TARGET_AXES = ("L", "P", "I")
_HASH_POOL = ThreadPoolExecutor(max_workers=1)


def file_sha256(path: Path) -> str:
    """Hash the input file so the report identifies exactly what was measured."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_image(path: Path) -> nib.Nifti1Image:
    try:
        img = nib.load(str(path), mmap=False)  # plain reads beat page-faulting a memmap, and give a writable array
        if len(img.shape) == 4 and img.shape[3] == 1:
            img = img.slicer[..., 0]
    except Exception as exc:
        raise EmphysemaError(f"Cannot read the NIfTI file {path.name}: it is corrupt or not NIfTI ({exc}).") from exc
    if len(img.shape) != 3:
        raise EmphysemaError(f"The NIfTI file {path.name} has shape {img.shape}; a single 3D CT volume is needed.")
    return img


def _raw_data(img: nib.Nifti1Image, path: Path) -> tuple[np.ndarray, float, float]:
    """Unscaled voxel data plus slope/intercept (scaling applied later in int32/float32)."""
    try:
        raw = np.asarray(img.dataobj.get_unscaled())
    except Exception as exc:
        raise EmphysemaError(f"The NIfTI file {path.name} is truncated or corrupt ({exc}).") from exc
    slope, inter = img.dataobj.slope, img.dataobj.inter
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return raw, slope, inter


def read_nifti(path: Path) -> CTVolume:
    """Load a NIfTI CT into a canonical int16 HU volume."""
    img = _load_image(path)
    transform = ornt_transform(io_orientation(img.affine), axcodes2ornt(TARGET_AXES))
    raw, slope, inter = _raw_data(img, path)
    oriented = nib.orientations.apply_orientation(raw, transform)
    affine = img.affine @ nib.orientations.inv_ornt_aff(transform, img.shape)
    hu = np.ascontiguousarray(to_hu_int16(oriented, slope, inter).transpose(2, 1, 0))
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    # hashlib releases the GIL: hashing runs on the second core while we segment
    meta = {"format": "nifti", "file": path.name, "sha256": _HASH_POOL.submit(file_sha256, path)}
    return CTVolume(hu=hu, spacing=(float(zooms[2]), float(zooms[1]), float(zooms[0])), affine=affine, meta=meta)


def write_mask_nifti(mask: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write a (z, y, x) uint8 label map with the input's geometry (gzip level 1: fast)."""
    img = nib.Nifti1Image(np.asarray(mask, dtype=np.uint8).transpose(2, 1, 0), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_data_dtype(np.uint8)
    nib.save(img, str(path))
