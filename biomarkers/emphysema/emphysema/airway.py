"""Trachea and main bronchi by slice tracking (a 3D grow at -950 HU leaks into bullae, see reference 2.2)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage as ndi

SEED_AREA_MM2 = (50.0, 1000.0)
SEED_MAX_OFFSET_MM = 30.0
MAX_AREA_MM2 = 1500.0  # larger than both main bronchi cut obliquely; a lung cross-section is far larger
MAX_GROWTH = 2.5
EIGHT = np.ones((3, 3), bool)


def find_seed(cand: np.ndarray, px_mm2: float, midline_x: float, dx: float) -> tuple[int, np.ndarray] | None:
    """First slice (from the top) holding a trachea-sized air region near the midline."""
    for z in range(int(0.4 * cand.shape[0]) + 1):
        sl = cand[z]
        if not sl.any():
            continue
        lab, n = ndi.label(sl, structure=EIGHT)
        sizes = np.bincount(lab.ravel())
        xs = np.bincount(lab.ravel(), weights=np.broadcast_to(np.arange(sl.shape[1]), sl.shape).ravel())
        best, best_size = 0, 0
        for lbl in range(1, n + 1):
            area, cx = sizes[lbl] * px_mm2, xs[lbl] / sizes[lbl]
            ok = SEED_AREA_MM2[0] <= area <= SEED_AREA_MM2[1] and abs(cx - midline_x) * dx <= SEED_MAX_OFFSET_MM
            if ok and sizes[lbl] > best_size:
                best, best_size = lbl, sizes[lbl]
        if best:
            return z, lab == best
    return None


def _window(prev: np.ndarray, margin: int) -> tuple[slice, slice]:
    ys, xs = np.nonzero(prev)
    h, w = prev.shape
    return (slice(max(0, ys.min() - margin), min(h, ys.max() + margin + 1)),
            slice(max(0, xs.min() - margin), min(w, xs.max() + margin + 1)))


def _touches_edge(comp: np.ndarray) -> bool:
    return bool(comp[0].any() or comp[-1].any() or comp[:, 0].any() or comp[:, -1].any())


def track_step(sl: np.ndarray, prev: np.ndarray, margin: int, px_mm2: float) -> np.ndarray:
    """Airway cross-section in the next slice: regions touching the previous one that did not explode."""
    win = _window(prev, margin)
    p, s = prev[win], sl[win]
    lab, _ = ndi.label(s, structure=EIGHT)
    sizes = np.bincount(lab.ravel())
    hits = np.unique(lab[ndi.binary_dilation(p, iterations=2) & s])
    out = np.zeros_like(prev)
    for lbl in hits[hits > 0]:
        comp = lab == lbl
        overlap = int((p & ndi.binary_dilation(comp, iterations=2)).sum())
        exploded = sizes[lbl] * px_mm2 > MAX_AREA_MM2 or sizes[lbl] > MAX_GROWTH * max(overlap, 1)
        if not exploded and not _touches_edge(comp):
            out[win] |= comp
    return out


def track_airway(cand: np.ndarray, spacing: tuple[float, float, float], midline_x: float) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Follow the trachea caudally from its seed until every branch has merged into a lung."""
    dz, dy, dx = spacing
    px = dy * dx
    seed = find_seed(cand, px, midline_x, dx)
    if seed is None:
        return None, {"airway_found": False}
    z0, prev = seed
    airway = np.zeros(cand.shape, bool)
    airway[z0] = prev
    margin = max(3, math.ceil(25.0 / dx))
    for z in range(z0 + 1, cand.shape[0]):
        prev = track_step(cand[z], prev, margin, px)
        if not prev.any():
            break
        airway[z] = prev
    return airway, {"airway_found": True, "airway_ml": float(airway.sum() * dz * px / 1000.0)}
