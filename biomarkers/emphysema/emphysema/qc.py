"""QC picture for the radiologist: lung window, green lung contour, red LAA-950 voxels, key numbers."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage as ndi

WINDOW = (-600.0, 1500.0)  # lung window level/width
PANEL = 400
GREEN, RED = (0, 230, 0), (255, 40, 40)


def _gray(hu: np.ndarray) -> np.ndarray:
    level, width = WINDOW
    return (np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0, 1) * 255).astype(np.uint8)


def _overlay(hu: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """RGB slice: LAA voxels inside the lung in red, lung boundary in green."""
    g = _gray(hu)
    rgb = np.stack([g, g, g], axis=-1)
    rgb[(hu <= -950) & lung] = RED
    rgb[lung & ~ndi.binary_erosion(lung)] = GREEN
    return rgb


def _panel(rgb: np.ndarray, row_mm: float, col_mm: float, title: str) -> Image.Image:
    """Resize to physical aspect (anisotropic voxels) and caption the panel."""
    h_mm, w_mm = rgb.shape[0] * row_mm, rgb.shape[1] * col_mm
    scale = PANEL / max(h_mm, w_mm)
    img = Image.fromarray(rgb).resize((max(1, round(w_mm * scale)), max(1, round(h_mm * scale))), Image.NEAREST)
    canvas = Image.new("RGB", (PANEL, PANEL + 18), (0, 0, 0))
    canvas.paste(img, ((PANEL - img.width) // 2, 18 + (PANEL - img.height) // 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill=(255, 255, 255), font=ImageFont.load_default())
    draw.text((4, PANEL // 2), "R", fill=(255, 255, 0), font=ImageFont.load_default())
    draw.text((PANEL - 12, PANEL // 2), "L", fill=(255, 255, 0), font=ImageFont.load_default())
    return canvas


def _caption(report: dict[str, Any]) -> list[str]:
    pl, pt = report["per_lung"], report["per_third"]

    def f(v: Any, unit: str = "") -> str:
        return "n/a" if v is None else f"{v}{unit}"

    return [
        f"LAA%-950 {f(report['laa950_percent'], ' %')}   LAA%-910 {f(report['laa910_percent'], ' %')}   "
        f"Perc15 {f(report['perc15_hu'], ' HU')}   Lung volume {f(report['lung_volume_ml'], ' mL')}",
        f"Right: {f(pl['right']['volume_ml'], ' mL')}, LAA {f(pl['right']['laa950_percent'], ' %')}   "
        f"Left: {f(pl['left']['volume_ml'], ' mL')}, LAA {f(pl['left']['laa950_percent'], ' %')}   "
        f"Upper/middle/lower LAA {f(pt['upper']['laa950_percent'])}/{f(pt['middle']['laa950_percent'])}/"
        f"{f(pt['lower']['laa950_percent'])} %",
        f"Green: lung contour. Red: voxels <= -950 HU. Window W1500/L-600. Variant: {report['variant']}. "
        "Research use only - not for diagnosis.",
    ] + [f"Warning: {w}" for w in report["quality"]["warnings"][:3]]


def write_qc_png(hu: np.ndarray, labels: np.ndarray, spacing: tuple[float, float, float],
                 report: dict[str, Any], z_range: list[int], path: Path) -> None:
    """Three axial levels (30/50/70 % of lung height) and a coronal reformat through the lungs."""
    dz, dy, dx = spacing
    z0, z1 = z_range
    panels = []
    for frac in (0.3, 0.5, 0.7):  # per-slice work only: this runs beside the metrics on the other core
        z = int(z0 + frac * (z1 - z0 - 1))
        panels.append(_panel(_overlay(hu[z], labels[z] > 0), dy, dx, f"Axial {int(frac * 100)}% of lung height (slice {z})"))
    rows = np.nonzero((labels[(z0 + z1) // 2] > 0).any(axis=1))[0]
    yc = int((rows[0] + rows[-1]) // 2) if rows.size else labels.shape[1] // 2
    panels.append(_panel(_overlay(hu[:, yc, :], labels[:, yc, :] > 0), dz, dx, f"Coronal (row {yc})"))
    lines = _caption(report)
    sheet = Image.new("RGB", (2 * PANEL, 2 * (PANEL + 18) + 16 * len(lines) + 8), (0, 0, 0))
    for i, p in enumerate(panels):
        sheet.paste(p, ((i % 2) * PANEL, (i // 2) * (PANEL + 18)))
    draw = ImageDraw.Draw(sheet)
    for i, line in enumerate(lines):
        draw.text((6, 2 * (PANEL + 18) + 4 + 16 * i), line, fill=(255, 255, 255), font=ImageFont.load_default())
    sheet.save(str(path), optimize=False, compress_level=3)
