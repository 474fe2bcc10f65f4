"""Quality block: internal air calibration, acquisition facts and warnings a reader should see."""
from __future__ import annotations

from typing import Any

from .segment import Segmentation
from .volume import CTVolume

SHARP_KERNEL_HINTS = ("LUNG", "BONE", "SHARP", "B60", "B70", "B80", "BR60", "BL57", "BL64", "FC5", "YA", "YB", "D")
MIN_TLV_ML = 2500.0


def _kernel_is_sharp(kernel: str | None) -> bool:
    if not kernel:
        return False
    k = kernel.upper().strip("[]'\" ")
    return k == "D" or any(k.startswith(h) for h in SHARP_KERNEL_HINTS if h != "D")


def _warnings(vol: CTVolume, seg: Segmentation, numbers: dict[str, Any], trach: dict[str, Any], trunc: dict[str, bool]) -> list[str]:
    w: list[str] = []
    info, meta = seg.info, vol.meta
    if not info.get("airway_found"):
        w.append("Trachea not found (scan may start below the carina): airways may be counted as lung.")
    if trach["mean_hu"] is not None and abs(trach["mean_hu"] + 1000.0) > 20.0:
        w.append(f"Tracheal air reads {trach['mean_hu']} HU (expected -1000 +/- 20): check scanner calibration.")
    thick = meta.get("slice_thickness_mm") or vol.spacing[0]
    if thick > 1.5:
        w.append(f"Slice thickness {thick:.2f} mm > 1.5 mm: LAA% is underestimated on thick slices.")
    if _kernel_is_sharp(meta.get("kernel")):
        w.append(f"Sharp reconstruction kernel ({meta['kernel']}): LAA% is overestimated; prefer a soft kernel.")
    if meta.get("contrast_agent"):
        w.append("Contrast agent recorded: densitometry on contrast CT is less reliable.")
    if trunc["top"] or trunc["bottom"]:
        w.append("Lungs are cut by the scan range (" + ", ".join(k for k, v in trunc.items() if v) + "): volume is incomplete.")
    if (numbers["lung_volume_ml"] or 0) < MIN_TLV_ML:
        w.append(f"Lung volume {numbers['lung_volume_ml']} mL is low: poor inspiration or incomplete coverage.")
    if info.get("single_lung"):
        w.append(f"Only one lung ({info['single_lung']}) was found.")
    if info.get("lungs_fused_split"):
        w.append("Lungs touched each other; they were separated along the junction.")
    return w


def quality_block(vol: CTVolume, seg: Segmentation, numbers: dict[str, Any], trach: dict[str, Any]) -> dict[str, Any]:
    """Everything a reader needs to judge whether the numbers can be trusted."""
    z0, z1 = numbers["_lung_z_range"]
    trunc = {"top": z0 == 0, "bottom": z1 == vol.hu.shape[0]}
    return {
        "tracheal_air": trach,
        "airway_found": bool(seg.info.get("airway_found")),
        "airway_volume_ml": round(seg.info["airway_ml"], 1) if "airway_ml" in seg.info else None,
        "slice_thickness_mm": vol.meta.get("slice_thickness_mm"),
        "slice_spacing_mm": round(vol.spacing[0], 4),
        "kernel": vol.meta.get("kernel"),
        "lungs_fused_split": bool(seg.info.get("lungs_fused_split", False)),
        "single_lung": seg.info.get("single_lung"),
        "lung_truncated": trunc,
        "warnings": _warnings(vol, seg, numbers, trach, trunc),
    }
