"""The task registry (livervessels/tasks.py) against TotalSegmentator 2.18's published facts: class
ids of `total` (map_to_binary.class_map, read from its installed source), datasets, trainers and
release tags of the weights, resampling and crop rules."""
from __future__ import annotations

import pytest

from livervessels.errors import InputError
from livervessels.tasks import FAST_VARIANTS, TASKS, get_task

# TotalSegmentator 2.18's class_map["total"], a sample across all five parts
TOTAL_IDS = {1: "spleen", 5: "liver", 24: "kidney_cyst_right", 25: "sacrum", 26: "vertebrae_S1",
             50: "vertebrae_C1", 51: "heart", 52: "aorta", 63: "inferior_vena_cava",
             64: "portal_vein_and_splenic_vein", 68: "iliac_vena_right", 69: "humerus_left", 91: "skull",
             92: "rib_left_1", 116: "sternum", 117: "costal_cartilages"}


@pytest.mark.parametrize("name", ["total", "total_fast", "total_fastest"])
def test_total_has_totalsegmentators_117_class_ids(name):
    classes = get_task(name).classes
    assert len(classes) == 117 and sorted(classes) == list(range(1, 118))
    assert {k: classes[k] for k in TOTAL_IDS} == TOTAL_IDS


def test_the_five_parts_of_total_each_predict_a_contiguous_id_range():
    task = get_task("total")
    assert [p.dataset[:10] for p in task.parts] == [f"Dataset29{i}" for i in range(1, 6)]
    ranges = []
    for part, offset in zip(task.parts, task.offsets):
        ids = sorted(label + offset for label in part.classes)
        assert ids == list(range(ids[0], ids[-1] + 1))
        ranges.append((ids[0], ids[-1]))
    assert ranges == [(1, 24), (25, 50), (51, 68), (69, 91), (92, 117)]
    assert all(p.trainer == "nnUNetTrainerNoMirroring" and p.release_tag == "v2.0.0-weights" for p in task.parts)
    assert task.resample_mm == 1.5 and task.step_size == 0.8


def test_liver_vessels_is_msd_task08_cropped_to_the_liver_with_20_mm():
    task = get_task("liver_vessels")
    (part,) = task.parts
    assert part.dataset == "Dataset008_HepaticVessel" and part.trainer == "nnUNetTrainer"
    assert part.classes == {1: "liver_vessels", 2: "liver_tumor"} and part.release_tag == "v2.4.0-weights"
    assert part.folder == "Dataset008_HepaticVessel/nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert part.url.endswith("/v2.4.0-weights/Dataset008_HepaticVessel.zip")
    assert (task.crop_to, task.crop_task, task.robust_crop_task) == ("liver", "total_fastest", "total_fast")
    assert task.crop_margin_mm == 20 and task.resample_mm is None and task.step_size == 0.5
    assert "mm" in task.description


def test_liver_segments_is_dataset570_at_its_own_anisotropic_spacing_cropped_to_the_liver():
    # TotalSegmentator 2.18 map_tasks_config: task_id 570, v2.5.0-weights, nnUNetTrainerNoMirroring,
    # resample [0.8046879768371582, 0.8046879768371582, 1.5], crop ["liver"], no fast variant;
    # python_api then crops with 20 mm (its crop_addon of 10 is replaced when no crop model is set)
    task = get_task("liver_segments")
    (part,) = task.parts
    assert part.dataset == "Dataset570_ct_liver_segments" and part.trainer == "nnUNetTrainerNoMirroring"
    assert part.release_tag == "v2.5.0-weights"
    assert part.url.endswith("/v2.5.0-weights/Dataset570_ct_liver_segments.zip")
    assert task.classes == {i: f"liver_segment_{i}" for i in range(1, 9)}
    assert task.resample_mm == (0.8046879768371582, 0.8046879768371582, 1.5) and task.step_size == 0.5
    assert (task.crop_to, task.crop_task, task.robust_crop_task) == ("liver", "total_fastest", "total_fast")
    assert task.crop_margin_mm == 20 and not task.mirroring
    assert not any(name == "liver_segments" for name, _ in FAST_VARIANTS)


def test_fast_flags_pick_the_3_and_6_mm_models():
    assert get_task(FAST_VARIANTS[("total", "fast")]).resample_mm == 3.0
    assert get_task(FAST_VARIANTS[("total", "fastest")]).resample_mm == 6.0
    assert get_task("total_fast").parts[0].dataset == "Dataset297_TotalSegmentator_total_3mm_1559subj"
    assert get_task("total_fastest").parts[0].dataset == "Dataset298_TotalSegmentator_total_6mm_1559subj"


def test_parts_for_selects_the_parts_that_predict_a_subset():
    task = get_task("total")
    assert task.parts_for(["liver", "portal_vein_and_splenic_vein"]) == [0, 2]
    assert task.parts_for(None) == [0, 1, 2, 3, 4] and task.parts_for([]) == [0, 1, 2, 3, 4]
    assert task.parts_for(["no_such_class"]) == []


def test_an_unknown_task_names_the_valid_ones():
    with pytest.raises(InputError, match="unknown task 'livr'; valid tasks: .*liver_vessels"):
        get_task("livr")
    assert get_task("demo_liver").parts[0].release_tag is None  # ships with the project
    assert set(TASKS) >= {"total", "total_fast", "total_fastest", "liver_vessels", "demo_liver"}
