"""Slab-wise sliding-window inference gives nnunetv2's own labels, voxel for voxel."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from livervessels import nnunet_runner
from livervessels.sliding_window import predict_labels_in_slabs, slab_prediction_applies
from livervessels.synthetic.phantom import make_phantom

MODEL = Path(__file__).resolve().parent.parent / "models" / "Dataset990_LiverVesselsDemo" / \
    "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _reference_and_slabs(model, image_zyx: np.ndarray, spacing_zyx) -> tuple[np.ndarray, np.ndarray]:
    props = {"spacing": list(spacing_zyx)}
    data = np.ascontiguousarray(image_zyx[None], np.float32)
    with torch.inference_mode():
        reference = model.predictor.predict_single_npy_array(data, props)
        ours = nnunet_runner._predict(model.predictor, data, props)
    return np.asarray(reference), np.asarray(ours)


@pytest.mark.parametrize("score_dtype", [None, torch.bfloat16], ids=["fp32", "bf16_scores"])
def test_slabs_give_nnunets_labels_on_a_phantom(score_dtype, monkeypatch):
    model = nnunet_runner.load_model(MODEL)
    if score_dtype is not None:
        # The network's scores in bfloat16, as under bf16 autocast, reach both loops through this one
        # method. Real bf16 arithmetic is emulated (about 30x slower than fp32) on CPUs without
        # AVX512-BF16, and the slab loop never sees how the scores were computed, only their dtype;
        # the real bf16 network runs through this loop in test_nnunet_runner.
        predict = model.predictor._internal_maybe_mirror_and_predict
        monkeypatch.setattr(model.predictor, "_internal_maybe_mirror_and_predict",
                            lambda tile: predict(tile).to(score_dtype))
    ph = make_phantom(seed=31, shape=(96, 96, 100), spacing=(2.0, 2.0, 2.0))
    image = np.asarray(ph.ct, np.float32).transpose(2, 1, 0)  # nnU-Net order (z, y, x)
    reference, ours = _reference_and_slabs(model, image, (2.0, 2.0, 2.0))
    assert reference.shape == ours.shape == image.shape
    assert len(np.unique(reference)) >= 4  # the liver, its vessels and the trunks are found
    assert np.array_equal(reference, ours)


def test_slabs_give_nnunets_labels_when_the_image_is_thinner_than_a_tile():
    # 40 slices against a 64-slice tile: nnunetv2 pads, and the slab loop must cut the padding off
    model = nnunet_runner.load_model(MODEL)
    ph = make_phantom(seed=32, shape=(80, 72, 40), spacing=(2.0, 2.0, 2.0))
    image = np.asarray(ph.ct, np.float32).transpose(2, 1, 0)
    reference, ours = _reference_and_slabs(model, image, (2.0, 2.0, 2.0))
    assert np.array_equal(reference, ours)


def test_the_slab_path_is_the_one_taken_and_refuses_what_it_cannot_match(monkeypatch):
    model = nnunet_runner.load_model(MODEL)
    calls = []
    real = nnunet_runner.predict_labels_in_slabs
    monkeypatch.setattr(nnunet_runner, "predict_labels_in_slabs", lambda *a: calls.append(1) or real(*a))
    ph = make_phantom(seed=33, shape=(64, 64, 70), spacing=(2.0, 2.0, 2.0))
    nnunet_runner.predict_labels(model, np.asarray(ph.ct, np.float32), (2.0, 2.0, 2.0))
    assert calls == [1]
    # scores that nnunetv2 would resample (an image not on the model's grid) go its own way
    props = {"shape_after_cropping_and_before_resampling": (10, 20, 30)}
    assert not slab_prediction_applies(model.predictor, (12, 20, 30), props)
    assert slab_prediction_applies(model.predictor, (10, 20, 30), props)
    with pytest.raises(ValueError):
        predict_labels_in_slabs(model.predictor, torch.zeros((1, 12, 20, 30)), props)
