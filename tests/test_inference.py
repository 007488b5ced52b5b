"""nnU-Net inference with the bundled demo model: grid, accuracy on phantoms, caching, errors; and
segment's path around the network (crop, resampling, parts, roi_subset) with a fake network."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from livervessels import nnunet_runner
from livervessels.errors import InputError, ModelNotFoundError
from livervessels.geometry import Volume
from livervessels.inference import _crop_margin, segment
from livervessels.model_store import find_model_folder
from livervessels.synthetic.phantom import LABELS
from livervessels.tasks import TASKS, get_task

from conftest import MODELS, dice


@pytest.fixture(scope="module")
def demo_result(phantom):
    volume = Volume(phantom.ct, phantom.affine)
    return volume, segment(volume, "demo_liver", model_dirs=[MODELS], device="cpu")


def test_labels_come_back_in_the_input_grid(demo_result):
    volume, labels = demo_result
    assert labels.array.shape == volume.shape
    assert np.array_equal(labels.affine, volume.affine)
    assert set(np.unique(labels.array)) <= set(labels.classes) | {0}


def test_demo_model_segments_an_unseen_phantom(demo_result, phantom):
    _, labels = demo_result
    for name, minimum in [("liver", 0.9), ("inferior_vena_cava", 0.7), ("portal_vein_and_splenic_vein", 0.5),
                          ("liver_vessels", 0.4)]:
        score = dice(labels.mask(name), phantom.labels == LABELS[name])
        assert score >= minimum, f"{name}: Dice {score:.3f} < {minimum}"


def test_reoriented_input_gives_the_same_anatomy(phantom, demo_result):
    """Flipping the voxel order (same patient space) must not change the labels in patient space."""
    _, labels = demo_result
    flipped_affine = phantom.affine.copy()
    flipped_affine[:3, 0] *= -1
    flipped_affine[:3, 3] = phantom.affine[:3, :3] @ np.array([phantom.ct.shape[0] - 1, 0, 0]) + phantom.affine[:3, 3]
    flipped = segment(Volume(phantom.ct[::-1], flipped_affine), "demo_liver", model_dirs=[MODELS], device="cpu")
    assert flipped.array.shape == phantom.ct.shape
    assert dice(flipped.array[::-1] == 1, labels.array == 1) > 0.98


def test_models_are_loaded_once_per_process():
    folder = find_model_folder(TASKS["demo_liver"].parts[0], [MODELS])
    first = nnunet_runner.load_model(folder)
    assert nnunet_runner.load_model(folder) is first


def test_missing_model_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(ModelNotFoundError) as err:
        find_model_folder(TASKS["liver_vessels"].parts[0], [tmp_path])
    message = str(err.value)
    assert str(tmp_path / "Dataset008_HepaticVessel" / "nnUNetTrainer__nnUNetPlans__3d_fullres") in message
    assert "TotalSegmentator weights --task" in message


def test_unknown_task_and_class_list_the_valid_names(phantom):
    with pytest.raises(InputError, match="valid tasks: .*demo_liver"):
        get_task("livr")
    with pytest.raises(InputError, match="valid: liver, inferior_vena_cava"):
        segment(Volume(phantom.ct, phantom.affine), "demo_liver", model_dirs=[MODELS], roi_subset=["livr"])


def test_old_plans_format_is_read(tmp_path, small_phantom):
    """Official TotalSegmentator plans may use nnU-Net's older format (UNet_class_name)."""
    source = find_model_folder(TASKS["demo_liver"].parts[0], [MODELS])
    target = tmp_path / "old" / source.name
    shutil.copytree(source, target)
    plans = json.loads((target / "plans.json").read_text())
    config = plans["configurations"]["3d_fullres"]
    arch = config.pop("architecture")["arch_kwargs"]
    config.update({
        "UNet_class_name": "PlainConvUNet", "UNet_base_num_features": arch["features_per_stage"][0],
        "n_conv_per_stage_encoder": arch["n_conv_per_stage"],
        "n_conv_per_stage_decoder": arch["n_conv_per_stage_decoder"],
        "num_pool_per_axis": [len(arch["strides"]) - 1] * 3, "pool_op_kernel_sizes": arch["strides"],
        "conv_kernel_sizes": arch["kernel_sizes"], "unet_max_num_features": max(arch["features_per_stage"]),
    })
    (target / "plans.json").write_text(json.dumps(plans))
    volume = Volume(small_phantom.ct, small_phantom.affine)
    image = volume.array.astype(np.float32)
    new = nnunet_runner.predict_labels(nnunet_runner.load_model(source), image, volume.spacing)
    old = nnunet_runner.predict_labels(nnunet_runner.load_model(target), image, volume.spacing)
    assert np.array_equal(new, old)


