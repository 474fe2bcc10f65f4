"""Compressed NIfTI: our streaming inflate gives exactly the volume of the uncompressed file, for every layout."""
from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import phantom

from emphysema import io_nifti
from emphysema.errors import EmphysemaError
from emphysema.io_nifti import read_nifti
from emphysema.phantom import phantom_affine


def _save_both(data: np.ndarray, affine: np.ndarray, folder: Path, slope: float = 1.0, inter: float = 0.0) -> tuple[Path, Path]:
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(slope, inter)
    plain, packed = folder / "ct.nii", folder / "ct.nii.gz"
    nib.save(img, str(plain))
    nib.save(img, str(packed))
    return plain, packed


@pytest.mark.parametrize("layout", ["int16", "big-endian", "scaled-uint16", "float32"])
def test_nii_gz_reads_exactly_like_nii(tmp_path: Path, layout: str) -> None:
    ph = phantom(seed=0, shape=(60, 96, 96))
    hu = ph.hu.transpose(2, 1, 0)
    data, slope, inter = {
        "int16": (hu.astype(np.int16), 1.0, 0.0),
        "big-endian": (hu.astype(">i2"), 1.0, 0.0),
        "scaled-uint16": ((hu.astype(np.int32) + 3024).astype(np.uint16), 1.0, -3024.0),
        "float32": (hu.astype(np.float32), 1.0, 0.0),
    }[layout]
    plain, packed = _save_both(data, phantom_affine(ph.spec), tmp_path, slope, inter)
    a, b = read_nifti(plain), read_nifti(packed)
    assert b.hu.dtype == np.int16 and b.hu.flags.c_contiguous
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert a.spacing == b.spacing


def test_a_truncated_nii_gz_is_refused_with_a_readable_message(tmp_path: Path) -> None:
    ph = phantom(seed=0, shape=(60, 96, 96))
    _, packed = _save_both(ph.hu.transpose(2, 1, 0).astype(np.int16), phantom_affine(ph.spec), tmp_path)
    whole = gzip.decompress(packed.read_bytes())
    packed.write_bytes(gzip.compress(whole[: len(whole) // 2], compresslevel=1))  # a valid gzip of half the voxels
    with pytest.raises(EmphysemaError, match="truncated or corrupt"):
        read_nifti(packed)


def test_python_isal_inflates_when_installed() -> None:
    pytest.importorskip("isal", reason="python-isal (extra `fast-gzip`) is not installed")
    assert io_nifti.GZIP_INFLATER == "isal"
