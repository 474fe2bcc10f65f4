"""What lands in the output folder, and that nothing partial ever does."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import nifti_of, phantom, quantify_cli
from PIL import Image

import emphysema.pipeline as pipeline
from emphysema import SCHEMA_VERSION, __version__


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    d = tmp_path_factory.mktemp("out")
    ct = nifti_of(phantom(seed=0), d)
    rc, report = quantify_cli(ct, d / "res")
    assert rc == 0
    return ct, d / "res", report


def test_report_has_the_promised_fields(result: tuple[Path, Path, dict]) -> None:
    _, out, r = result
    assert r["schema_version"] == SCHEMA_VERSION and r["version"] == __version__ and r["biomarker"] == "emphysema"
    assert r["variant"] == "accurate" and r["input"]["slice_count"] == 100 and len(r["input"]["sha256"]) == 64
    for key in ("laa950_percent", "laa910_percent", "perc15_hu", "lung_volume_ml"):
        assert isinstance(r[key], (int, float))
    assert set(r["per_lung"]) == {"right", "left"} and set(r["per_third"]) == {"upper", "middle", "lower"}
    assert r["clusters"]["n_clusters_ge_1ml"] > 0 and r["timings_s"]["total"] > 0
    assert "tracheal_air" in r["quality"] and isinstance(r["quality"]["warnings"], list)
    assert json.loads((out / "report.json").read_text()) == r


def test_mask_matches_the_input_grid(result: tuple[Path, Path, dict]) -> None:
    ct, out, r = result
    src, mask = nib.load(str(ct)), nib.load(str(out / "lung_mask.nii.gz"))
    assert mask.shape == src.shape and np.allclose(mask.affine, src.affine, atol=1e-4)
    data = np.asarray(mask.dataobj)
    assert set(np.unique(data)) == {0, 1, 2}
    voxel_ml = float(np.prod(src.header.get_zooms())) / 1000
    assert (data > 0).sum() * voxel_ml == pytest.approx(r["lung_volume_ml"], rel=1e-3)


def test_qc_picture_shows_contour_and_laa(result: tuple[Path, Path, dict]) -> None:
    _, out, _ = result
    img = np.asarray(Image.open(out / "qc.png").convert("RGB"))
    assert img.shape[0] >= 800 and img.shape[1] >= 800
    green = (img[..., 1] > 200) & (img[..., 0] < 50)
    red = (img[..., 0] > 200) & (img[..., 1] < 80)
    assert green.sum() > 500 and red.sum() > 100


def test_fast_variant_skips_clusters(tmp_path: Path) -> None:
    rc, r = quantify_cli(nifti_of(phantom(seed=0), tmp_path), tmp_path / "o", variant="fast")
    assert rc == 0 and r["variant"] == "fast" and r["clusters"] is None
    assert r["definitions"]["segmentation_grid_stride"] == 2


def test_crash_while_writing_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "write_qc_png", boom)
    with pytest.raises(RuntimeError):
        quantify_cli(nifti_of(phantom(seed=0), tmp_path), tmp_path / "res")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def test_previous_result_is_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    (out / "stale.txt").write_text("old run")
    rc, _ = quantify_cli(nifti_of(phantom(seed=0), tmp_path), out)
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["lung_mask.nii.gz", "qc.png", "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz", "res"]


def test_json_flag_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, r = quantify_cli(nifti_of(phantom(seed=0), tmp_path), tmp_path / "o", "--json", variant="fast")
    assert rc == 0 and json.loads(capsys.readouterr().out) == r