def test_cuda_out_of_memory_falls_back_to_lighter_mode_then_cpu(small_phantom, caplog, monkeypatch):
    """Simulated OOM (no GPU here): first retry without keeping results on the device, then the CPU."""
    import copy

    import torch

    folder = find_model_folder(TASKS["demo_liver"].parts[0], [MODELS])
    healthy = nnunet_runner.load_model(folder)
    image = small_phantom.ct.astype(np.float32)
    expected = nnunet_runner.predict_labels(healthy, image, small_phantom.spacing)

    class Exhausted:
        """A predictor that runs out of device memory on its first `failures` runs."""

        def __init__(self, failures):
            self.failures, self.calls = failures, 0
            self.perform_everything_on_device = True

    real_predict = nnunet_runner._predict

    def predict(predictor, data, props):
        if isinstance(predictor, Exhausted):
            predictor.calls += 1
            if predictor.calls <= predictor.failures:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            predictor = healthy.predictor
        return real_predict(predictor, data, props)

    monkeypatch.setattr(nnunet_runner, "_predict", predict)
    for failures, message in ((1, "accumulated on the CPU"), (2, "on the CPU (slow)")):
        model = copy.copy(healthy)
        model.predictor = Exhausted(failures)
        with caplog.at_level("WARNING"):
            labels = nnunet_runner.predict_labels(model, image, small_phantom.spacing)
        assert np.array_equal(labels, expected)
        assert message in caplog.text
        assert model.predictor.perform_everything_on_device is False


def test_the_crop_margin_is_millimetres_in_voxels_truncated_as_totalsegmentator_does():
    # the crop box itself (extent plus margin, clipped): tests/test_masks.py
    assert _crop_margin(20.0, (0.8, 1.5, 3.0)) == (24, 13, 6)  # 20 mm in voxels, truncated




# ---- segment's path around the network, with a fake network --------------------------------------
# The network is replaced by a rule on the HU it is handed (model_store and nnunet_runner patched), so
# each official task's answer is known by hand: what is checked is everything segment does around
# the network - orientation, the crop model and crop box, resampling to the task spacing and back,
# parts merged with their offsets (later parts win), roi_subset, the models reported.

LIVER_HU, VESSEL_HU = 60, 200
# On a grid 2x finer (order-1 interpolation) a vessel voxel's sub-voxels hold at least
# (27 x 200 + 37 x 60) / 64 = 119 HU and the liver's at most 0.75 x 60 + 0.25 x 200 = 95 HU; likewise
# the body's (> -553 HU) and the air's (< -735 HU) are told apart by -600 HU: so labels come back exact.
VESSEL_CUT, BODY_CUT = 110, -600


def _box_study(spacing: float) -> tuple[Volume, np.ndarray, np.ndarray]:
    """Air with a liver box (60 HU) holding a vessel slab (200 HU), stored with x flipped (not RAS).
    Returns the volume and the liver and vessel masks as stored."""
    ct = np.full((24, 20, 16), -1000, np.int16)
    ct[6:16, 5:14, 4:12] = LIVER_HU
    ct[9:12, 8:11, 6:10] = VESSEL_HU  # inside the liver on every side
    affine = np.diag([-spacing, spacing, spacing, 1.0])
    affine[:3, 3] = (100.0, -50.0, 30.0)
    return Volume(ct, affine), ct == LIVER_HU, ct == VESSEL_HU


