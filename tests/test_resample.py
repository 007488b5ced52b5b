"""Resampling to a model's spacing and back (livervessels/resample.py), against TotalSegmentator
2.18's change_spacing rules on small arrays: float32 header zooms, round-to-nearest output shapes,
corner voxel centres kept, truncation to integers; the torch path maps voxels as scipy does."""
from __future__ import annotations

import numpy as np

from livervessels.resample import resample_to_shape, zoom_factors, zoom_to_spacing


def test_torch_resampling_matches_scipys_mapping(small_phantom):
    """The GPU path's arithmetic (run here on the CPU) maps voxels as the scipy path does."""
    from livervessels.resample import resample_to_shape, resample_to_shape_torch

    image = small_phantom.ct[:60, :50, :30].astype(np.float32)
    labels = small_phantom.labels[:60, :50, :30]
    for shape in ((37, 81, 45), (90, 31, 17)):
        ref = resample_to_shape(image, shape, order=1)
        ours = resample_to_shape_torch(image, shape, order=1, device="cpu")
        assert np.abs(ours - ref).max() < 1e-2 * np.abs(ref).max()
        ref_labels = resample_to_shape(labels, shape, order=0)
        our_labels = resample_to_shape_torch(labels, shape, order=0, device="cpu")
        assert np.array_equal(our_labels, ref_labels)


def test_resampled_shape_rounds_to_nearest_and_keeps_the_corner_voxels():
    # TotalSegmentator's change_spacing: scipy.ndimage.zoom by header zoom / target spacing, whose
    # output shape is round(shape * zoom), with the first and last voxel centres kept in place.
    ramp = np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 5, 7), np.float32)
    out, spacing = zoom_to_spacing(ramp, (1.9, 1.35, 0.9), 1.0)
    assert out.shape == (6, 7, 6)  # 5.7, 6.75, 6.3 rounded (floor would give 5, 6, 6)
    np.testing.assert_allclose(out[:, 0, 0], np.arange(6) * 2 / 5, atol=1e-5)  # corner-aligned linear map
    np.testing.assert_allclose(spacing, (1.0, 1.0, 1.0), atol=1e-6)


def test_resampling_to_the_same_shape_copies_and_keeps_or_sets_the_dtype():
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    same = resample_to_shape(labels, labels.shape, order=0)
    assert same.dtype == np.uint8 and np.array_equal(same, labels) and same is not labels
    assert resample_to_shape(labels, labels.shape, order=0, output=np.float32).dtype == np.float32
    bigger = resample_to_shape(labels, (3, 5, 7), order=0)
    assert bigger.shape == (3, 5, 7) and bigger.dtype == np.uint8
    assert bigger[0, 0, 0] == labels[0, 0, 0] and bigger[-1, -1, -1] == labels[-1, -1, -1]  # corners kept


def test_zoom_factors_use_the_float32_header_zooms():
    # a NIfTI header stores zooms as float32: 0.8 becomes 0.800000011920929
    zoom = zoom_factors((0.8, 0.8, 1.5), 1.5)
    assert zoom[0] == np.float64(np.float32(0.8)) / 1.5 and zoom[0] != 0.8 / 1.5
    assert zoom[2] == 1.0


def test_truncation_goes_towards_zero_as_a_cast_to_int32():
    # TotalSegmentator casts the resampled CT to int32: -0.5 becomes 0, -1.5 becomes -1, 2.7 becomes 2
    image = np.array([-1.0, 0.0, 5.4], np.float32)[:, None, None] * np.ones((3, 1, 1), np.float32)
    out, _ = zoom_to_spacing(image, (2.0, 1.0, 1.0), 1.0, truncate=True)
    assert out.shape == (6, 1, 1) and out.dtype == np.float32
    exact = np.interp(np.arange(6) * 2 / 5, [0, 1, 2], [-1.0, 0.0, 5.4])
    assert np.array_equal(out[:, 0, 0], np.trunc(exact).astype(np.float32))
    assert (out[:, 0, 0] == np.trunc(out[:, 0, 0])).all()
    assert out[1, 0, 0] == 0.0  # -0.6 truncated towards zero, not floored to -1
