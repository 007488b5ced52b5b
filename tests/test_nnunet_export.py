"""Class-wise export of scores on the model's grid gives nnunetv2's labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from livervessels import nnunet_runner
from livervessels.nnunet_export import classwise_export_applies, labels_from_scores

MODEL = Path(__file__).resolve().parent.parent / "models" / "Dataset990_LiverVesselsDemo" / \
    "nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture(scope="module")
def predictor():
    return nnunet_runner.load_model(MODEL).predictor


def _props(shape_before, bbox, shape_after, spacing):
    return {"spacing": list(spacing), "shape_before_cropping": shape_before, "bbox_used_for_cropping": bbox,
            "shape_after_cropping_and_before_resampling": shape_after}


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_classwise_labels_equal_nnunetv2s_export(predictor, dtype):
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    rng = np.random.default_rng(5)
    n_classes = predictor.label_manager.num_segmentation_heads
    # smooth random scores with near ties, on a 2 mm grid; the scan is 1.1 x 0.9 x 0.9 mm, cropped
    scores = torch.from_numpy(rng.normal(0, 1, (n_classes, 14, 18, 20)).round(1)).to(dtype)
    props = _props((30, 44, 46), [[2, 27], [1, 41], [3, 45]], (25, 40, 42), (1.1, 0.9, 0.9))
    assert classwise_export_applies(predictor, props)
    expected = convert_predicted_logits_to_segmentation_with_correct_shape(
        scores.clone(), predictor.plans_manager, predictor.configuration_manager, predictor.label_manager,
        dict(props))
    ours = labels_from_scores(predictor, scores, dict(props))
    assert ours.dtype == np.asarray(expected).dtype
    assert len(np.unique(ours)) == n_classes
    assert np.array_equal(ours, np.asarray(expected))


def test_classwise_export_refuses_slice_by_slice_resampling(predictor):
    # 6 mm slices against 2 mm: nnunetv2 would resample the scores slice by slice
    props = _props((10, 40, 40), [[0, 10], [0, 40], [0, 40]], (10, 40, 40), (6.0, 1.0, 1.0))
    assert not classwise_export_applies(predictor, props)
    with pytest.raises(ValueError):
        labels_from_scores(predictor, torch.zeros((2, 30, 20, 20)), props)


def test_prediction_off_the_models_grid_equals_nnunetv2s_end_to_end(predictor):
    # a 1.3 x 0.9 x 0.9 mm scan for the 2 mm model: lean preprocessing, network, class-wise export
    from livervessels.synthetic.phantom import make_phantom

    ph = make_phantom(seed=43, shape=(110, 100, 60), spacing=(0.9, 0.9, 1.3))
    image_zyx = np.asarray(ph.ct, np.int16).transpose(2, 1, 0)[None]
    props = {"spacing": [1.3, 0.9, 0.9]}
    with torch.inference_mode():
        expected = predictor.predict_single_npy_array(np.asarray(image_zyx, np.float32), dict(props))
        ours = nnunet_runner._predict(predictor, image_zyx, dict(props))
    assert ours.shape == image_zyx.shape[1:]
    assert len(np.unique(expected)) >= 3
    assert np.array_equal(np.asarray(ours), np.asarray(expected))
