"""Synthetic chest CT phantom with exact ground truth (lives in the package so tests and the benchmark share it)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# Label map values
BG, BODY, TABLE, R_LUNG, L_LUNG, AIRWAY, VESSEL, BULLA = range(8)
LAA_THRESHOLD_INCLUSIVE = -949.5  # integer HU with "<= -950" rule, see reference 4.2


@dataclass
class PhantomSpec:
    """Geometry and image-formation parameters; sizes in mm, array order (z, y, x)."""

    shape: tuple[int, int, int] = (100, 128, 128)
    fov_mm: float = 350.0
    z_extent_mm: float = 300.0
    seed: int = 0
    noise_hu: float = 25.0
    blur_vox: float = 0.6
    correlated_noise: bool = False
    emphysema_fraction: float = 0.05
    lungs: tuple[str, ...] = ("right", "left")
    lungs_touch: bool = False
    lung_top_frac: float = 0.10  # 0 puts the apices on the first slice
    lung_bottom_frac: float = 0.92  # >1 cuts the bases at the last slice
    table: bool = True
    padding: bool = True

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (dz, dy, dx) in mm."""
        nz, ny, nx = self.shape
        return (self.z_extent_mm / nz, self.fov_mm / ny, self.fov_mm / nx)


@dataclass
class Phantom:
    """Image, labels and derived ground truth."""

    hu: np.ndarray
    labels: np.ndarray
    side: np.ndarray  # 0 none, 1 right lung, 2 left lung (true lung incl. vessels and bullae)
    clean: np.ndarray
    spec: PhantomSpec
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def truth_lung(self) -> np.ndarray:
        """True lung mask: parenchyma, vessels and bullae, airways excluded."""
        return self.side > 0

    def expected_laa950(self) -> float:
        """E[LAA%-950] over the true mask (exact in expectation for Gaussian noise)."""
        c = self.clean[self.truth_lung]
        sigma = max(self.spec.noise_hu, 1e-6)
        return float(100.0 * ndtr((LAA_THRESHOLD_INCLUSIVE - c.astype(np.float64)) / sigma).mean())


