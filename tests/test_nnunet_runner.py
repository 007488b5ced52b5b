"""livervessels.nnunet_runner on the bundled demo model: loading once per settings, what a LoadedModel
records, predictions on arrays in memory, precisions and unreadable checkpoints."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from livervessels import nnunet_runner
from livervessels.errors import InputError
from livervessels.model_store import find_model_folder
from livervessels.synthetic.phantom import make_phantom
from livervessels.tasks import TASKS

from conftest import MODELS

FOLDER = find_model_folder(TASKS["demo_liver"].parts[0], [MODELS])
CHECKPOINT = FOLDER / "fold_0" / "checkpoint_final.pth"
DATASET = json.loads((FOLDER / "dataset.json").read_text())
PLANS = json.loads((FOLDER / "plans.json").read_text())
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return nnunet_runner.load_model(FOLDER)


@pytest.fixture(scope="module")
def small_ct():
    """A 40 x 32 x 24 crop of a phantom's abdomen on the model's own 2 mm grid (one patch)."""
    ph = make_phantom(seed=3, shape=(40, 32, 24), spacing=(2.0, 2.0, 2.0))
    return ph.ct, ph.spacing


def test_the_demo_model_folder_is_the_bundled_one():
    assert FOLDER == MODELS / "Dataset990_LiverVesselsDemo" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    assert CHECKPOINT.is_file()


# ---------------------------------------------------------------- loading


def test_load_model_is_cached_per_folder_and_settings(model):
    assert nnunet_runner.load_model(FOLDER) is model
    assert nnunet_runner.load_model(FOLDER, 0, CPU, 0.5, False, "fp32") is model  # the defaults spelled out
    # the same folder by another path is the same model
    assert nnunet_runner.load_model(FOLDER.parent / ".." / FOLDER.parent.name / FOLDER.name) is model
    bf16 = nnunet_runner.load_model(FOLDER, precision="bf16")
    assert bf16 is not model and bf16.precision == "bf16"
    assert nnunet_runner.load_model(FOLDER, precision="bf16") is bf16
    other_step = nnunet_runner.load_model(FOLDER, step_size=0.25)
    assert other_step is not model and other_step.settings == (0, 0.25, False)


def test_loaded_model_records_the_checkpoint_and_the_plans(model):
    assert model.checkpoint_sha256 == hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    assert len(model.checkpoint_sha256) == 64
    config = PLANS["configurations"]["3d_fullres"]
    assert model.spacing_zyx == tuple(config["spacing"]) == (2.0, 2.0, 2.0)
    assert model.patch_size == tuple(config["patch_size"]) == (64, 64, 64)
    assert model.labels == DATASET["labels"] == {"background": 0, "liver": 1, "inferior_vena_cava": 2,
                                                 "portal_vein_and_splenic_vein": 3, "liver_vessels": 4}
    assert model.settings == (0, 0.5, False)
    assert model.device == CPU and model.precision == "fp32"
    assert model.folder == FOLDER


def test_fp32_on_the_cpu_is_the_plain_network_and_bf16_is_wrapped(model):
    assert not isinstance(model.predictor.network, nnunet_runner._Autocast)
    bf16 = nnunet_runner.load_model(FOLDER, precision="bf16")
    wrapped = bf16.predictor.network
    assert isinstance(wrapped, nnunet_runner._Autocast)
    assert wrapped.device_type == "cpu" and wrapped.dtype == torch.bfloat16
    # the same weights under the wrapper
    ours, theirs = model.predictor.network.state_dict(), wrapped.net.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("precision", ["fp16", "fp8", "float32"])
def test_a_precision_the_cpu_does_not_run_is_refused(precision):
    with pytest.raises(ValueError, match=f"precision {precision} is not available on cpu"):
        nnunet_runner.load_model(FOLDER, precision=precision)
    # nothing is cached for it: asking again fails again
    with pytest.raises(ValueError):
        nnunet_runner.load_model(FOLDER, precision=precision)


def _copy_without_checkpoint(tmp_path):
    folder = tmp_path / FOLDER.parent.name / FOLDER.name
    (folder / "fold_0").mkdir(parents=True)
    for name in ("dataset.json", "plans.json"):
        shutil.copy(FOLDER / name, folder / name)
    return folder


def test_a_truncated_checkpoint_is_an_input_error(tmp_path):
    folder = _copy_without_checkpoint(tmp_path)
    (folder / "fold_0" / "checkpoint_final.pth").write_bytes(CHECKPOINT.read_bytes()[:4096])
    with pytest.raises(InputError, match="cannot be read") as info:
        nnunet_runner.load_model(folder)
    message = str(info.value)
    assert str(folder / "fold_0" / "checkpoint_final.pth") in message and "reinstall" in message
    assert "\n" not in message


@pytest.mark.parametrize("change", ["drop a layer", "wrong shape"])
def test_weights_of_another_network_are_an_input_error_on_one_line(tmp_path, change):
    folder = _copy_without_checkpoint(tmp_path)
    checkpoint = torch.load(CHECKPOINT, map_location="cpu", weights_only=False)
    weights = checkpoint["network_weights"]
    name = next(k for k, v in weights.items() if v.ndim == 5)  # a convolution's kernel
    if change == "drop a layer":
        del weights[name]
    else:
        weights[name] = torch.zeros(tuple(weights[name].shape[:-1]) + (weights[name].shape[-1] + 2,))
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    with pytest.raises(InputError, match="does not fit the network") as info:
        nnunet_runner.load_model(folder)
    assert "reinstall" in str(info.value) and "\n" not in str(info.value)


def test_a_missing_checkpoint_is_an_input_error(tmp_path):
    folder = _copy_without_checkpoint(tmp_path)
    with pytest.raises(InputError, match="checkpoint_final.pth cannot be read"):
        nnunet_runner.load_model(folder)


# ---------------------------------------------------------------- prediction


def test_predict_labels_gives_the_models_labels_on_the_input_grid(model, small_ct):
    ct, spacing = small_ct
    labels = nnunet_runner.predict_labels(model, ct, spacing)
    assert labels.shape == ct.shape == (40, 32, 24)  # (x, y, z) in, (x, y, z) out
    assert labels.dtype == np.uint8
    assert labels.flags["C_CONTIGUOUS"]
    assert set(np.unique(labels)) <= set(DATASET["labels"].values())
    assert (labels > 0).any()  # an abdomen: not all background


def test_predict_labels_transposes_for_nnunet_and_back(model):
    # distinct sizes and spacings per axis: nnunetv2 itself, handed the (z, y, x) array and spacing,
    # gives the same labels transposed
    ph = make_phantom(seed=3, shape=(30, 26, 20), spacing=(2.5, 2.0, 1.5))
    ours = nnunet_runner.predict_labels(model, ph.ct, (2.5, 2.0, 1.5))
    with torch.inference_mode():
        expected = model.predictor.predict_single_npy_array(
            np.asarray(ph.ct, np.float32).transpose(2, 1, 0)[None], {"spacing": [1.5, 2.0, 2.5]})
    expected = np.asarray(expected).transpose(2, 1, 0)
    assert ours.shape == (30, 26, 20)
    assert len(np.unique(expected)) >= 2
    assert np.array_equal(ours, expected)


def test_predict_labels_does_not_change_its_input(model, small_ct):
    ct, spacing = small_ct
    before = ct.copy()
    nnunet_runner.predict_labels(model, ct, spacing)
    assert ct.dtype == before.dtype and np.array_equal(ct, before)


def test_bf16_on_the_cpu_gives_labels_of_the_same_shape_close_to_fp32(model, small_ct):
    ct, spacing = small_ct
    fp32 = nnunet_runner.predict_labels(model, ct, spacing)
    bf16 = nnunet_runner.predict_labels(nnunet_runner.load_model(FOLDER, precision="bf16"), ct, spacing)
    assert bf16.shape == fp32.shape and bf16.dtype == np.uint8
    assert set(np.unique(bf16)) <= set(DATASET["labels"].values())
    assert (bf16 == fp32).mean() > 0.98  # bfloat16 moves only labels near a tie
