"""The CT volume in canonical layout: array (z, y, x) = (cranial→caudal, anterior→posterior, right→left)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import EmphysemaError

HU_FLOOR = -1024  # padding / below-air values are clamped here so they never skew histograms
MIN_SLICES = 5


@dataclass
class CTVolume:
    """int16 HU volume plus geometry; affine maps NIfTI (x, y, z) voxel indices to RAS mm."""

    hu: np.ndarray
    spacing: tuple[float, float, float]  # (dz, dy, dx) in mm
    affine: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    # DICOM input only: the slices' headers in array z order and the array axes flipped to reach the canonical
    # in-plane layout, so that DICOM SEG frames can be written in each source slice's own pixel order.
    dicom_sources: tuple[Any, ...] = ()
    dicom_flips: tuple[int, ...] = ()

    @property
    def voxel_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        dz, dy, dx = self.spacing
        return dz * dy * dx / 1000.0


def to_hu_int16(raw: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Apply a rescale and clamp to [-1024, 32767] as int16 without a float64 volume copy."""
    if raw.dtype == np.int16 and float(slope) == 1.0 and float(intercept) == 0.0:
        # common case: clamp in place when we own the buffer, no int32 temporary either way
        return np.maximum(raw, np.int16(HU_FLOOR), out=raw if raw.flags.writeable else None)
    if float(slope) == 1.0 and float(intercept).is_integer():
        out = raw.astype(np.int32, copy=False) + int(intercept)
    else:
        out = np.rint(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))
    return np.clip(out, HU_FLOOR, 32767).astype(np.int16)


def check_volume(vol: CTVolume) -> None:
    """Reject volumes that cannot be a chest CT in HU, with a technician-readable reason."""
    nz = vol.hu.shape[0]
    if nz < MIN_SLICES:
        raise EmphysemaError(
            f"The input has only {nz} image slice(s); a chest CT volume with at least {MIN_SLICES} slices is needed."
        )
    if min(vol.spacing) <= 0 or not np.all(np.isfinite(vol.spacing)):
        raise EmphysemaError(f"The voxel spacing {vol.spacing} mm is invalid.")
    sample = vol.hu[:: max(1, nz // 16)]
    if float((sample < -500).mean()) < 0.005:
        raise EmphysemaError(
            "The image does not look like a CT in Hounsfield units: it contains no air (nothing below -500 HU)."
        )
