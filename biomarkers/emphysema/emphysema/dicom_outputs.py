"""DICOM SEG (left/right lung) and TID 1500 SR (the key numbers) for DICOM inputs, written with highdicom.

highdicom is the optional extra `dicom-outputs`; without it these files are skipped with a report warning.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import __version__

SEG_FILE = "lung_seg.dcm"
SR_FILE = "report_sr.dcm"
MANUFACTURER = "biomarker-delivery"
# Private coding scheme (DICOM PS3.16: designators starting with 99) for measures without a standard code.
SCHEME = "99EMPHYSEMA"
# (report.json key, code value, code meaning, UCUM unit, unit meaning)
SR_MEASURES = (
    ("laa950_percent", "LAA950", "Lung volume at or below -950 HU (LAA%-950)", "%", "Percent"),
    ("laa910_percent", "LAA910", "Lung volume at or below -910 HU (LAA%-910)", "%", "Percent"),
    ("perc15_hu", "PERC15", "15th percentile of lung attenuation (Perc15)", "[hnsf'U]", "Hounsfield unit"),
    ("lung_volume_ml", "118565006", "Volume", "ml", "milliliter"),
)


def highdicom_missing() -> str | None:
    """Why DICOM SEG/SR cannot be written here, or None when highdicom is importable."""
    try:
        import highdicom  # noqa: F401, PLC0415 - optional extra
    except ImportError:
        return "DICOM SEG and SR not written: highdicom is not installed (extra `dicom-outputs`)"
    return None


# Type 2 attributes (present, may be empty) that highdicom copies from the source; anonymised or synthetic
# series often drop them.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
          "ReferringPhysicianName", "AccessionNumber", "Manufacturer")


def completed_headers(sources: tuple[Any, ...]) -> list[Any]:
    """Copies of the source headers with missing type 2 attributes added empty (the sources stay untouched)."""
    completed = []
    for ds in sources:
        copy = ds.copy()
        for name in _TYPE2:
            if name not in copy:
                setattr(copy, name, "")
        completed.append(copy)
    return completed


def source_mask(labels: np.ndarray, flips: tuple[int, ...]) -> np.ndarray:
    """The label map in the source slices' own row/column order (undoing the canonical in-plane flips)."""
    return np.ascontiguousarray(np.flip(labels, axis=flips) if flips else labels).astype(np.uint8)


def _segment_descriptions(hd: Any) -> list[Any]:
    from pydicom.sr.codedict import codes  # noqa: PLC0415

    algorithm = hd.AlgorithmIdentificationSequence(
        name="emphysema HU segmentation", version=__version__, family=codes.cid7162.MorphologicalOperations)
    sides = ((1, "Right lung", "3341006", "Right lung structure"), (2, "Left lung", "44029006", "Left lung structure"))
    return [hd.seg.SegmentDescription(
        segment_number=number, segment_label=label, segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=hd.sr.CodedConcept(code, "SCT", meaning),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm)
        for number, label, code, meaning in sides]


def write_seg(sources: list[Any], labels: np.ndarray, flips: tuple[int, ...], path: Path) -> None:
    """Binary DICOM SEG: segment 1 right lung, 2 left lung, one frame per source slice, referencing the series."""
    import highdicom as hd  # noqa: PLC0415 - optional extra

    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=source_mask(labels, flips),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=_segment_descriptions(hd),
        series_instance_uid=hd.UID(), series_number=9901, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name="emphysema", software_versions=__version__,
        device_serial_number="0", series_description="Lungs (emphysema)", omit_empty_frames=False)
    seg.save_as(str(path))


def _measurements(hd: Any, report: dict[str, Any]) -> list[Any]:
    return [hd.sr.Measurement(name=hd.sr.CodedConcept(code, "SCT" if code.isdigit() else SCHEME, meaning),
                              value=float(report[key]), unit=hd.sr.CodedConcept(unit, "UCUM", unit_meaning))
            for key, code, meaning, unit, unit_meaning in SR_MEASURES if report.get(key) is not None]


def write_sr(sources: list[Any], report: dict[str, Any], path: Path) -> None:
    """TID 1500 measurement report: LAA%-950, LAA%-910, Perc15 and lung volume of both lungs."""
    import highdicom as hd  # noqa: PLC0415 - optional extra
    from pydicom.sr.codedict import codes  # noqa: PLC0415

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="emphysema", manufacturer_name=MANUFACTURER, model_name=__version__))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Both lungs"),
        algorithm_id=hd.sr.AlgorithmIdentification(name="emphysema", version=__version__),
        finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)], measurements=_measurements(hd, report))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.ChestImaging,
        imaging_measurements=[group], referenced_images=sources)
    sr = hd.sr.Comprehensive3DSR(
        evidence=sources, content=content[0], series_instance_uid=hd.UID(), series_number=9902,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=True,
        series_description=f"Emphysema report ({report.get('variant')})")
    sr.save_as(str(path))
