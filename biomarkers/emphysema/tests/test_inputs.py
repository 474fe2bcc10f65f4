"""Input handling: DICOM vs NIfTI equivalence and every bad-input case (exit 1 with a readable message)."""
from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import nifti_of, phantom, quantify_cli
from pydicom.data import get_testdata_file

from emphysema.cli import main
from emphysema.io_dicom import read_dicom_series
from emphysema.phantom import write_dicom_series

SMALL = dict(seed=0, shape=(60, 96, 96))
SAME_KEYS = ("laa950_percent", "laa910_percent", "perc15_hu", "lung_volume_ml", "per_lung", "per_third")


def test_dicom_series_and_nifti_give_the_same_report(tmp_path: Path) -> None:
    ph = phantom(**SMALL)
    uid = write_dicom_series(ph, tmp_path / "dcm")
    rc_d, rep_d = quantify_cli(tmp_path / "dcm", tmp_path / "out_d")
    rc_n, rep_n = quantify_cli(nifti_of(ph, tmp_path), tmp_path / "out_n")
    assert rc_d == rc_n == 0
    assert rep_d["input"]["series_uid"] == uid and "sha256" in rep_n["input"]
    for key in SAME_KEYS:  # voxel spacing travels as float32 (NIfTI) vs decimal string (DICOM): volumes to 1e-5
        assert _volumes_rounded(rep_d[key]) == _volumes_rounded(rep_n[key]), key


def _volumes_rounded(v: object) -> object:
    if isinstance(v, dict):
        return {k: round(x, -1) if k.endswith("volume_ml") and x else _volumes_rounded(x) for k, x in v.items()}
    return round(v, -1) if isinstance(v, float) and v > 1000 else v


def _fail(inp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    rc, report = quantify_cli(inp, tmp_path / "out", *extra)
    assert rc == 1 and report is None
    assert not (tmp_path / "out").exists()
    return capsys.readouterr().err


def test_non_ct_modality_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dicom_series(phantom(**SMALL), tmp_path / "dcm", modality="MR")
    assert "modality is MR, not CT" in _fail(tmp_path / "dcm", tmp_path, capsys)


def test_missing_slices_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dicom_series(phantom(**SMALL), tmp_path / "dcm", skip={30, 31})
    err = _fail(tmp_path / "dcm", tmp_path, capsys)
    assert "Slices are missing" in err and "about 2 slice(s)" in err


def test_inconsistent_spacing_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ph = phantom(**SMALL)
    dz = ph.spec.spacing[0]
    steps = [0.0] + [dz * (1.0 if k < 30 else 1.3) for k in range(1, ph.hu.shape[0])]  # no gap, just uneven
    zs = list(100.0 - np.cumsum(steps))
    write_dicom_series(ph, tmp_path / "dcm", z_mm=zs)
    assert "inconsistent" in _fail(tmp_path / "dcm", tmp_path, capsys)


@pytest.mark.parametrize("keep", [300, 0.6, 0])
def test_corrupt_dicom_file_is_named(keep: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Truncated in the header, truncated in the pixels, or garbage: the message names the file."""
    write_dicom_series(phantom(**SMALL), tmp_path / "dcm")
    victim = sorted((tmp_path / "dcm").iterdir())[5]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(keep if keep >= 1 else keep * len(data))] if keep else b"garbage" * 100)
    assert victim.name in _fail(tmp_path / "dcm", tmp_path, capsys)


def test_corrupt_nifti_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "ct.nii.gz"
    bad.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    assert "Cannot read the NIfTI file" in _fail(bad, tmp_path, capsys)


def test_image_without_air_is_not_ct(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mr_like = np.random.default_rng(0).integers(0, 1200, size=(96, 96, 40)).astype(np.int16)
    nib.save(nib.Nifti1Image(mr_like, np.eye(4)), str(tmp_path / "mr.nii.gz"))
    assert "does not look like a CT" in _fail(tmp_path / "mr.nii.gz", tmp_path, capsys)


def test_scan_without_lungs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "No lungs were found" in _fail(nifti_of(phantom(seed=0, shape=(60, 96, 96), lungs=()), tmp_path), tmp_path, capsys)


def test_single_real_ct_slice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dcm").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "dcm" / "a.dcm")
    assert "only 1 image slice" in _fail(tmp_path / "dcm", tmp_path, capsys)


def test_real_ct_slice_is_converted_to_hu(tmp_path: Path) -> None:
    """pydicom's CT_small (chest crop, intercept -1024): its lung pixels average about -780 HU."""
    (tmp_path / "dcm").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "dcm" / "a.dcm")
    vol = read_dicom_series(tmp_path / "dcm")
    lung = vol.hu[vol.hu < -500]
    assert lung.size > 3000 and -800 <= lung.mean() <= -760
    assert vol.meta["kernel"] == "STANDARD"


def test_several_series_need_a_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ph = phantom(**SMALL)
    a = write_dicom_series(ph, tmp_path / "dcm" / "a")
    b = write_dicom_series(ph, tmp_path / "dcm" / "b", modality="CT")
    err = _fail(tmp_path / "dcm", tmp_path, capsys)
    assert a in err and b in err and "--series" in err
    rc, report = quantify_cli(tmp_path / "dcm", tmp_path / "out", "--series", b)
    assert rc == 0 and report["input"]["series_uid"] == b


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "does not exist" in _fail(tmp_path / "nope", tmp_path, capsys)


@pytest.mark.parametrize("argv", [["quantify"], ["quantify", "x", "--out", "o", "--variant", "turbo"], ["frobnicate"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_padding_is_air_not_lung(tmp_path: Path) -> None:
    """Stored -2000 (HU -3024) outside the FOV circle must never reach the histogram."""
    ph = phantom(**SMALL)
    write_dicom_series(ph, tmp_path / "dcm")
    ds = pydicom.dcmread(str(next((tmp_path / "dcm").iterdir())))
    assert int(ds.pixel_array.min()) == -2000
    vol = read_dicom_series(tmp_path / "dcm")
    assert int(vol.hu.min()) == -1024
