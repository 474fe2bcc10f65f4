"""Property tests: the histogram metrics equal the textbook definitions on arbitrary HU samples."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emphysema.metrics import HU_MIN, N_BINS, summarize

hu_samples = st.lists(st.integers(min_value=-1024, max_value=600), min_size=1, max_size=400)


@settings(max_examples=60, deadline=None)
@given(hu_samples)
def test_laa_and_perc15_match_definitions(values: list[int]) -> None:
    v = np.array(values)
    hist = np.bincount(v - HU_MIN, minlength=N_BINS)
    s = summarize(hist, 0.5)
    assert s["laa950_percent"] == round(100.0 * float((v <= -950).mean()), 3)
    assert s["laa910_percent"] == round(100.0 * float((v <= -910).mean()), 3)
    assert s["perc15_hu"] == int(np.sort(v)[math.ceil(0.15 * v.size) - 1])
    assert s["volume_ml"] == round(v.size * 0.5, 2)
