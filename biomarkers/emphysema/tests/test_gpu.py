"""--device gpu: same numbers as the CPU when CuPy and a GPU exist; a clear refusal when they do not."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import nifti_of, phantom, quantify_cli

HAS_CUPY = importlib.util.find_spec("cupy") is not None
KEYS = ("laa950_percent", "laa910_percent", "perc15_hu", "lung_volume_ml", "per_third", "clusters")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUPY, reason="cupy is not importable")
@pytest.mark.parametrize("variant", ["fast", "accurate"])
def test_gpu_reports_the_cpu_numbers(variant: str, tmp_path: Path) -> None:
    ct = nifti_of(phantom(seed=0, lungs_touch=True), tmp_path)
    rc_c, cpu = quantify_cli(ct, tmp_path / "cpu", "--device", "cpu", variant=variant)
    rc_g, gpu = quantify_cli(ct, tmp_path / "gpu", "--device", "gpu", variant=variant)
    assert rc_c == rc_g == 0 and gpu["device"] == "gpu"
    for key in KEYS:
        assert gpu[key] == cpu[key], key
    for side in ("right", "left"):  # nearest-seed ties at the junction may break differently on the GPU
        assert gpu["per_lung"][side]["volume_ml"] == pytest.approx(cpu["per_lung"][side]["volume_ml"], rel=1e-3)


@pytest.mark.skipif(HAS_CUPY, reason="cupy is installed here")
def test_gpu_request_without_cupy_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, report = quantify_cli(nifti_of(phantom(seed=0, shape=(60, 96, 96)), tmp_path), tmp_path / "o", "--device", "gpu")
    assert rc == 1 and report is None
    assert "no usable GPU" in capsys.readouterr().err
