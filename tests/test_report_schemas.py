"""qc.json, statistics.json and enhanced_liver_vessels_metadata.json against their JSON Schemas
(docs/schemas/), one naming style for keys, and provenance that names the DICOM objects written."""
from __future__ import annotations

import copy
import json
import re

import jsonschema
import pydicom
import pytest

from livervessels.outputs.qc import SCHEMA_VERSION

from conftest import ROOT

SCHEMAS = ROOT / "docs" / "schemas"
REPORTS = {"qc.json": "qc", "statistics.json": "statistics",
           "enhanced_liver_vessels_metadata.json": "enhanced_liver_vessels_metadata"}


def _schema(name: str) -> dict:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _keys(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}/{key}", key
            yield from _keys(item, f"{path}/{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item, f"{path}[]")


@pytest.mark.parametrize("file", sorted(REPORTS))
def test_each_report_matches_its_schema_with_snake_case_keys(demo_app_output, file):
    report = json.loads((demo_app_output / file).read_text())
    jsonschema.validate(report, _schema(REPORTS[file]))
    assert report["schema_version"] == SCHEMA_VERSION
    odd = [path for path, key in _keys(report) if not re.fullmatch(r"[a-z0-9_]+", key)]
    assert odd == []


def test_the_schemas_reject_a_report_without_provenance_or_with_a_wrong_type(demo_app_output):
    qc = json.loads((demo_app_output / "qc.json").read_text())
    schema = _schema("qc")
    for broken in (lambda r: r.pop("provenance"), lambda r: r["structures"]["liver"].update(voxels="many"),
                   lambda r: r.update(research_use_only=False), lambda r: r.update(schema_version="2.0")):
        report = copy.deepcopy(qc)
        broken(report)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(report, schema)


def test_provenance_names_the_study_the_series_and_every_dicom_object(demo_app_output):
    seg, sr, key_sr, sc = (pydicom.dcmread(demo_app_output / f, stop_before_pixels=True) for f in (
        "segmentations.dcm", "measurements_sr.dcm", "key_measurements_sr.dcm", "preview_sc.dcm"))
    expected = {"study_instance_uid": seg.StudyInstanceUID,
                "source_series_instance_uid": seg.ReferencedSeriesSequence[0].SeriesInstanceUID,
                "source_file": None, "seg_sop_instance_uid": seg.SOPInstanceUID,
                "sr_sop_instance_uid": sr.SOPInstanceUID, "key_sr_sop_instance_uid": key_sr.SOPInstanceUID,
                "sc_sop_instance_uid": sc.SOPInstanceUID}
    for file in REPORTS:
        assert json.loads((demo_app_output / file).read_text())["provenance"] == expected, file


def test_qc_times_the_whole_run_node_by_node(demo_app_output):
    timings = json.loads((demo_app_output / "qc.json").read_text())["timings_s"]
    stages = timings["stages"]
    # every node up to the QC report, in the order they ran
    assert {"study_loader", "ct_series_to_volume", "nnunet_segmentation", "vessel_enhancement",
            "portal_hepatic_split", "dicom_seg_writer", "study_artifacts_writer", "dicom_report_writer"} <= set(stages)
    assert sum(stages.values()) <= timings["total"] + 0.01
    assert stages["nnunet_segmentation"] > 0.5  # the network did run


def test_a_nifti_run_names_its_source_file_and_times_its_stages(tmp_path, small_phantom):
    import nibabel as nib
    import numpy as np

    from livervessels.api import enhance_liver_vessels

    from conftest import MODELS

    source = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(small_phantom.ct.astype(np.int16), small_phantom.affine), source)
    out = tmp_path / "out"
    enhance_liver_vessels(source, out, split_portal_hepatic=True, statistics=True, model_dirs=[MODELS], quiet=True)
    for file, name in REPORTS.items():
        report = json.loads((out / file).read_text())
        jsonschema.validate(report, _schema(name))
        assert report["provenance"]["source_file"] == str(source)
        assert report["provenance"]["seg_sop_instance_uid"] is None  # NIfTI input: no SEG
    timings = json.loads((out / "qc.json").read_text())["timings_s"]
    assert {"read_input", "segment_enhance_split"} <= set(timings["stages"])
    assert timings["total"] >= sum(timings["stages"].values())
