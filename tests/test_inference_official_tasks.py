"""The official tasks' path through inference.segment (crop, resampling to the task spacing and
back, roi_subset, several parts merged), run on stand-in weights: the demo network re-saved under
the official names and class numbers (bench/standin_weights.py). The stand-ins are the demo
network, so each official task's answer can be predicted from the demo model's own answer; what is
checked is that the path around the network (grids, crops, merging, class numbers) keeps it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from livervessels.geometry import Volume
from livervessels.inference import _crop_margin, segment
from livervessels.masks import padded_box
from livervessels.tasks import TOTAL_CLASSES

from conftest import MODELS, ROOT, dice

LIVER, IVC, PORTAL = 5, 63, 64  # TotalSegmentator's class numbers in `total`


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("standin")
    subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    return [str(out / "nnunet" / "results")]


@pytest.fixture(scope="module")
def volume(phantom) -> Volume:
    return Volume(phantom.ct, phantom.affine)


@pytest.fixture(scope="module")
def demo(volume):
    return segment(volume, "demo_liver", model_dirs=[str(MODELS)])


@pytest.fixture(scope="module")
def standin_without_crop_model(standin, tmp_path_factory) -> list[str]:
    """The same stand-ins without total_fastest (298): roi_subset then runs on the whole image."""
    results = tmp_path_factory.mktemp("standin_nocrop")
    for model in Path(standin[0]).iterdir():
        if not model.name.startswith("Dataset298"):
            (results / model.name).symlink_to(model)
    return [str(results)]


@pytest.fixture(scope="module")
def liver_region(phantom) -> Volume:
    """The phantom's liver with a margin: seven runs at 1.5 mm on the whole phantom took 100 s."""
    start = np.array([30, 32, 0])
    affine = phantom.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ start  # the crop keeps each voxel's world position
    return Volume(np.ascontiguousarray(phantom.ct[30:150, 32:120, :]), affine)


@pytest.mark.slow
def test_total_merges_its_parts_on_the_input_grid_the_later_part_winning(liver_region, standin_without_crop_model):
    volume = liver_region
    demo = segment(volume, "demo_liver", model_dirs=[str(MODELS)])
    total = segment(volume, "total", model_dirs=standin_without_crop_model)
    assert total.array.shape == volume.shape and total.classes == TOTAL_CLASSES
    assert set(np.unique(total.array)) <= {0, LIVER, IVC, PORTAL}  # the stand-ins know these classes only
    # each part alone (roi_subset picks the parts; without the crop model nothing is cropped)
    organs = segment(volume, "total", model_dirs=standin_without_crop_model, roi_subset=["liver"])
    veins = segment(volume, "total", model_dirs=standin_without_crop_model,
                    roi_subset=["inferior_vena_cava", "portal_vein_and_splenic_vein"])
    assert [m["task"] for m in organs.models] == ["total"] and "part1" in organs.models[0]["folder"]
    assert len(veins.models) == 1 and "part3" in veins.models[0]["folder"]
    overlap = (organs.array == LIVER) & (veins.array > 0)
    assert overlap.sum() > 100  # the stand-in's part 3 claims some of part 1's liver
    np.testing.assert_array_equal(total.array, np.where(veins.array > 0, veins.array, organs.array))
    # resampled to 1.5 mm (the demo network was trained at 2 mm) and back: the demo network's liver
    # where the demo model put it (Dice 0.84 measured; a flipped or misplaced grid gives far less)
    assert dice(organs.array == LIVER, demo.mask("liver")) > 0.75


def test_fast_task_resamples_to_3mm_and_back(volume, standin, demo):
    fast = segment(volume, "total_fast", model_dirs=standin)
    assert fast.array.shape == volume.shape
    assert dice(fast.array == LIVER, demo.mask("liver")) > 0.85


def _outside(box, shape) -> np.ndarray:
    outside = np.ones(shape, bool)
    outside[box] = False
    return outside


def test_roi_subset_is_cropped_to_the_subset_found_by_total_fastest(volume, standin):
    crop_model = segment(volume, "total_fastest", model_dirs=standin).array
    ivc = segment(volume, "total", model_dirs=standin, roi_subset=["inferior_vena_cava"])
    assert set(np.unique(ivc.array)) <= {0, IVC} and np.any(ivc.array == IVC)
    box = padded_box(crop_model == IVC, _crop_margin(20.0, volume.spacing))
    assert not ivc.array[_outside(box, volume.shape)].any()
    assert "Dataset298" in ivc.models[0]["folder"]  # the crop model is recorded among the models used


