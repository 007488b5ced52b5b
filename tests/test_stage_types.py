"""livervessels/stage_types.py: the objects handed from stage to stage: the model plan's algorithm name,
the plan of a run that used no model, and results whose defaults are not shared between instances."""
from __future__ import annotations

import dataclasses

import numpy as np

from livervessels.stage_types import (
    SUPPORT_FILES_PLAN,
    DicomObject,
    LiverVesselResult,
    ModelPlan,
    SegResult,
)


def test_the_algorithm_name_names_the_plan_and_both_tasks():
    plan = ModelPlan("official", "total", "liver_vessels")
    assert plan.algorithm_name == "livervessels official (total+liver_vessels)"
    assert plan.note == ""
    assert ModelPlan("demo", "demo_liver", "demo_liver", "a note").algorithm_name == \
        "livervessels demo (demo_liver+demo_liver)"


def test_the_support_files_plan_runs_no_task():
    assert (SUPPORT_FILES_PLAN.support_task, SUPPORT_FILES_PLAN.vessel_task) == ("none", "none")
    assert SUPPORT_FILES_PLAN.algorithm_name == "livervessels support files (none+none)"


def test_result_defaults_are_not_shared_between_results():
    first = LiverVesselResult({"liver": np.zeros((2, 2, 2), bool)}, SUPPORT_FILES_PLAN)
    second = LiverVesselResult({}, SUPPORT_FILES_PLAN)
    first.timings["inference"] = 1.5
    first.enhancement["method"] = "x"
    first.split_qc["ok"] = True
    first.sources["liver"] = "file"
    assert (second.timings, second.enhancement, second.split_qc, second.sources) == ({}, {}, {}, {})


def test_replacing_a_stages_fields_keeps_the_plan_and_the_other_fields():
    plan = ModelPlan("demo", "demo_liver", "demo_liver", "note")
    masks = {"liver": np.ones((2, 2, 2), bool)}
    before = LiverVesselResult(masks, plan, timings={"inference": 2.0})
    after = dataclasses.replace(before, split_qc={"portal": 1})
    assert after.plan is plan and after.masks is masks and after.timings == {"inference": 2.0}
    assert before.split_qc == {}  # the earlier stage's result is left as it was


def test_seg_result_and_dicom_object_defaults():
    skipped = SegResult(None, skipped_reason="no segment holds a voxel")
    other = SegResult(None)
    skipped.segments.append("liver")
    skipped.empty_segments.append("portal_vein_branches")
    assert (other.segments, other.empty_segments, other.skipped_reason, other.sop_instance_uid) == ([], [], None, None)
    assert dataclasses.astuple(DicomObject(None)) == (None, None, None, None)
