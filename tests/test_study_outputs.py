"""livervessels/outputs/study_outputs.py: the SEG's series description, the QC report's warnings and
sections, and the statistics, preview and meshes written beside the masks. The whole chain on DICOM
(SEG, SR, reports) runs in tests/test_app.py and tests/test_cli.py; here the pieces are called alone."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from livervessels.geometry import Volume
from livervessels.outputs.study_outputs import (
    PREVIEW_FILE,
    STATISTICS_FILE,
    build_qc,
    seg_series_description,
    write_study_artifacts,
)
from livervessels.stage_types import LiverVesselResult, ModelPlan, SegResult
from livervessels.synthetic.phantom import LABELS

SPLIT_QC = {"total_vessel_voxels": 1000, "portal_fraction": 0.6, "hepatic_fraction": 0.4,
            "confidence": {"overall": 0.873}, "flags": []}


def _result(masks=None, split_qc=None, note="", enhancement=None, contrast_phase=None) -> LiverVesselResult:
    masks = masks if masks is not None else {"liver": np.ones((4, 4, 4), np.uint8)}
    return LiverVesselResult(masks, plan=ModelPlan("demo", "demo_task", "demo_task", note=note),
                             enhancement=enhancement or {}, split_qc=split_qc or {},
                             contrast_phase=contrast_phase or {})


@pytest.mark.parametrize("split_qc, expected", [
    ({}, "Liver vessels RUO"),  # no split, no headline
    (SPLIT_QC, "Liver vessels RUO portal 60% hepatic 40% conf 0.87"),
    ({**SPLIT_QC, "confidence": 0.5}, "Liver vessels RUO portal 60% hepatic 40% conf 0.50"),  # a bare number
    ({**SPLIT_QC, "flags": ["low_confidence"]}, "Liver vessels RUO portal 60% hepatic 40% conf 0.87 CHECK QC"),
    ({**SPLIT_QC, "total_vessel_voxels": 0, "flags": ["no_vessels"]}, "Liver vessels RUO"),  # nothing to split
    ({**SPLIT_QC, "skipped": "no liver"}, "Liver vessels RUO NO LIVER CHECK QC"),
])
def test_the_series_description_carries_the_splits_headline(split_qc, expected):
    assert seg_series_description(split_qc) == expected


def test_the_series_description_says_no_liver_when_only_the_repair_was_skipped_and_fits_dicom():
    assert seg_series_description({}, {"skipped": "no liver in the field of view"}).endswith("NO LIVER CHECK QC")
    long_qc = {**SPLIT_QC, "portal_fraction": 123456789.0}  # absurd, to force a long text
    assert len(seg_series_description(long_qc)) <= 64  # DICOM LO: 64 characters


def test_qc_warnings_name_the_plan_note_missing_uids_ignored_files_split_flags_and_empty_structures():
    masks = {"liver": np.ones((10, 10, 10), np.uint8), "hepatic_veins": np.zeros((10, 10, 10), np.uint8)}
    result = _result(masks, split_qc={**SPLIT_QC, "flags": ["seed_failure"]}, note="demo model: synthetic")
    report = {"uid_repairs": {"series": 1}, "files_ignored": ["a.txt", "b.bin"]}
    qc = build_qc(report, (2.0, 2.0, 2.0), result, SegResult(None, skipped_reason="test"))
    warnings = qc["warnings"]
    assert warnings[0] == "demo model: synthetic"
    assert any("source series lacked UIDs" in w for w in warnings)
    assert "2 non-DICOM or unreadable file(s) ignored" in warnings
    assert any(w.startswith("portal/hepatic split flags: seed_failure") for w in warnings)
    assert "empty structures: hepatic_veins" in warnings
    assert any("ml of liver found" in w for w in warnings)  # 8 ml: the field-of-view check speaks too
    assert qc["research_use_only"] is True and qc["models"]["plan"] == "demo"
    assert qc["dicom_seg"] == {"file": None, "segments": [], "empty_segments_omitted": [], "skipped_reason": "test",
                               "sop_instance_uid": None}
    assert "dicom_sr" not in qc  # no DICOM reports were asked for


def test_a_clean_run_has_no_warnings_and_a_skipped_split_is_not_reported_twice():
    liver = np.zeros((120, 120, 100), np.uint8)
    liver[20:100, 20:100, 20:80] = 1  # 768 ml at (1, 1, 2) mm, inside the scan
    clean = build_qc({}, (1.0, 1.0, 2.0), _result({"liver": liver}, split_qc=SPLIT_QC), SegResult(None))
    assert clean["warnings"] == []
    skipped = {"skipped": "no liver", "flags": ["no_liver_in_field_of_view"]}
    qc = build_qc({}, (1.0, 1.0, 2.0), _result({"liver": liver}, split_qc=skipped), SegResult(None))
    assert not any("split flags" in w for w in qc["warnings"])  # the field-of-view warning says it instead


def test_qc_carries_the_contrast_phase_and_warns_only_when_it_is_clearly_not_portal_venous():
    from livervessels.contrast_phase import estimate_contrast_phase

    liver = np.zeros((120, 120, 100), np.uint8)
    liver[20:100, 20:100, 20:80] = 1
    arterial = estimate_contrast_phase({"aorta": 320, "portal_vein_and_splenic_vein": 75, "liver": 63}).as_qc()
    qc = build_qc({}, (1.0, 1.0, 2.0), _result({"liver": liver}, SPLIT_QC, contrast_phase=arterial), SegResult(None))
    assert qc["contrast_phase"] == arterial and qc["contrast_phase"]["phase"] == "arterial_early"
    assert len(qc["warnings"]) == 1 and qc["warnings"][0].startswith("contrast phase looks arterial early")
    portal = estimate_contrast_phase({"aorta": 175, "portal_vein_and_splenic_vein": 205, "liver": 112}).as_qc()
    qc = build_qc({}, (1.0, 1.0, 2.0), _result({"liver": liver}, SPLIT_QC, contrast_phase=portal), SegResult(None))
    assert qc["warnings"] == [] and qc["contrast_phase"]["phase"] == "portal_venous"


def test_qc_keeps_the_analysis_and_run_timings_and_only_the_repairs_summary():
    enhancement = {"method": "repair", "voxels": 5, "params": {"long": "dict"}, "fallbacks_used": []}
    result = _result(enhancement=enhancement)
    result.timings["enhance"] = 1.5
    qc = build_qc({}, (1.0, 1.0, 1.0), result, SegResult(None), run_timings={"write": 0.25})
    assert qc["timings_s"] == {"analysis": {"enhance": 1.5}, "write": 0.25}
    assert qc["enhancement"] == {"method": "repair", "voxels": 5, "fallbacks_used": []}


def test_statistics_preview_and_meshes_are_written_and_label_maps_are_left_out(tmp_path, small_phantom):
    volume = Volume(small_phantom.ct, small_phantom.affine)
    labels = np.asarray(small_phantom.labels)
    vessels = labels == LABELS["liver_vessels"]
    masks = {"liver": np.isin(labels, [LABELS["liver"], LABELS["liver_vessels"]]).astype(np.uint8),
             "liver_vessels": vessels.astype(np.uint8),
             "hepatic_veins": (labels == LABELS["inferior_vena_cava"]).astype(np.uint8),  # any second mask
             "liver_vessels_labeled": vessels.astype(np.uint8)}
    written = write_study_artifacts(tmp_path, volume, _result(masks))
    names = {Path(p).relative_to(tmp_path).as_posix() for p in written}
    assert {STATISTICS_FILE, PREVIEW_FILE} <= names
    assert {"meshes/liver.stl", "meshes/hepatic_veins.stl"} <= names
    assert not any("liver_vessels" in n for n in names if n.startswith("meshes/"))  # raw vessels, label maps: no mesh
    stats = json.loads((tmp_path / STATISTICS_FILE).read_text())
    text = json.dumps(stats)
    assert "liver_vessels_labeled" not in text and "hepatic_veins" in text
    (tmp_path / "none").mkdir()
    assert write_study_artifacts(tmp_path / "none", volume, _result(masks), statistics=False, preview=False,
                                 meshes=False) == []
    assert not any((tmp_path / "none").iterdir())


def test_couinaud_segments_are_reported_one_mask_each_with_volumes_and_a_picture(tmp_path, small_phantom):
    from livervessels.couinaud import LABEL_MAP_NAME
    from livervessels.outputs.preview import COUINAUD_PREVIEW_FILE
    from livervessels.outputs.study_outputs import reported_masks

    volume = Volume(small_phantom.ct, small_phantom.affine)
    labels = np.asarray(small_phantom.labels)
    liver = np.isin(labels, [LABELS["liver"], LABELS["liver_vessels"]])
    segments = np.zeros(liver.shape, np.uint8)
    segments[liver] = 1 + (np.indices(liver.shape)[0][liver] * 8) // liver.shape[0]  # eight slabs
    volumes = {str(s): {"ml": 1.0, "percent": 12.5} for s in range(1, 9)}
    couinaud = {"method": "planes", "refused": None, "landmarks": {"hilum_mm": [0.0, 0.0, 0.0]}, "volumes": volumes}
    result = LiverVesselResult({"liver": liver.astype(np.uint8), LABEL_MAP_NAME: segments,
                                "portal_vein_branches": (labels == LABELS["liver_vessels"]).astype(np.uint8)},
                               plan=ModelPlan("demo", "demo_task", "demo_task"), couinaud=couinaud)
    masks = reported_masks(result)
    assert LABEL_MAP_NAME not in masks and int(masks["couinaud_segment_3"].sum()) == int((segments == 3).sum())
    write_study_artifacts(tmp_path, volume, result, meshes=False)
    stats = json.loads((tmp_path / STATISTICS_FILE).read_text())
    assert stats["couinaud_segments"] == {"method": "planes", "volumes": volumes}
    voxel_ml = abs(float(np.linalg.det(small_phantom.affine[:3, :3]))) / 1000.0
    assert stats["structures"]["couinaud_segment_3"]["volume_ml"] == pytest.approx((segments == 3).sum() * voxel_ml,
                                                                                  abs=1e-3)
    assert (tmp_path / COUINAUD_PREVIEW_FILE).stat().st_size > 10_000
    refused = {"method": "planes", "refused": "no inferior vena cava mask", "landmarks": None, "volumes": {}}
    qc = build_qc({}, (1.0, 1.0, 1.0), _result(), SegResult(None))
    assert "couinaud" not in qc  # not asked for
    result = LiverVesselResult({"liver": np.ones((4, 4, 4), np.uint8)}, plan=ModelPlan("d", "t", "t"), couinaud=refused)
    qc = build_qc({}, (1.0, 1.0, 1.0), result, SegResult(None))
    assert qc["couinaud"] == refused and "Couinaud segments not derived: no inferior vena cava mask" in qc["warnings"]
    no_remnant = {**couinaud, "future_liver_remnant": {"refused": "no remnant is left"}}
    result = LiverVesselResult({"liver": np.ones((4, 4, 4), np.uint8)}, plan=ModelPlan("d", "t", "t"),
                               couinaud=no_remnant)
    assert "future liver remnant not given: no remnant is left" in build_qc({}, (1.0, 1.0, 1.0), result,
                                                                            SegResult(None))["warnings"]