class _FakeNetwork:
    """Stands in for every model: labels from HU thresholds, and a record of each call."""

    def __init__(self, monkeypatch, missing: tuple[str, ...] = (), delay_s: float = 0.0):
        from pathlib import Path
        from types import SimpleNamespace

        from livervessels import inference, model_store

        self.calls: list[tuple[str, np.ndarray, tuple]] = []
        self.loads: list[tuple] = []  # (folder name, fold, device, step_size, mirroring, precision)
        self.checked: list[tuple] = []  # (model_dirs, task name) handed to check_model_dirs
        self.roots_of: list = []  # model_dirs handed to model_roots
        self.delay_s = delay_s  # each prediction's time

        def find(part, roots, task_name=""):
            assert roots == [Path("/fake")]
            if part.dataset in missing:
                raise ModelNotFoundError(f"{part.dataset} not installed")
            return Path("/fake") / part.dataset

        def load(folder, *args):
            self.loads.append((folder.name, *args))
            return SimpleNamespace(folder=folder, checkpoint_sha256="sha-" + folder.name)

        monkeypatch.setattr(model_store, "check_model_dirs", lambda dirs, task: self.checked.append((dirs, task.name)))
        monkeypatch.setattr(model_store, "model_roots", lambda dirs: self.roots_of.append(dirs) or [Path("/fake")])
        monkeypatch.setattr(model_store, "find_model_folder", find)
        monkeypatch.setattr(inference.nnunet_runner, "load_model", load)
        monkeypatch.setattr(inference.nnunet_runner, "predict_labels", self.predict)

    def predict(self, model, image, spacing):
        name = model.folder.name
        time.sleep(self.delay_s)
        self.calls.append((name, np.array(image), tuple(spacing)))
        out = np.zeros(image.shape, np.uint8)
        if name.startswith(("Dataset298", "Dataset297")):  # total_fastest / total_fast: liver (5), vessels in it
            out[(image >= 50) & (image <= 70) | (image >= VESSEL_CUT)] = 5
        elif name.startswith("Dataset008"):  # liver_vessels
            out[image >= VESSEL_CUT] = 1
        elif name.startswith("Dataset291"):  # total part 1: the liver (5) with its vessels
            out[image > BODY_CUT] = 5
        elif name.startswith("Dataset294"):  # total part 4: its class 1 on the vessels
            out[image >= VESSEL_CUT] = 1
        return out


def test_a_cropped_task_runs_its_crop_model_then_the_network_on_the_liver_box(monkeypatch):
    volume, liver, vessels = _box_study(6.0)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "liver_vessels", device="cpu")
    (crop_model, whole, _), (vessel_model, cropped, _) = fake.calls
    assert crop_model.startswith("Dataset298") and vessel_model.startswith("Dataset008")
    # the crop model sees the whole scan in RAS order (x flipped back)
    assert np.array_equal(whole, volume.array[::-1])
    # the network sees the liver's box plus int(20 mm / 6 mm) = 3 voxels per side, clipped: in RAS
    # x runs 23 - 15 = 8 .. 17, so the box is x 5..20, y 2..16, z 1..14
    assert np.array_equal(cropped, volume.array[::-1][5:21, 2:17, 1:15])
    assert result.array.shape == volume.shape and np.array_equal(result.affine, volume.affine)
    assert np.array_equal(result.array, vessels.astype(np.uint8))  # back in the stored order
    assert result.classes == {1: "liver_vessels", 2: "liver_tumor"}
    assert [m["task"] for m in result.models] == ["total_fastest", "liver_vessels"]


def test_robust_crop_uses_the_3_mm_crop_model(monkeypatch):
    volume, _, vessels = _box_study(6.0)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "liver_vessels", device="cpu", robust_crop=True)
    assert [c[0][:10] for c in fake.calls] == ["Dataset297", "Dataset008"]
    assert np.array_equal(result.array, vessels.astype(np.uint8))


def test_without_the_crop_organ_the_result_is_empty_and_the_network_does_not_run(monkeypatch, caplog):
    volume, _, _ = _box_study(6.0)
    volume = Volume(np.full(volume.shape, -1000, np.int16), volume.affine)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "liver_vessels", device="cpu")
    assert [c[0][:10] for c in fake.calls] == ["Dataset298"]
    assert result.array.shape == volume.shape and not result.array.any()
    assert result.classes == {1: "liver_vessels", 2: "liver_tumor"}
    assert "no liver found for cropping" in caplog.text


def test_the_parts_of_total_are_merged_with_their_offsets_the_later_part_winning(monkeypatch):
    volume, liver, vessels = _box_study(1.5)  # total's own spacing: no resampling
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "total", device="cpu")
    assert [c[0][:10] for c in fake.calls] == [f"Dataset{n}" for n in (291, 292, 293, 294, 295)]
    assert all(np.array_equal(c[1], volume.array[::-1]) and c[2] == (1.5, 1.5, 1.5) for c in fake.calls)
    offset = get_task("total").offsets[3]
    expected = np.where(vessels, 1 + offset, np.where(liver, 5, 0))
    assert np.array_equal(result.array, expected)
    assert result.classes[5] == "liver" and result.classes[1 + offset] == get_task("total").parts[3].classes[1]


