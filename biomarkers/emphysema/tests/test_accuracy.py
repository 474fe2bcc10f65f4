"""Accuracy against the phantom's exact ground truth (reference section 4.2)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import dice, nifti_of, phantom, truth_metrics

from emphysema.metrics import summarize, HU_MIN, N_BINS
from emphysema.pipeline import run

# (variant, LAA tolerance in points, Dice floor)
LIMITS = {"accurate": (0.3, 0.98), "fast": (0.8, 0.95)}
CASES = [
    dict(seed=0, noise_hu=25.0, shape=(100, 128, 128)),
    dict(seed=1, noise_hu=10.0, shape=(80, 160, 160)),
    dict(seed=2, noise_hu=40.0, shape=(120, 96, 96)),
    dict(seed=3, noise_hu=25.0, shape=(100, 128, 128), emphysema_fraction=0.20, correlated_noise=True),
    dict(seed=4, noise_hu=25.0, shape=(90, 112, 112), emphysema_fraction=0.0),
]


def _ids(case: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in case.items()).replace(" ", "")


@pytest.mark.parametrize("variant", ["accurate", "fast"])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_matches_ground_truth(case: dict, variant: str, tmp_path: Path) -> None:
    ph = phantom(**case)
    report, _, seg = run(nifti_of(ph, tmp_path), variant)
    laa_tol, dice_min = LIMITS[variant]
    truth = truth_metrics(ph)
    assert abs(report["laa950_percent"] - ph.expected_laa950()) <= laa_tol
    assert dice(seg.labels > 0, ph.truth_lung) >= dice_min
    assert report["lung_volume_ml"] == pytest.approx(truth["whole"]["volume_ml"], rel=0.02)
    assert abs(report["perc15_hu"] - truth["whole"]["perc15_hu"]) <= 3
    for side in ("right", "left"):
        assert report["per_lung"][side]["volume_ml"] == pytest.approx(truth["per_lung"][side]["volume_ml"], rel=0.03)


def test_upper_zone_predominance_is_reported(tmp_path: Path) -> None:
    """The phantom puts 70 % of bullae in the upper half: the report must show it."""
    report, _, _ = run(nifti_of(phantom(seed=0), tmp_path), "accurate")
    thirds = report["per_third"]
    assert thirds["upper"]["laa950_percent"] > thirds["lower"]["laa950_percent"]
    assert report["upper_lower_laa950_ratio"] > 1.0


def test_airway_is_removed_and_measured(tmp_path: Path) -> None:
    ph = phantom(seed=0)
    report, _, seg = run(nifti_of(ph, tmp_path), "accurate")
    airway_lumen = ph.labels == 5
    assert (seg.labels[airway_lumen] > 0).mean() < 0.25  # at most the short stubs next to the lungs stay
    assert 20.0 <= report["quality"]["airway_volume_ml"] <= 60.0
    assert abs(report["quality"]["tracheal_air"]["mean_hu"] + 1000) <= 20


def test_threshold_is_inclusive() -> None:
    """-950 HU itself counts as low attenuation (COPDGene/CIP convention)."""
    hist = np.zeros(N_BINS, np.int64)
    for hu in (-950, -949, -951, -1000):
        hist[hu - HU_MIN] += 1
    assert summarize(hist, 1.0)["laa950_percent"] == 75.0


def test_perc15_is_the_discrete_percentile() -> None:
    hist = np.zeros(N_BINS, np.int64)
    hist[np.arange(-1000, -900) - HU_MIN] = 1  # 100 voxels, one per HU from -1000 to -901
    assert summarize(hist, 1.0)["perc15_hu"] == -986  # the 15th voxel
