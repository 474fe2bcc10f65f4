"""Classic HU lung segmentation: air threshold, outside-air removal, airway tracking, L/R split, per-slice fill."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .airway import track_airway
from .backend import CPU, Backend
from .errors import EmphysemaError

AIR_HU = -400  # lungs ~ -850, soft tissue ~ +40: anything between -500 and -320 separates them
MIN_LUNG_ML = 150.0
RIGHT, LEFT = 1, 2


@dataclass
class Segmentation:
    """Lung label map on the input grid (0 none, 1 right, 2 left) and what happened on the way."""

    labels: np.ndarray
    box: tuple[slice, ...]  # bounding box of the labels on the input grid (saves full-volume scans later)
    airway_grid: np.ndarray | None
    stride: int
    info: dict[str, Any] = field(default_factory=dict)


def bbox(mask: Any, xp: Any, margin: int = 0) -> tuple[slice, ...]:
    """Bounding box of a mask as slices, widened by a margin and clipped to the array."""
    out = []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        idx = xp.nonzero(xp.any(mask, axis=other))[0]
        lo, hi = (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0)
        out.append(slice(max(0, lo - margin), min(mask.shape[ax], hi + margin)))
    return tuple(out)


def _border_labels(lab: Any, n: int, xp: Any) -> Any:
    """Flags of labels touching the four in-plane faces (never the z faces: lungs may be cut there)."""
    flags = xp.zeros(n + 1, dtype=bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        flags[face.ravel()] = True
    flags[0] = False
    return flags


def candidate_air(g: Any, voxel_ml: float, be: Backend) -> Any:
    """Air inside the body: below -400 HU, not connected to the in-plane border, not tiny."""
    xp, ndi = be.xp, be.ndi
    lab, n = ndi.label(g < AIR_HU)
    sizes = xp.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    sizes[_border_labels(lab, n, xp)] = 0
    # 0.5 % of the largest keeps an isolated trachea but drops small gas pockets and foam
    keep = sizes >= max(float(sizes.max()) * 0.005, 1.0 / voxel_ml)
    keep[0] = False
    return keep[lab]


def _components(mask: Any, be: Backend) -> tuple[Any, list[int], Any]:
    xp = be.xp
    lab, n = be.ndi.label(mask)
    sizes = xp.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    order = [int(i) for i in be.to_cpu(xp.argsort(sizes)[::-1][: min(n, 4)]) if int(sizes[int(i)]) > 0]
    return lab, order, sizes


def _z_range(m: Any, xp: Any) -> tuple[int, int]:
    zs = xp.nonzero(xp.any(m, axis=(1, 2)))[0]
    return int(zs[0]), int(zs[-1])


def _centroid_x(m: Any, xp: Any) -> float:
    prof = xp.sum(m, axis=(0, 1)).astype(xp.float64)
    return float((prof * xp.arange(prof.size)).sum() / prof.sum())


def pick_lungs(mask: Any, voxel_ml: float, be: Backend) -> list[Any]:
    """The one or two lung components: large, and starting high (stomach gas starts low)."""
    xp = be.xp
    lab, order, sizes = _components(mask, be)
    if not order or float(sizes[order[0]]) * voxel_ml < MIN_LUNG_ML:
        raise EmphysemaError(
            "No lungs were found: the scan has no air-filled region inside the body large enough to be lung. "
            "Check that this is a chest CT covering the lungs."
        )
    big = lab == order[0]
    top, bottom = _z_range(big, xp)
    lungs = [big]
    for lbl in order[1:]:
        m = lab == lbl
        if float(sizes[lbl]) >= 0.1 * float(sizes[order[0]]) and _z_range(m, xp)[0] <= top + 0.5 * (bottom - top + 1):
            lungs.append(m)
        if len(lungs) == 2:
            break
    return lungs


def split_fused(m: Any, be: Backend, max_iter: int = 7) -> Any | None:
    """Split lungs joined by a junction line: erode until two similar parts appear, grow back by nearest seed."""
    xp, ndi = be.xp, be.ndi
    er = m
    for _ in range(max_iter):
        er = ndi.binary_erosion(er)
        lab, order, sizes = _components(er, be)
        if len(order) >= 2 and float(sizes[order[1]]) >= 0.2 * float(sizes[order[0]]):
            seeds = xp.where(lab == order[0], 1, 0) + xp.where(lab == order[1], 2, 0)
            idx = ndi.distance_transform_edt(seeds == 0, return_distances=False, return_indices=True)
            return seeds[tuple(idx)].astype(xp.uint8)
        if not order:
            return None
    return None


def _midline_x(g: Any, be: Backend) -> float:
    """x centre of the body+table in the middle slice (outside air is border-connected)."""
    xp, ndi = be.xp, be.ndi
    sl = g[g.shape[0] // 2]
    lab, n = ndi.label(sl < AIR_HU)
    flags = xp.zeros(n + 1, dtype=bool)
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        flags[edge] = True
    flags[0] = False
    xs = xp.nonzero(xp.any(~flags[lab], axis=0))[0]
    return float((int(xs[0]) + int(xs[-1])) / 2) if xs.size else sl.shape[1] / 2


def upsample(a: Any, s: int, shape: tuple[int, ...], xp: Any) -> Any:
    """True nearest-neighbour upsampling of a strided grid: full index j takes the sample at round(j / s).

    Plain repetition (j // s) would shift the mask by half a coarse voxel and cost ~1 % Dice.
    """
    out = a
    for ax, n in enumerate(shape):
        idx = xp.minimum((xp.arange(n) + s // 2) // s, a.shape[ax] - 1)
        out = xp.take(out, idx, axis=ax)
    return out


def fill_slices(m: Any, be: Backend) -> Any:
    """Fill holes (vessels) in each axial slice with one in-plane labelling instead of a slice loop."""
    xp = be.xp
    s = np.zeros((3, 3, 3), dtype=bool)  # host array: scipy and cupyx both accept a NumPy structure
    s[1, 1, :] = True
    s[1, :, 1] = True
    lab, n = be.ndi.label(~m, structure=s)
    hole = ~_border_labels(lab, n, xp)
    hole[0] = False
    return m | hole[lab]


def fill_per_lung(labels: Any, be: Backend) -> Any:
    """Per-lung fill, so a mediastinum enclosed by both lungs is never filled."""
    xp = be.xp
    for side in (RIGHT, LEFT):
        m = labels == side
        if not bool(m.any()):
            continue
        bz, by, bx = bbox(m, xp, margin=1)
        box = (bz, by, bx)
        filled = fill_slices(m[box], be)
        sub = labels[box]
        sub[filled & (sub == 0)] = side
    return labels


def _split_one(m: Any, be: Backend, coarse: bool) -> Any | None:
    """Try to split one fused component; on fine grids the split runs on a 2x coarser copy."""
    xp = be.xp
    box = bbox(m, xp, margin=1)
    mc = m[box]
    s = 2 if coarse else 1
    part = split_fused(xp.ascontiguousarray(mc[::s, ::s, ::s]), be)
    if part is None:
        return None
    if s > 1:
        part = upsample(part, s, mc.shape, xp)
    out = xp.zeros(m.shape, dtype=xp.uint8)
    out[box] = part * mc
    return out


def assign_sides(lungs: list[Any], midline_x: float, be: Backend, coarse: bool, info: dict[str, Any]) -> Any:
    """Label map 1 = right, 2 = left; x grows towards patient left, so the right lung has the smaller x."""
    xp = be.xp
    parts = lungs
    if len(lungs) == 1:
        split = _split_one(lungs[0], be, coarse)
        if split is not None:
            parts = [split == 1, split == 2]
            info["lungs_fused_split"] = True
    labels = xp.zeros(lungs[0].shape, dtype=xp.uint8)
    if len(parts) == 2:
        a, b = sorted(parts, key=lambda p: _centroid_x(p, xp))
        labels[a], labels[b] = RIGHT, LEFT
    else:
        labels[parts[0]] = RIGHT if _centroid_x(parts[0], xp) < midline_x else LEFT
        info["single_lung"] = "right" if _centroid_x(parts[0], xp) < midline_x else "left"
    return labels


def _remove_airway(c: Any, airway: np.ndarray, be: Backend) -> Any:
    """Subtract the airway dilated by one voxel (its wall partial volume), inside its bounding box only."""
    box = bbox(airway, np, margin=2)
    grown = be.ndi.binary_dilation(be.asarray(airway[box]))
    c[box] &= ~grown
    return c


def _grid_candidates(g: Any, voxel_ml: float, be: Backend) -> tuple[tuple[slice, ...], float, Any]:
    """Candidate air on a whole grid: its bounding box, the midline x (box coordinates) and the cropped mask."""
    cand = candidate_air(g, voxel_ml, be)
    if not bool(cand.any()):
        pick_lungs(cand, voxel_ml, be)  # raises the "no lungs" error
    box = bbox(cand, be.xp, margin=2)
    return box, _midline_x(g, be) - box[2].start, be.xp.ascontiguousarray(cand[box])


def _fine_candidates(hu: np.ndarray, voxel_ml: float, be: Backend) -> tuple[tuple[slice, ...], float, Any]:
    """Full-resolution candidates, labelled only inside a box found on a 2x coarser grid (3-4x less work).

    The box keeps a margin of several voxels around every candidate, so lungs never touch its in-plane
    faces and air touching them can only be outside air, exactly as for the whole image.
    """
    cbox, cmid, _ = _grid_candidates(be.asarray(np.ascontiguousarray(hu[::2, ::2, ::2])), voxel_ml * 8, be)
    box = tuple(slice(max(0, b.start * 2 - 2), min(n, b.stop * 2 + 2)) for b, n in zip(cbox, hu.shape))
    c = candidate_air(be.asarray(np.ascontiguousarray(hu[box])), voxel_ml, be)
    return box, (cmid + cbox[2].start) * 2 - box[2].start, c


def segment(hu: np.ndarray, spacing: tuple[float, float, float], stride: int, be: Backend = CPU) -> Segmentation:
    """Segment the lungs on a grid strided by `stride` and return labels on the full input grid."""
    xp = be.xp
    gsp = (spacing[0] * stride, spacing[1] * stride, spacing[2] * stride)
    gml = gsp[0] * gsp[1] * gsp[2] / 1000.0
    if stride == 1:
        box, mid, c = _fine_candidates(hu, gml, be)
    else:
        box, mid, c = _grid_candidates(be.asarray(np.ascontiguousarray(hu[::stride, ::stride, ::stride])), gml, be)
    airway, info = track_airway(be.to_cpu(c), gsp, mid)
    if airway is not None:
        c = _remove_airway(c, airway, be)
    lungs = pick_lungs(c, gml, be)
    lab_box = fill_per_lung(assign_sides(lungs, mid, be, coarse=stride == 1, info=info), be)
    full = xp.zeros(hu.shape, dtype=xp.uint8)
    fbox = tuple(slice(b.start * stride, min(b.stop * stride, n)) for b, n in zip(box, hu.shape))
    full[fbox] = lab_box if stride == 1 else upsample(lab_box, stride, tuple(f.stop - f.start for f in fbox), xp)
    info["grid_box"] = [(b.start, b.stop) for b in box]
    return Segmentation(labels=be.to_cpu(full), box=fbox, airway_grid=_airway_full_index(airway, box),
                        stride=stride, info=info)


def _airway_full_index(airway: np.ndarray | None, box: tuple[slice, ...]) -> np.ndarray | None:
    """Grid-coordinate indices (N, 3) of airway voxels, for QC of tracheal air on original HU."""
    if airway is None or not airway.any():
        return None
    abox = bbox(airway, np, margin=1)
    idx = np.argwhere(ndi_erode_inplane(airway[abox]))
    return idx + np.array([b.start + a.start for b, a in zip(box, abox)])


def ndi_erode_inplane(m: np.ndarray) -> np.ndarray:
    """Drop the lumen rim so the wall's partial volume does not bias tracheal air HU."""
    from scipy import ndimage  # noqa: PLC0415

    s = np.zeros((3, 3, 3), bool)
    s[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    core = ndimage.binary_erosion(m, structure=s, iterations=2)
    return core if core.sum() >= 10 else ndimage.binary_erosion(m, structure=s)