def test_also_kept_classes_come_from_the_same_parts_and_crop(volume, standin):
    from livervessels.errors import InputError

    ivc = segment(volume, "total", model_dirs=standin, roi_subset=["inferior_vena_cava"])
    both = segment(volume, "total", model_dirs=standin, roi_subset=["inferior_vena_cava"],
                   also_keep=["portal_vein_and_splenic_vein"])
    assert both.classes == {IVC: "inferior_vena_cava", PORTAL: "portal_vein_and_splenic_vein"}
    np.testing.assert_array_equal(both.array == IVC, ivc.array == IVC)  # same crop, same network
    assert np.any(both.array == PORTAL) and [m["folder"] for m in both.models] == [m["folder"] for m in ivc.models]
    crop_model = segment(volume, "total_fastest", model_dirs=standin).array
    box = padded_box(crop_model == IVC, _crop_margin(20.0, volume.spacing))  # the IVC's crop, not the portal's
    assert not both.array[_outside(box, volume.shape)].any()
    with pytest.raises(InputError, match="unknown class"):
        segment(volume, "total", model_dirs=standin, roi_subset=["liver"], also_keep=["aortaa"])


def test_vessel_derived_segments_are_compared_with_the_liver_segments_model_where_installed(
        volume, standin, standin_without_crop_model):
    from livervessels.pipeline import _agreement_with_model

    model = segment(volume, "liver_segments", model_dirs=standin).array
    assert model.any()
    same = _agreement_with_model(volume, model, standin, "cpu")
    assert same["made"] and "Dataset570" in same["model"] and same["segments_below"] == []
    assert all(v == 1.0 for v in same["dice"].values() if v is not None) and same["mean_dice"] == 1.0
    shifted = np.where(model > 0, model % 8 + 1, 0).astype(np.uint8)  # every voxel one segment off
    off = _agreement_with_model(volume, shifted, standin, "cpu")
    present = sorted({str(v) for v in np.unique(model) if v} | {str(v) for v in np.unique(shifted) if v}, key=int)
    assert off["segments_below"] == present and off["mean_dice"] == 0.0
    assert _agreement_with_model(volume, model, [str(MODELS)], "cpu") == {
        "made": False, "reason": "liver_segments weights not installed"}
    no_crop = _agreement_with_model(volume, model, standin_without_crop_model, "cpu")  # its crop model missing
    assert no_crop["made"] is False and "total_fastest" in no_crop["reason"]


def test_liver_vessels_runs_inside_the_crop_to_the_liver(volume, standin, demo):
    vessels = segment(volume, "liver_vessels", model_dirs=standin)
    assert vessels.array.shape == volume.shape and vessels.classes == {1: "liver_vessels", 2: "liver_tumor"}
    crop_liver = segment(volume, "total_fastest", model_dirs=standin).array == LIVER
    box = padded_box(crop_liver, _crop_margin(20.0, volume.spacing))
    assert _outside(box, volume.shape).any() and not vessels.array[_outside(box, volume.shape)].any()
    assert dice(vessels.array == 1, demo.mask("liver_vessels")) > 0.7


def test_liver_segments_runs_in_the_liver_crop_at_its_anisotropic_spacing(volume, standin, demo, monkeypatch):
    from livervessels import nnunet_runner

    seen = []
    predict = nnunet_runner.predict_labels

    def spy(model, image, spacing):
        seen.append((image.shape, tuple(spacing)))
        return predict(model, image, spacing)

    monkeypatch.setattr(nnunet_runner, "predict_labels", spy)
    segments = segment(volume, "liver_segments", model_dirs=standin)
    shape, spacing = seen[-1]  # the crop model ran first
    assert segments.array.shape == volume.shape
    assert segments.classes == {i: f"liver_segment_{i}" for i in range(1, 9)}
    assert [m["task"] for m in segments.models] == ["total_fastest", "liver_segments"]
    crop_liver = segment(volume, "total_fastest", model_dirs=standin).array == LIVER
    box = padded_box(crop_liver, _crop_margin(20.0, volume.spacing))
    assert _outside(box, volume.shape).any() and not segments.array[_outside(box, volume.shape)].any()
    # the network saw the crop at 0.80 x 0.80 x 1.5 mm (the phantom: 1.5 x 1.5 x 2.5 mm)
    crop_shape = tuple(s.stop - s.start for s in box)
    target = (0.8046879768371582, 0.8046879768371582, 1.5)
    assert shape == tuple(round(n * float(np.float32(s)) / t) for n, s, t in zip(crop_shape, volume.spacing, target))
    assert spacing == pytest.approx(target, rel=1e-6)
    # the stand-in's segment 1 is the demo network's liver: where the demo model puts the liver
    assert set(np.unique(segments.array)) <= {0, 1}
    assert dice(segments.array == 1, demo.mask("liver")) > 0.9


def test_the_map_weights_check_wants_every_official_model_in_the_folder_itself(standin, standin_without_crop_model):
    from livervessels.errors import InputError
    from livervessels.model_plan import check_official_weights

    folders = check_official_weights(standin[0])
    assert sorted(f.parent.name.split("_")[0] for f in folders) == ["Dataset008", "Dataset291", "Dataset293",
                                                                    "Dataset298"]
    with pytest.raises(InputError, match="Dataset298"):
        check_official_weights(standin_without_crop_model[0])
    with pytest.raises(InputError, match="not found"):
        check_official_weights(Path(standin[0]) / "missing")
