"""Densitometry on original HU inside the (upsampled) mask, via exact integer histograms."""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

HU_MIN, N_BINS = -1024, 4096  # histogram covers -1024..3071 HU; higher values are clipped (dense bone only)
LAA950, LAA910 = -950, -910


def side_third_histograms(hu: np.ndarray, labels: np.ndarray, z_cuts: list[int], box: tuple[slice, ...]) -> np.ndarray:
    """HU histograms [third, side] for sides 1/2 and z slabs; arithmetic keys, no boolean gathers."""
    out = np.zeros((len(z_cuts) - 1, 2, N_BINS), np.int64)
    for t in range(len(z_cuts) - 1):
        for z in range(z_cuts[t], z_cuts[t + 1], SLAB):
            zs = slice(z, min(z + SLAB, z_cuts[t + 1]))
            out[t] += _slab_hist(hu[zs, box[1], box[2]], labels[zs, box[1], box[2]])
    return out


SLAB = 16  # slices per chunk: temporaries stay small and reuse memory instead of faulting in 200+ MB


def _slab_hist(h: np.ndarray, lab: np.ndarray) -> np.ndarray:
    key = lab.astype(np.uint16) * np.uint16(N_BINS)  # side 0/1/2 in the high part
    # two ufuncs instead of np.clip, which is several times slower on int16
    key += (np.maximum(np.minimum(h, HU_MIN + N_BINS - 1), HU_MIN) - HU_MIN).astype(np.uint16)
    return np.bincount(key.ravel(), minlength=3 * N_BINS).reshape(3, N_BINS)[1:]


def _bbox(m: np.ndarray) -> tuple[slice, ...]:
    from .segment import bbox  # noqa: PLC0415 - avoid an import cycle

    return bbox(m, np)


def summarize(hist: np.ndarray, voxel_ml: float) -> dict[str, Any]:
    """LAA% (inclusive: HU <= threshold), discrete Perc15, mean HU and volume from one histogram."""
    n = int(hist.sum())
    if n == 0:
        return {"volume_ml": 0.0, "laa950_percent": None, "laa910_percent": None, "perc15_hu": None, "mean_hu": None}
    cum = np.cumsum(hist)
    hu_axis = np.arange(N_BINS) + HU_MIN
    return {
        "volume_ml": round(n * voxel_ml, 2),
        "laa950_percent": round(100.0 * cum[LAA950 - HU_MIN] / n, 3),
        "laa910_percent": round(100.0 * cum[LAA910 - HU_MIN] / n, 3),
        "perc15_hu": int(hu_axis[np.searchsorted(cum, 0.15 * n)]),
        "mean_hu": round(float((hist * hu_axis).sum() / n), 1),
    }


def third_cuts(labels: np.ndarray, box: tuple[slice, ...]) -> list[int]:
    """z boundaries of upper/middle/lower thirds of equal height over the combined lung extent."""
    zs = np.nonzero(labels[box].any(axis=(1, 2)))[0] + box[0].start
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    return [z0 + ((z1 - z0) * k) // 3 for k in range(4)]


def lung_metrics(hu: np.ndarray, labels: np.ndarray, voxel_ml: float, box: tuple[slice, ...] | None = None) -> dict[str, Any]:
    """Whole-lung, per-lung and per-third metrics from one pass over the lung bounding box."""
    box = box or _bbox(labels > 0)
    cuts = third_cuts(labels, box)
    h = side_third_histograms(hu, labels, cuts, box)  # [third, side, bin]
    whole = summarize(h.sum(axis=(0, 1)), voxel_ml)
    per_lung = {name: summarize(h[:, i].sum(axis=0), voxel_ml) for i, name in enumerate(("right", "left"))}
    per_third = {name: summarize(h[i].sum(axis=0), voxel_ml) for i, name in enumerate(("upper", "middle", "lower"))}
    up, lo = per_third["upper"]["laa950_percent"], per_third["lower"]["laa950_percent"]
    return {
        "whole": whole, "per_lung": per_lung, "per_third": per_third,
        "upper_lower_laa_ratio": round(up / lo, 3) if up is not None and lo else None,
        "lung_z_range": [cuts[0], cuts[-1]],
    }


def cluster_metrics(hu: np.ndarray, labels: np.ndarray, voxel_ml: float, box: tuple[slice, ...] | None = None,
                    min_size: int = 4) -> dict[str, Any]:
    """3D 6-connected LAA-950 clusters: count, largest, bullae >= 1 mL and the power-law exponent D."""
    box = box or _bbox(labels > 0)
    laa = (hu[box] <= LAA950) & (labels[box] > 0)
    lab, n = ndi.label(laa)
    sizes = np.bincount(lab.ravel())[1:]
    big = sizes[sizes >= min_size]
    return {
        "connectivity": 6, "threshold_hu": LAA950, "min_cluster_voxels_for_D": min_size,
        "n_clusters": int(n), "n_clusters_ge_min": int(big.size),
        "largest_cluster_ml": round(float(sizes.max() * voxel_ml), 3) if n else 0.0,
        "n_clusters_ge_1ml": int((sizes * voxel_ml >= 1.0).sum()),
        "powerlaw_D": _powerlaw_d(big),
    }


def _powerlaw_d(sizes: np.ndarray) -> float | None:
    """Slope of the log cumulative size distribution Y(>=s) ~ s^-D on log-spaced sizes."""
    if sizes.size < 10 or sizes.max() <= sizes.min():
        return None
    grid = np.unique(np.geomspace(sizes.min(), sizes.max(), 12).astype(np.int64))
    srt = np.sort(sizes)
    ccdf = (srt.size - np.searchsorted(srt, grid, side="left")) / srt.size
    ok = ccdf > 0
    if ok.sum() < 3:
        return None
    slope = np.polyfit(np.log(grid[ok]), np.log(ccdf[ok]), 1)[0]
    return round(float(-slope), 3)


def tracheal_air(hu: np.ndarray, idx: np.ndarray | None, stride: int) -> dict[str, Any]:
    """Mean and SD of tracheal air on original HU (internal air calibration; SD is a noise estimate)."""
    if idx is None or len(idx) < 10:
        return {"mean_hu": None, "sd_hu": None, "n_voxels": 0}
    v = hu[idx[:, 0] * stride, idx[:, 1] * stride, idx[:, 2] * stride].astype(np.float64)
    return {"mean_hu": round(float(v.mean()), 1), "sd_hu": round(float(v.std()), 1), "n_voxels": int(v.size)}
