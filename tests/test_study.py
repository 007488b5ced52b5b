"""livervessels/study.py: a DICOM folder to its selected CT series and the input section of qc.json,
and the input report of a NIfTI file.

The bundled demo study is checked against its own files, read here with pydicom: one 64-slice axial CT
series and a one-image localizer.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pydicom
import pytest

from livervessels.errors import InputError
from livervessels.geometry import Volume
from livervessels.plausibility import WARNINGS_KEY
from livervessels.stage_types import CtStudy
from livervessels.study import load_ct_study, nifti_input_report

from conftest import DEMO_STUDY


@pytest.fixture(scope="module")
def demo_files() -> dict[str, pydicom.Dataset]:
    """Every file of the demo study by path, headers only."""
    return {str(p): pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(DEMO_STUDY.rglob("*.dcm"))}


@pytest.fixture(scope="module")
def demo_study() -> CtStudy:
    return load_ct_study(DEMO_STUDY)


def _ct_files(demo_files) -> dict[str, pydicom.Dataset]:
    return {p: ds for p, ds in demo_files.items() if "AXIAL" in ds.ImageType}


def test_the_demo_volume_has_one_slice_per_file_of_the_axial_series(demo_study, demo_files):
    ct = _ct_files(demo_files)
    assert len(ct) == 64 and len(demo_files) == 65  # the localizer is the 65th file
    first = next(iter(ct.values()))
    # array axis 0 runs along a row (one per column), axis 1 down the columns, axis 2 over the files
    assert demo_study.volume.shape == (int(first.Columns), int(first.Rows), len(ct))
    assert sorted(demo_study.volume.meta["sop_instance_uids"]) == sorted(str(ds.SOPInstanceUID)
                                                                        for ds in ct.values())


def test_each_slice_sits_where_its_file_says(demo_study, demo_files):
    by_uid = {str(ds.SOPInstanceUID): ds for ds in _ct_files(demo_files).values()}
    affine = demo_study.volume.affine
    for k, uid in enumerate(demo_study.volume.meta["sop_instance_uids"]):
        x, y, z = (float(v) for v in by_uid[uid].ImagePositionPatient)
        np.testing.assert_allclose(affine @ [0, 0, k, 1], [-x, -y, z, 1], atol=1e-4)  # LPS -> RAS


def test_slice_pixels_are_the_files_pixels_in_hounsfield_units(demo_study, demo_files):
    uids = demo_study.volume.meta["sop_instance_uids"]
    k = len(uids) // 2
    path = next(p for p, ds in demo_files.items() if str(ds.SOPInstanceUID) == uids[k])
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(demo_study.volume.array[:, :, k], hu.T)


def test_the_input_report_names_every_series_and_the_selected_one(demo_study, demo_files):
    report = demo_study.input_report()
    assert set(report) == {"files_ignored", "series_found", "selected_series", "uid_repairs"}
    assert report["files_ignored"] == []
    files_per_series = Counter(str(ds.SeriesInstanceUID) for ds in demo_files.values())
    found = {s["series_instance_uid"]: s for s in report["series_found"]}
    assert {uid: s["instances"] for uid, s in found.items()} == dict(files_per_series)
    ct = _ct_files(demo_files)
    ct_uid = str(next(iter(ct.values())).SeriesInstanceUID)
    assert [uid for uid, s in found.items() if s["accepted"]] == [ct_uid]
    assert found[ct_uid]["reason"] == "selected"
    localizer = next(s for uid, s in found.items() if uid != ct_uid)
    assert "LOCALIZER" in localizer["reason"]


def test_the_selected_series_section_matches_its_files(demo_study, demo_files):
    ct = list(_ct_files(demo_files).values())
    selected = demo_study.input_report()["selected_series"]
    assert selected["series_instance_uid"] == str(ct[0].SeriesInstanceUID)
    assert selected["study_instance_uid"] == str(ct[0].StudyInstanceUID)
    assert selected["series_description"] == str(ct[0].SeriesDescription)
    assert selected["modality"] == "CT"
    assert selected["instances"] == len(ct) == selected["shape"][2]
    assert selected["shape"] == [int(ct[0].Columns), int(ct[0].Rows), len(ct)]
    z = sorted(float(ds.ImagePositionPatient[2]) for ds in ct)
    row_spacing, column_spacing = (float(v) for v in ct[0].PixelSpacing)
    assert selected["spacing_mm"] == pytest.approx([column_spacing, row_spacing, z[1] - z[0]])
    assert selected["slice_thickness_mm"] == pytest.approx(float(ct[0].SliceThickness))
    assert selected["transfer_syntax_uid"] == str(ct[0].file_meta.TransferSyntaxUID)
    assert "sop_instance_uids" not in selected  # 64 UIDs are not part of the report
    assert selected[WARNINGS_KEY] == []


def test_a_study_with_its_uids_needs_no_repair_and_its_report_is_json(demo_study):
    report = demo_study.input_report()
    assert report["uid_repairs"] == {
        "study_instance_uids_derived": {}, "series_instance_uids_derived": {},
        "sop_instance_uids_taken_from_file_meta": 0, "sop_instance_uids_missing": 0,
        "sop_class_uids_taken_from_file_meta": 0,
    }
    assert json.loads(json.dumps(report)) == report  # qc.json holds it as it is


def test_files_that_are_not_dicom_are_listed_as_ignored(tmp_path):
    study = tmp_path / "study"
    shutil.copytree(DEMO_STUDY / "ct", study / "ct")
    (study / "notes.txt").write_text("not an image")
    report = load_ct_study(study).input_report()
    assert report["files_ignored"] == [{"file": str(study / "notes.txt"), "reason": "not a DICOM file"}]
    assert report["selected_series"]["instances"] == 64
    assert len(report["series_found"]) == 1  # the localizer was not copied


def test_a_missing_or_empty_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_ct_study(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        load_ct_study(tmp_path / "empty")


def test_a_folder_without_dicom_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "scan.bin").write_bytes(b"\x00\x01binary" * 40)
    with pytest.raises(InputError, match=r"no DICOM files found .*\(2 other files ignored\)"):
        load_ct_study(tmp_path)


def test_a_folder_holding_only_a_localizer_is_an_input_error(tmp_path):
    shutil.copytree(DEMO_STUDY / "localizer", tmp_path / "localizer")
    with pytest.raises(InputError, match="no usable CT series.*LOCALIZER"):
        load_ct_study(tmp_path)


def test_the_nifti_report_holds_the_file_grid_and_warnings(tmp_path):
    affine = np.array([[0.123456, 0, 0, 10.1234567],
                       [0, 0.5, 0, -20.0],
                       [0, 0, 2.0, 3.000004],
                       [0, 0, 0, 1]])
    volume = Volume(np.zeros((4, 5, 6), np.int16), affine, {WARNINGS_KEY: ["gantry tilt"], "other": 1})
    report = nifti_input_report(tmp_path / "ct.nii.gz", volume)
    assert report == {
        "file": str(tmp_path / "ct.nii.gz"),
        "shape": [4, 5, 6],
        "spacing_mm": [0.1235, 0.5, 2.0],
        "affine_ras": [[0.12346, 0.0, 0.0, 10.12346], [0.0, 0.5, 0.0, -20.0], [0.0, 0.0, 2.0, 3.0],
                       [0.0, 0.0, 0.0, 1.0]],
        WARNINGS_KEY: ["gantry tilt"],
    }
    report[WARNINGS_KEY].append("added later")
    assert volume.meta[WARNINGS_KEY] == ["gantry tilt"]  # the report holds a copy
    assert json.loads(json.dumps(report)) == report


def test_the_nifti_report_spacing_is_the_length_of_each_axis_of_an_oblique_grid():
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag([0.8, 0.8, 3.0])
    report = nifti_input_report("ct.nii", Volume(np.zeros((2, 3, 4), np.float32), affine))
    assert report["spacing_mm"] == [0.8, 0.8, 3.0]
    assert report[WARNINGS_KEY] == []  # no warnings recorded: an empty list, not a missing key
    assert report["file"] == "ct.nii"