def _grids(spec: PhantomSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz, ny, nx = spec.shape
    dz, dy, dx = spec.spacing
    z = (np.arange(nz) + 0.5) * dz
    y = (np.arange(ny) - (ny - 1) / 2) * dy  # + posterior
    x = (np.arange(nx) - (nx - 1) / 2) * dx  # + patient left
    return z, y, x


LUNG_GEOM = {"right": (-75.0, 0.0, 47.0, 78.0), "left": (75.0, 0.0, 44.0, 76.0)}  # cx, cy, ax, ay


def _lung_scale(t: np.ndarray) -> np.ndarray:
    """Cross-section scale along the lung height: apex dome and diaphragm taper."""
    apex = np.sqrt(np.clip(t / 0.3, 0, 1))
    base = 1.0 - 0.45 * np.clip((t - 0.75) / 0.25, 0, 1)
    return np.where((t >= 0) & (t <= 1), apex * base, 0.0)


def _paint_anatomy(spec: PhantomSpec, lab: np.ndarray, clean: np.ndarray, side: np.ndarray) -> dict[str, float]:
    z, y, x = _grids(spec)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    body = (xx / 165.0) ** 2 + (yy / 118.0) ** 2 <= 1
    inner = (xx / 155.0) ** 2 + (yy / 108.0) ** 2 <= 1
    spine = xx**2 + (yy - 85.0) ** 2 <= 20.0**2
    table = (yy >= 133) & (yy <= 141) & (np.abs(xx) <= 180) if spec.table else np.zeros_like(body)
    top, bottom = spec.lung_top_frac * spec.z_extent_mm, spec.lung_bottom_frac * spec.z_extent_mm
    t_all = (z - top) / (bottom - top)
    scales = _lung_scale(t_all)
    for k in range(spec.shape[0]):
        sl_lab, sl = lab[k], clean[k]
        sl[body], sl[~inner & body], sl[spine] = 40.0, -100.0, 600.0
        sl_lab[body] = BODY
        sl[table], sl_lab[table] = 100.0, TABLE
        _paint_lungs_slice(spec, k, scales[k], t_all[k], xx, yy, sl_lab, sl, side[k])
    return {"top_mm": top, "bottom_mm": bottom}


def _paint_lungs_slice(spec: PhantomSpec, k: int, s: float, t: float, xx: np.ndarray, yy: np.ndarray,
                       sl_lab: np.ndarray, sl: np.ndarray, sl_side: np.ndarray) -> None:
    if s <= 0:
        return
    for name in spec.lungs:
        cx, cy, ax, ay = LUNG_GEOM[name]
        m = ((xx - cx) / (ax * s)) ** 2 + ((yy - cy) / (ay * s)) ** 2 <= 1
        sl[m] = -860.0 + 30.0 * (yy[m] - cy) / ay  # gravity gradient: posterior denser
        sl_lab[m] = R_LUNG if name == "right" else L_LUNG
        sl_side[m] = 1 if name == "right" else 2
    if spec.lungs_touch and len(spec.lungs) == 2 and 0.33 <= t <= 0.66:
        band = (np.abs(xx) <= 40) & (np.abs(yy + 50) <= 6 * s)  # anterior junction band
        sl[band], sl_lab[band] = -860.0, R_LUNG
        sl_side[band] = np.where(xx[band] < 0, 1, 2)
        sl_lab[band & (xx > 0)] = L_LUNG


def _segment_dist(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((pts - a) @ ab) / max(float(ab @ ab), 1e-9), 0, 1)
    return np.linalg.norm(pts - (a + t[..., None] * ab), axis=-1)


def _box(spec: PhantomSpec, a: np.ndarray, b: np.ndarray, r: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """Voxel box around a segment and the mm coordinates of its voxels (z, y, x)."""
    z, y, x = _grids(spec)
    lo, hi = np.minimum(a, b) - r, np.maximum(a, b) + r
    sls = tuple(slice(int(np.searchsorted(c, l)), int(np.searchsorted(c, h))) for c, l, h in zip((z, y, x), lo, hi))
    pts = np.stack(np.meshgrid(z[sls[0]], y[sls[1]], x[sls[2]], indexing="ij"), axis=-1)
    return sls, pts


def _paint_tube(spec: PhantomSpec, lab: np.ndarray, clean: np.ndarray, side: np.ndarray, a: np.ndarray,
                b: np.ndarray, r: float, value: float, label: int, inside_lung: bool) -> None:
    sls, pts = _box(spec, a, b, r)
    if pts.size == 0:
        return
    m = _segment_dist(pts, a, b) <= r
    lung_here = side[sls] > 0
    m &= lung_here if inside_lung else ~lung_here
    clean[sls][m], lab[sls][m] = value, label


def _paint_airways(spec: PhantomSpec, lab: np.ndarray, clean: np.ndarray, side: np.ndarray, geo: dict[str, float]) -> None:
    top, bottom = geo["top_mm"], geo["bottom_mm"]
    carina = np.array([top + 0.3 * (bottom - top), -20.0, 0.0])
    start = np.array([-10.0, -20.0, 0.0])
    # bronchi leave the carina steeply enough to separate before they reach the lungs, as real main bronchi do
    ends = [(carina + [0.0, 0.0, sx * 5.0], np.array([carina[0] + 40.0, -5.0, sx * 52.0])) for sx in (-1.0, 1.0)]
    tubes = [(start, carina, 11.0, 9.0)] + [(a, b, 8.5, 6.5) for a, b in ends]
    for a, b, r_wall, _ in tubes:  # all walls first, so no wall cuts another branch's lumen at the carina
        _paint_tube(spec, lab, clean, side, a, b, r_wall, 40.0, BODY, inside_lung=False)
    for a, b, _, r_lumen in tubes:  # painted outside the lungs only: bronchi open into the parenchyma
        _paint_tube(spec, lab, clean, side, a, b, r_lumen, -1000.0, AIRWAY, inside_lung=False)


def _paint_vessels(spec: PhantomSpec, rng: np.random.Generator, lab: np.ndarray, clean: np.ndarray, side: np.ndarray) -> None:
    lung_idx = np.flatnonzero(side)
    if lung_idx.size == 0:
        return
    for _ in range(40):
        c = _voxel_mm(spec, rng.choice(lung_idx))
        d = rng.normal(size=3) * (1.0, 0.5, 0.5)
        d /= np.linalg.norm(d)
        half = rng.uniform(20, 60) * d
        _paint_tube(spec, lab, clean, side, c - half, c + half, rng.uniform(1.5, 4.0), 40.0, VESSEL, inside_lung=True)


def _voxel_mm(spec: PhantomSpec, flat_index: int) -> np.ndarray:
    """mm coordinates (z, y, x) of a voxel given by its flat index."""
    grids = _grids(spec)
    idx = np.unravel_index(flat_index, spec.shape)
    return np.array([g[i] for g, i in zip(grids, idx)], float)


def _paint_bullae(spec: PhantomSpec, rng: np.random.Generator, lab: np.ndarray, clean: np.ndarray, side: np.ndarray) -> int:
    n_lung = int((side > 0).sum())
    target, painted = spec.emphysema_fraction * n_lung, 0
    lung_idx = np.flatnonzero(side)
    zs = np.unravel_index(lung_idx, side.shape)[0]
    upper = lung_idx[zs < np.median(zs)] if lung_idx.size else lung_idx
    for _ in range(20000):
        if painted >= target or lung_idx.size == 0:
            break
        pool = upper if rng.random() < 0.7 and upper.size else lung_idx
        c = _voxel_mm(spec, rng.choice(pool))
        painted += _try_bulla(spec, lab, clean, side, c, rng.uniform(3.0, 12.0))
    return painted


def _try_bulla(spec: PhantomSpec, lab: np.ndarray, clean: np.ndarray, side: np.ndarray, c: np.ndarray, r: float) -> int:
    """Paint a sphere only if it lies wholly in lung and overlaps no earlier bulla."""
    sls, pts = _box(spec, c, c, r)
    if pts.size == 0:
        return 0
    m = np.linalg.norm(pts - c, axis=-1) <= r
    region_lab, region_side = lab[sls][m], side[sls][m]
    if m.sum() == 0 or (region_side == 0).any() or (region_lab == BULLA).any():
        return 0
    clean[sls][m], lab[sls][m] = -1000.0, BULLA
    return int(m.sum())


def _image(spec: PhantomSpec, rng: np.random.Generator, clean: np.ndarray) -> np.ndarray:
    if spec.blur_vox > 0:
        ndi.gaussian_filter(clean, spec.blur_vox, output=clean)
    noise = rng.standard_normal(clean.shape, dtype=np.float32)
    if spec.correlated_noise:
        ndi.gaussian_filter(noise, 0.7, output=noise)
        noise /= noise.std()
    noise *= np.float32(spec.noise_hu)
    noise += clean
    hu = np.clip(np.rint(noise), -3024, 3071).astype(np.int16)
    if spec.padding:
        _, y, x = _grids(spec)
        outside = (y[:, None] ** 2 + x[None, :] ** 2) > (spec.fov_mm / 2) ** 2
        hu[:, outside] = -3024
    return hu


def make_phantom(spec: PhantomSpec | None = None) -> Phantom:
    """Build the phantom: anatomy, airways, vessels, bullae, then blur and noise."""
    spec = spec or PhantomSpec()
    rng = np.random.default_rng(spec.seed)
    lab = np.zeros(spec.shape, np.uint8)
    clean = np.full(spec.shape, -1000.0, np.float32)
    side = np.zeros(spec.shape, np.uint8)
    geo = _paint_anatomy(spec, lab, clean, side)
    _paint_airways(spec, lab, clean, side, geo)
    _paint_vessels(spec, rng, lab, clean, side)
    n_bulla = _paint_bullae(spec, rng, lab, clean, side)
    n_lung = int((side > 0).sum())
    extras = {"bulla_fraction": n_bulla / max(n_lung, 1)}
    hu = _image(spec, rng, clean)  # blurs `clean` in place: E[LAA] needs the blurred noise-free image
    return Phantom(hu=hu, labels=lab, side=side, clean=clean, spec=spec, extras=extras)


def phantom_affine(spec: PhantomSpec) -> np.ndarray:
    """RAS affine for NIfTI voxel axes (x→patient left, y→posterior, z→inferior)."""
    dz, dy, dx = spec.spacing
    nz, ny, nx = spec.shape
    aff = np.diag([-dx, -dy, -dz, 1.0])
    aff[:3, 3] = [(nx - 1) / 2 * dx, (ny - 1) / 2 * dy, 0.0]
    return aff


def write_nifti(ph: Phantom, path: str) -> None:
    """Save the phantom HU as int16 NIfTI in the canonical orientation."""
    import nibabel as nib  # noqa: PLC0415 - only needed when writing files

    img = nib.Nifti1Image(ph.hu.transpose(2, 1, 0), phantom_affine(ph.spec))
    img.header.set_data_dtype(np.int16)
    img.set_qform(img.affine, code=1)
    nib.save(img, path)


CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _ct_slice(hu_slice: np.ndarray, spacing: tuple[float, float, float], uids: dict[str, str], modality: str,
              z_mm: float, instance: int) -> Dataset:
    """One CT image: stored = HU + 1024 (intercept -1024), padding value -2000, axial orientation."""
    from pydicom.dataset import Dataset, FileMetaDataset  # noqa: PLC0415 - pydicom only for DICOM
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: PLC0415

    dz, dy, dx = spacing
    ny, nx = hu_slice.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID, ds.PatientName, ds.StudyID, ds.SeriesNumber = uids["frame"], "Phantom^CT", "1", 1
    ds.Modality, ds.PatientID, ds.InstanceNumber = modality, "PHANTOM", instance
    ds.Rows, ds.Columns, ds.PixelSpacing, ds.SliceThickness = ny, nx, [dy, dx], dz
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-(nx - 1) / 2 * dx, -(ny - 1) / 2 * dy, z_mm]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.PixelPaddingValue = -1024, 1, -2000
    ds.ConvolutionKernel, ds.ImageType = "STANDARD", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelData = (hu_slice.astype(np.int32) + 1024).astype(np.int16).tobytes()
    return ds


def _save(ds: Dataset, path: Path) -> None:
    import pydicom  # noqa: PLC0415

    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:  # pydicom 2.x (Debian bookworm)
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def write_dicom_series(ph: Phantom, folder: Path | str, modality: str = "CT", series_uid: str | None = None,
                       z_mm: list[float] | None = None, skip: frozenset[int] | set[int] = frozenset()) -> str:
    """Write the phantom as a CT series; return its SeriesInstanceUID.

    Slice 0 is the most cranial. File names and InstanceNumbers are shuffled, so a reader must sort by
    ImagePositionPatient. `skip` leaves slices out (a gap); `z_mm` sets each slice's position.
    """
    from pydicom.uid import generate_uid  # noqa: PLC0415 - pydicom only for DICOM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    uids = {"study": generate_uid(), "series": series_uid or generate_uid(), "frame": generate_uid()}
    dz = ph.spec.spacing[0]
    zs = z_mm or [100.0 - k * dz for k in range(ph.hu.shape[0])]
    names = list(range(ph.hu.shape[0]))
    rng = random.Random(0)
    rng.shuffle(names)  # file names must not define the order
    for k in range(ph.hu.shape[0]):
        if k not in skip:
            ds = _ct_slice(ph.hu[k], ph.spec.spacing, uids, modality, zs[k], rng.randint(1, 10_000))
            _save(ds, folder / f"IM{names[k]:04d}.dcm")
    return uids["series"]
