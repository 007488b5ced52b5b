"""The lean preprocessing returns nnunetv2's preprocessed image and properties, bit for bit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from livervessels import nnunet_runner
from livervessels.nnunet_preprocess import preprocess_for_prediction
from livervessels.synthetic.phantom import make_phantom

MODEL = Path(__file__).resolve().parent.parent / "models" / "Dataset990_LiverVesselsDemo" / \
    "nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture(scope="module")
def predictor():
    return nnunet_runner.load_model(MODEL).predictor


def _nnunet(predictor, image, props):
    data, _, properties = predictor.configuration_manager.preprocessor_class(verbose=False).run_case_npy(
        np.asarray(image, np.float32), None, dict(props), predictor.plans_manager, predictor.configuration_manager,
        predictor.dataset_json)
    return data, properties


# (scan spacing z, y, x in mm): resampled in 3D (the lean path), on the model's 2 mm grid already
# (no resampling), and anisotropic enough for nnunetv2's slice-by-slice resampling (its own code)
# Stored as int16 (as most CT) and as float32 (a float NIfTI: the slab-wise normalisation works on
# copies, never on the caller's array); slabs of 4 rows so the slab path crosses slab borders.
@pytest.mark.parametrize("spacing", [(1.3, 0.8, 0.8), (2.0, 2.0, 2.0), (7.0, 1.6, 1.6)])
@pytest.mark.parametrize("stored", [np.int16, np.float32])
def test_preprocessing_matches_nnunetv2(predictor, spacing, stored, monkeypatch):
    from livervessels import nnunet_preprocess

    monkeypatch.setattr(nnunet_preprocess, "_SLAB_BYTES", 4 * 4 * 64 * 70)
    ph = make_phantom(seed=41, shape=(70, 64, 36), spacing=(2.0, 2.0, 2.0))
    image_zyx = np.asarray(ph.ct, stored).transpose(2, 1, 0)[None]  # a view, HU as read
    image_zyx[:, :, :3] = 0  # a zero border: the nonzero crop has something to cut
    props = {"spacing": list(spacing)}
    expected, expected_props = _nnunet(predictor, image_zyx, props)
    before = image_zyx.copy()
    data, properties = preprocess_for_prediction(predictor, image_zyx, props)
    assert np.array_equal(image_zyx, before)  # the caller's image is not touched
    assert data.dtype == expected.dtype == np.float32
    assert data.shape == expected.shape
    assert np.array_equal(data, expected)
    for key in ("shape_before_cropping", "bbox_used_for_cropping", "shape_after_cropping_and_before_resampling"):
        assert np.array_equal(np.asarray(properties[key]), np.asarray(expected_props[key])), key
    assert "shape_before_cropping" not in props  # the caller's dict stays as it was


def test_slab_path_is_the_one_taken_for_ct(predictor, monkeypatch):
    """A CT plan resampled in 3D goes through the slab-wise normalisation (so the test above checks it)."""
    from livervessels import nnunet_preprocess

    calls = []
    real = nnunet_preprocess._normalise_and_resize_by_slab
    monkeypatch.setattr(nnunet_preprocess, "_normalise_and_resize_by_slab",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    image = np.zeros((1, 36, 64, 70), np.int16) - 1000
    preprocess_for_prediction(predictor, image, {"spacing": [1.3, 0.8, 0.8]})
    assert calls == [1]