def test_roi_subset_runs_only_the_parts_it_needs_and_keeps_only_its_classes(monkeypatch, caplog):
    volume, liver, vessels = _box_study(1.5)
    # without total_fastest installed the subset runs on the whole image (with a warning)
    fake = _FakeNetwork(monkeypatch, missing=("Dataset298_TotalSegmentator_total_6mm_1559subj",))
    result = segment(volume, "total", device="cpu", roi_subset=["liver"])
    assert [c[0][:10] for c in fake.calls] == ["Dataset291"]
    assert np.array_equal(result.array, np.where(liver | vessels, 5, 0))
    assert result.classes == {5: "liver"}
    assert "runs on the whole image" in caplog.text
    # two parts: the later still wins, and classes outside the subset are dropped
    part4 = get_task("total").parts[3].classes[1]
    fake.calls.clear()
    result = segment(volume, "total", device="cpu", roi_subset=[part4, "liver"])
    assert [c[0][:10] for c in fake.calls] == ["Dataset291", "Dataset294"]
    offset = get_task("total").offsets[3]
    assert np.array_equal(result.array, np.where(vessels, 1 + offset, np.where(liver, 5, 0)))
    assert result.classes == {5: "liver", 1 + offset: part4}


def test_roi_subset_of_total_crops_to_the_subset_with_the_crop_model(monkeypatch):
    volume, liver, vessels = _box_study(6.0)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "total", device="cpu", roi_subset=["liver"])
    assert [c[0][:10] for c in fake.calls] == ["Dataset298", "Dataset291"]
    # 6 mm scan, total at 1.5 mm: the crop (liver box + 3 voxels, 16 x 15 x 14) is resampled 4x
    work, spacing = fake.calls[1][1], fake.calls[1][2]
    assert work.shape == (64, 60, 56) and spacing == pytest.approx((1.5, 1.5, 1.5))
    assert np.array_equal(result.array, np.where(liver | vessels, 5, 0))


@pytest.mark.parametrize("spacing, shape", [(3.0, (48, 40, 32)), (1.5, (24, 20, 16))])
def test_a_task_with_its_own_spacing_gets_the_scan_resampled_and_its_labels_back(monkeypatch, spacing, shape):
    # the fake's thresholds label exactly the sub-voxels of each structure (VESSEL_CUT, BODY_CUT), so
    # the labels must come back on the scan's grid exactly
    volume, liver, vessels = _box_study(spacing)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "total", device="cpu")
    work, work_spacing = fake.calls[0][1], fake.calls[0][2]
    assert work.shape == shape and work_spacing == pytest.approx((1.5, 1.5, 1.5))
    assert np.array_equal(work, np.trunc(work))  # TotalSegmentator's int32 cast of the resampled scan
    offset = get_task("total").offsets[3]
    assert np.array_equal(result.array, np.where(vessels, 1 + offset, np.where(liver, 5, 0)))


def test_segment_loads_each_part_with_the_tasks_settings_and_reports_models_and_timings(monkeypatch, tmp_path):
    import torch

    volume, _, _ = _box_study(6.0)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "liver_vessels", model_dirs=[tmp_path], device="cpu", precision="fp32")
    # a named -m is checked for the task and for its crop model, never dropped
    assert fake.checked == [([tmp_path], "liver_vessels"), ([tmp_path], "total_fastest")]
    crop_task, task = get_task("total_fastest"), get_task("liver_vessels")
    assert fake.loads == [
        (task.parts[0].dataset, task.parts[0].fold, torch.device("cpu"), task.step_size, task.mirroring, "fp32"),
        (crop_task.parts[0].dataset, crop_task.parts[0].fold, torch.device("cpu"), crop_task.step_size,
         crop_task.mirroring, "fp32"),
    ]
    assert result.models == [
        {"task": "total_fastest", "folder": f"/fake/{crop_task.parts[0].dataset}",
         "sha256": f"sha-{crop_task.parts[0].dataset}"},
        {"task": "liver_vessels", "folder": f"/fake/{task.parts[0].dataset}", "sha256": f"sha-{task.parts[0].dataset}"},
    ]
    assert set(result.timings) == {"load", "crop_model", "resample", "predict", "merge", "resample_back"}
    # each stage of a 24 x 20 x 16 scan takes well under a second (merge starts from 0)
    assert all(0.0 <= t < 1.0 for t in result.timings.values())


