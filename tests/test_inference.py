"""nnU-Net inference with the bundled demo model: grid, accuracy on phantoms, caching, errors."""
from __future__ import annotations

import json
import shutil

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


