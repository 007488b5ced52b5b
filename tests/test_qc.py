"""The QC report's building blocks (livervessels/outputs/qc.py): provenance, the version stamp,
per-structure volumes in millilitres, and JSON that numpy values survive."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from livervessels.outputs.qc import SCHEMA_VERSION, provenance, stamp, structure_summary, write_json


def test_provenance_names_the_study_the_series_and_each_dicom_object_written():
    report = {"selected_series": {"study_instance_uid": "1.2.3", "series_instance_uid": "1.2.3.4"}}
    prov = provenance(report, {"seg": "1.9.1", "sr": "1.9.2", "sc": None})
    assert prov == {"study_instance_uid": "1.2.3", "source_series_instance_uid": "1.2.3.4", "source_file": None,
                    "seg_sop_instance_uid": "1.9.1", "sr_sop_instance_uid": "1.9.2",
                    "key_sr_sop_instance_uid": None, "sc_sop_instance_uid": None}
    nifti = provenance({"file": "/data/ct.nii.gz"})
    assert nifti["source_file"] == "/data/ct.nii.gz" and nifti["study_instance_uid"] is None
    assert all(nifti[f"{k}_sop_instance_uid"] is None for k in ("seg", "sr", "key_sr", "sc"))


def test_stamp_puts_the_version_and_provenance_first():
    stamped = stamp({"b": 1, "a": 2}, {"study_instance_uid": None})
    assert list(stamped) == ["schema_version", "provenance", "b", "a"]
    assert stamped["schema_version"] == SCHEMA_VERSION and SCHEMA_VERSION.startswith("1.")


def test_structure_volumes_are_voxels_times_the_voxel_volume_in_ml():
    liver = np.zeros((10, 10, 10), bool)
    liver[:5, :4, :2] = True  # 40 voxels of 0.8 x 0.8 x 2.5 mm = 64 mm^3
    summary = structure_summary({"liver": liver, "empty": np.zeros_like(liver)}, (0.8, 0.8, 2.5))
    assert summary["liver"] == {"voxels": 40, "volume_ml": pytest.approx(0.064), "empty": False}
    assert summary["empty"] == {"voxels": 0, "volume_ml": 0.0, "empty": True}


def test_numpy_values_paths_and_sets_are_written_as_plain_json(tmp_path):
    path = write_json({"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(3), "p": Path("/x"),
                       "t": (1, 2)}, tmp_path / "qc.json")
    assert json.loads(path.read_text()) == {"n": 3, "x": 0.5, "a": [0, 1, 2], "p": "/x", "t": [1, 2]}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json({"o": object()}, tmp_path / "bad.json")
