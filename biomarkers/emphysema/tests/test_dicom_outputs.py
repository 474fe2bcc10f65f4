"""DICOM SEG and TID 1500 SR for DICOM inputs: they parse, reference the source series and match the other outputs."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import pytest
from helpers import nifti_of, phantom, quantify_cli

from emphysema.phantom import write_dicom_series

SMALL = dict(seed=1, shape=(60, 96, 96))
SR_CODES = {"LAA950": "laa950_percent", "LAA910": "laa910_percent", "PERC15": "perc15_hu",
            "118565006": "lung_volume_ml"}


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    pytest.importorskip("highdicom", reason="the `dicom-outputs` extra (highdicom) is not installed")
    root = tmp_path_factory.mktemp("dicom-out")
    uid = write_dicom_series(phantom(**SMALL), root / "ct")
    rc, report = quantify_cli(root / "ct", root / "out", variant="fast")
    assert rc == 0 and report is not None
    return root, uid, report


def _sources(folder: Path) -> dict[str, Any]:
    return {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p) for p in folder.iterdir())}


def test_seg_references_the_source_series_and_its_pixels_match_the_mask(dicom_run: tuple[Path, str, dict]) -> None:
    root, uid, _ = dicom_run
    seg = pydicom.dcmread(root / "out" / "lung_seg.dcm")
    sources = _sources(root / "ct")
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == uid
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedInstanceSequence} == set(sources)
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["Right lung", "Left lung"]
    frames = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    counts, hu_sum, column_sum = {1: 0, 2: 0}, {1: 0.0, 2: 0.0}, {1: 0.0, 2: 0.0}
    for frame, group in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = group.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        source = sources[group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        counts[number] += int(frame.sum())
        hu_sum[number] += float((source.pixel_array.astype(int) - 1024)[frame > 0].sum())
        column_sum[number] += float(np.nonzero(frame)[1].sum())
    mask = np.asarray(nib.load(root / "out" / "lung_mask.nii.gz").dataobj)
    assert counts == {1: int((mask == 1).sum()), 2: int((mask == 2).sum())}
    assert counts[1] > 0 and counts[2] > 0
    # On the right pixels of the right slices: air-like HU under both lungs; with row direction +x (towards
    # the patient's left) the right lung lies in the left half of each frame.
    assert all(hu_sum[n] / counts[n] < -700 for n in (1, 2))
    assert column_sum[1] / counts[1] < seg.Columns / 2 < column_sum[2] / counts[2]


def _numbers(items: Any, found: dict[str, float]) -> dict[str, float]:
    for item in items:
        if item.ValueType == "NUM":
            found[item.ConceptNameCodeSequence[0].CodeValue] = float(item.MeasuredValueSequence[0].NumericValue)
        _numbers(item.get("ContentSequence", []), found)
    return found


def test_sr_holds_the_report_numbers_and_references_the_source_series(dicom_run: tuple[Path, str, dict]) -> None:
    root, uid, report = dicom_run
    sr = pydicom.dcmread(root / "out" / "report_sr.dcm")
    assert sr.Modality == "SR" and sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    numbers = _numbers(sr.ContentSequence, {})
    assert {SR_CODES[c]: v for c, v in numbers.items() if c in SR_CODES} == {k: report[k] for k in SR_CODES.values()}
    (evidence,) = sr.CurrentRequestedProcedureEvidenceSequence
    (series,) = evidence.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == uid
    assert {i.ReferencedSOPInstanceUID for i in series.ReferencedSOPSequence} == set(_sources(root / "ct"))
    assert not any("not written" in w for w in report["quality"]["warnings"])


def test_without_highdicom_the_dicom_outputs_are_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "highdicom", None)  # an environment without the optional extra
    write_dicom_series(phantom(**SMALL), tmp_path / "ct")
    rc, report = quantify_cli(tmp_path / "ct", tmp_path / "out", variant="fast")
    assert rc == 0 and report is not None
    assert not (tmp_path / "out" / "lung_seg.dcm").exists() and not (tmp_path / "out" / "report_sr.dcm").exists()
    assert any("highdicom is not installed" in w for w in report["quality"]["warnings"])


def test_nifti_input_writes_no_dicom_outputs_and_no_warning(tmp_path: Path) -> None:
    rc, report = quantify_cli(nifti_of(phantom(**SMALL), tmp_path), tmp_path / "out", variant="fast")
    assert rc == 0 and report is not None
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["lung_mask.nii.gz", "qc.png", "report.json"]
    assert not any("highdicom" in w for w in report["quality"]["warnings"])
