"""Geometry edge cases a real scan throws at the pipeline."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import dice, nifti_of, phantom, quantify_cli, truth_metrics

from emphysema.pipeline import run


def test_lungs_cut_by_first_and_last_slice_are_kept(tmp_path: Path) -> None:
    """Outside air is removed from in-plane faces only: lungs touching the z faces must survive."""
    ph = phantom(seed=5, lung_top_frac=0.0, lung_bottom_frac=1.08)
    report, _, seg = run(nifti_of(ph, tmp_path), "accurate")
    assert seg.labels[0].any() and seg.labels[-1].any()
    assert report["lung_volume_ml"] == pytest.approx(truth_metrics(ph)["whole"]["volume_ml"], rel=0.02)
    assert report["quality"]["lung_truncated"] == {"top": True, "bottom": True}
    assert any("cut by the scan range" in w for w in report["quality"]["warnings"])


def _reverse_z(src: Path, dst: Path) -> None:
    """Same image stored caudal→cranial: data flipped along k and the affine adjusted to match."""
    img = nib.load(str(src))
    data = np.asarray(img.dataobj)[:, :, ::-1]
    aff = img.affine.copy()
    aff[:3, 3] += aff[:3, 2] * (data.shape[2] - 1)
    aff[:3, 2] *= -1
    nib.save(nib.Nifti1Image(data, aff), str(dst))


def test_reversed_slice_order_gives_the_same_numbers(tmp_path: Path) -> None:
    src = nifti_of(phantom(seed=0), tmp_path)
    _reverse_z(src, tmp_path / "rev.nii.gz")
    a, _, _ = run(src, "accurate")
    b, _, _ = run(tmp_path / "rev.nii.gz", "accurate")
    for key in ("laa950_percent", "perc15_hu", "lung_volume_ml", "per_lung", "per_third"):
        assert a[key] == b[key]


def test_anisotropic_voxels(tmp_path: Path) -> None:
    """5 mm slices and non-square pixels: volumes and LAA% stay right."""
    ph = phantom(seed=6, shape=(60, 112, 144))
    report, _, seg = run(nifti_of(ph, tmp_path), "accurate")
    assert report["input"]["voxel_spacing_mm"] == pytest.approx(list(ph.spec.spacing), abs=1e-3)
    assert report["lung_volume_ml"] == pytest.approx(truth_metrics(ph)["whole"]["volume_ml"], rel=0.02)
    assert abs(report["laa950_percent"] - ph.expected_laa950()) <= 0.3
    assert any("Slice thickness 5.00 mm" in w for w in report["quality"]["warnings"])


@pytest.mark.parametrize("only", ["left", "right"])
def test_one_lung_only(only: str, tmp_path: Path) -> None:
    ph = phantom(seed=7, lungs=(only,))
    rc, report = quantify_cli(nifti_of(ph, tmp_path), tmp_path / "out")
    assert rc == 0
    other = "right" if only == "left" else "left"
    assert report["per_lung"][other]["volume_ml"] == 0.0
    assert report["per_lung"][only]["volume_ml"] == pytest.approx(truth_metrics(ph)["whole"]["volume_ml"], rel=0.03)
    assert report["quality"]["single_lung"] == only


def test_table_is_not_lung(tmp_path: Path) -> None:
    ph = phantom(seed=8, table=True)
    _, _, seg = run(nifti_of(ph, tmp_path), "fast")
    assert (ph.labels == 2).any()
    assert not seg.labels[ph.labels == 2].any()


def test_touching_lungs_are_split(tmp_path: Path) -> None:
    ph = phantom(seed=9, lungs_touch=True)
    report, _, seg = run(nifti_of(ph, tmp_path), "accurate")
    truth = truth_metrics(ph)
    assert report["quality"]["lungs_fused_split"]
    for side, lbl in (("right", 1), ("left", 2)):
        assert report["per_lung"][side]["volume_ml"] == pytest.approx(truth["per_lung"][side]["volume_ml"], rel=0.03)
        assert dice(seg.labels == lbl, ph.side == lbl) >= 0.97


def test_right_lung_is_on_the_patient_right_in_the_mask(tmp_path: Path) -> None:
    """Label 1 must sit at positive RAS x (RAS +x points to the patient's right) in lung_mask.nii.gz."""
    rc, _ = quantify_cli(nifti_of(phantom(seed=0), tmp_path), tmp_path / "out")
    img = nib.load(str(tmp_path / "out" / "lung_mask.nii.gz"))
    data = np.asarray(img.dataobj)
    for lbl, sign in ((1, 1), (2, -1)):
        ijk = np.argwhere(data == lbl).mean(axis=0)
        assert np.sign((img.affine @ [*ijk, 1])[0]) == sign