def test_an_empty_crop_still_reports_the_crop_model_and_its_timings(monkeypatch):
    volume, _, _ = _box_study(6.0)
    volume = Volume(np.full(volume.shape, -1000, np.int16), volume.affine)
    _FakeNetwork(monkeypatch)
    result = segment(volume, "liver_vessels", device="cpu")
    assert result.array.dtype == np.uint8 and np.array_equal(result.affine, volume.affine)
    assert [m["task"] for m in result.models] == ["total_fastest", "liver_vessels"]
    assert {"load", "crop_model"} <= set(result.timings)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_the_crop_keeps_integer_hu_and_truncates_fractional_hu_as_an_int32_cast(monkeypatch, dtype):
    volume, _, _ = _box_study(6.0)
    ct = volume.array.astype(dtype)
    if dtype == np.float32:
        ct = ct + np.where(ct > 0, 0.75, -0.75).astype(np.float32)  # 60.75 -> 60, -1000.75 -> -1000
    fake = _FakeNetwork(monkeypatch)
    segment(Volume(ct, volume.affine), "liver_vessels", device="cpu")
    cropped = fake.calls[1][1]
    assert cropped.dtype == dtype
    assert np.array_equal(cropped, volume.array[::-1][5:21, 2:17, 1:15])


def test_resampling_to_the_task_spacing_is_corner_aligned_linear_then_truncated(monkeypatch):
    # 2 x 2 x 2 voxels of 3 mm, HU 0 and 100 along x, to total's 1.5 mm: 4 samples per axis at source
    # positions 0, 1/3, 2/3, 1 (corner-aligned, as TotalSegmentator's zoom): 0, 33.3, 66.7, 100,
    # truncated towards zero as its int32 cast: 0, 33, 66, 100
    ct = np.zeros((2, 2, 2), np.int16)
    ct[1] = 100
    fake = _FakeNetwork(monkeypatch)
    segment(Volume(ct, np.diag([3.0, 3.0, 3.0, 1.0])), "total", device="cpu")
    work = fake.calls[0][1]
    assert work.shape == (4, 4, 4)
    assert np.array_equal(work[:3], np.broadcast_to(np.array([0, 33, 66.0])[:, None, None], (3, 4, 4)))
    # 100 interpolated in float64 comes out as 99.99999... at some points: 99 after the cast, as in
    # TotalSegmentator (scipy's zoom on the same float64 values)
    assert np.isin(work[3], (99, 100)).all() and (work[3] == 100).mean() > 0.9


def test_each_parts_prediction_time_adds_up(monkeypatch):
    volume, _, _ = _box_study(1.5)
    _FakeNetwork(monkeypatch, delay_s=0.05)
    result = segment(volume, "total", device="cpu")
    assert result.timings["predict"] >= 5 * 0.05  # five parts, not the last one's time
    assert result.array.dtype == np.uint8


def test_a_subset_crop_with_robust_crop_uses_the_3_mm_model_and_the_named_model_folders(monkeypatch, tmp_path):
    volume, liver, vessels = _box_study(6.0)
    fake = _FakeNetwork(monkeypatch)
    result = segment(volume, "total", model_dirs=[tmp_path], device="cpu", roi_subset=["liver"], robust_crop=True)
    assert [c[0][:10] for c in fake.calls] == ["Dataset297", "Dataset291"]
    assert fake.roots_of and all(dirs == [tmp_path] for dirs in fake.roots_of)
    assert result.array.dtype == np.uint8 and np.array_equal(result.array, np.where(liver | vessels, 5, 0))


def test_an_empty_subset_crop_keeps_only_the_subsets_classes(monkeypatch):
    volume, _, _ = _box_study(6.0)
    volume = Volume(np.full(volume.shape, -1000, np.int16), volume.affine)
    _FakeNetwork(monkeypatch)
    result = segment(volume, "total", device="cpu", roi_subset=["liver"])
    assert result.classes == {5: "liver"} and not result.array.any()
