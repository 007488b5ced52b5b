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


def test_a_target_spacing_per_axis_zooms_each_axis_to_its_own():
    # liver_segments: 0.8046879768371582 x 0.8046879768371582 x 1.5 mm (x, y, z of the canonical array)
    target = (0.8046879768371582, 0.8046879768371582, 1.5)
    zoom = zoom_factors((0.7, 0.7, 3.0), target)
    assert zoom[0] == np.float64(np.float32(0.7)) / 0.8046879768371582 and zoom[2] == 2.0
    image = np.zeros((100, 80, 20), np.float32)
    out, spacing = zoom_to_spacing(image, (0.7, 0.7, 3.0), target)
    assert out.shape == (round(100 * 0.7 / 0.8046879768371582), round(80 * 0.7 / 0.8046879768371582), 40)
    assert np.allclose(spacing, target, rtol=1e-6)
    # one number is the same as that number on every axis
    assert np.array_equal(zoom_factors((0.7, 0.9, 3.0), 1.5), zoom_factors((0.7, 0.9, 3.0), (1.5, 1.5, 1.5)))


def test_truncation_goes_towards_zero_as_a_cast_to_int32():
    # TotalSegmentator casts the resampled CT to int32: -0.5 becomes 0, -1.5 becomes -1, 2.7 becomes 2
    image = np.array([-1.0, 0.0, 5.4], np.float32)[:, None, None] * np.ones((3, 1, 1), np.float32)
    out, _ = zoom_to_spacing(image, (2.0, 1.0, 1.0), 1.0, truncate=True)
    assert out.shape == (6, 1, 1) and out.dtype == np.float32
    exact = np.interp(np.arange(6) * 2 / 5, [0, 1, 2], [-1.0, 0.0, 5.4])
    assert np.array_equal(out[:, 0, 0], np.trunc(exact).astype(np.float32))
    assert (out[:, 0, 0] == np.trunc(out[:, 0, 0])).all()
    assert out[1, 0, 0] == 0.0  # -0.6 truncated towards zero, not floored to -1


def test_the_torch_nearest_neighbour_picks_the_rounded_corner_aligned_source_index():
    # order 0 in torch: output voxel i takes source index round-half-up(i * (n_in - 1) / (n_out - 1))
    from livervessels.resample import resample_to_shape_torch

    line = np.arange(3, dtype=np.int16)[:, None, None] * np.ones((1, 2, 1), np.int16)
    up = resample_to_shape_torch(line, (5, 2, 1), order=0, device="cpu")
    assert up.dtype == np.int16 and up[:, 0, 0].tolist() == [0, 1, 1, 2, 2]  # 0, .5, 1, 1.5, 2
    down = resample_to_shape_torch(np.arange(7, dtype=np.uint8)[:, None, None], (3, 1, 1), order=0, device="cpu")
    assert down[:, 0, 0].tolist() == [0, 3, 6]  # both ends kept
    one = resample_to_shape_torch(np.arange(4, dtype=np.uint8)[:, None, None], (1, 1, 1), order=0, device="cpu")
    assert one.ravel().tolist() == [0]  # a single output voxel sits on the first corner
    wide = resample_to_shape_torch(np.array([[[7]]], np.uint8), (1, 1, 4), order=0, device="cpu")
    assert wide.ravel().tolist() == [7, 7, 7, 7]  # one source voxel fills the axis


def test_the_torch_trilinear_path_is_exact_on_a_ramp_and_keeps_float64():
    # a linear ramp is reproduced exactly by corner-aligned trilinear interpolation
    from livervessels.resample import resample_to_shape_torch

    ramp = np.arange(4, dtype=np.float64)[:, None, None] + 10 * np.arange(3, dtype=np.float64)[None, :, None]
    ramp = ramp * np.ones((1, 1, 2))
    out = resample_to_shape_torch(ramp, (7, 5, 2), order=1, device="cpu")
    assert out.dtype == np.float64 and out.shape == (7, 5, 2)
    expect = np.arange(7)[:, None] * 3 / 6 + 10 * np.arange(5)[None, :] * 2 / 4
    np.testing.assert_allclose(out[:, :, 1], expect, atol=1e-5)
    as_int = resample_to_shape_torch(ramp.astype(np.int16), (7, 5, 2), order=1, device="cpu")
    assert as_int.dtype == np.float32  # integers interpolate to float32, not back to int16
    np.testing.assert_allclose(as_int[:, :, 0], expect, atol=1e-4)


def test_a_cuda_device_routes_both_resamplings_through_torch(monkeypatch):
    """With a CUDA device (simulated: the torch path runs on the CPU) zoom_to_spacing and
    resample_to_shape hand the device to torch; the result matches scipy's and keeps the dtype asked."""
    from livervessels import resample

    calls = []
    real = resample.resample_to_shape_torch

    def on_cpu(array, shape, order, device="cuda"):
        calls.append((tuple(shape), order, device))
        return real(array, shape, order, device="cpu")

    monkeypatch.setattr(resample, "resample_to_shape_torch", on_cpu)
    image = (np.arange(60, dtype=np.float32).reshape(3, 4, 5) * 7.3) - 200
    ref, ref_spacing = resample.zoom_to_spacing(image, (1.5, 1.5, 2.0), 1.0, truncate=True)
    assert not calls  # no device: scipy
    ours, spacing = resample.zoom_to_spacing(image, (1.5, 1.5, 2.0), 1.0, truncate=True, device="cuda:1")
    assert calls == [((4, 6, 10), 1, "cuda:1")] and spacing == ref_spacing
    assert ours.dtype == np.float32 and (ours == np.trunc(ours)).all()
    assert np.abs(ours - ref).max() <= 1.0  # truncation of values equal up to float32 rounding
    smooth, _ = resample.zoom_to_spacing(image, (1.5, 1.5, 2.0), 1.0, device="cuda")
    assert calls[-1][2] == "cuda" and smooth.dtype == np.float32
    labels = (image > 0).astype(np.uint8)
    picked = resample.resample_to_shape(labels, (5, 8, 9), order=0, output=np.int32, device="cuda:0")
    assert calls[-1] == ((5, 8, 9), 0, "cuda:0") and picked.dtype == np.int32
    assert np.array_equal(picked, resample.resample_to_shape(labels, (5, 8, 9), order=0, output=np.int32))
    n = len(calls)
    same = resample.resample_to_shape(labels, labels.shape, order=0, device="cuda:0")  # nothing to resample
    cpu = resample.resample_to_shape(labels, (5, 8, 9), order=0, device="cpu")
    assert len(calls) == n and np.array_equal(same, labels) and cpu.shape == (5, 8, 9)


def test_an_axis_thinner_than_half_the_target_spacing_keeps_one_voxel():
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    out, spacing = zoom_to_spacing(image, (0.4, 1.0, 1.0), 1.0)  # 0.4 voxels rounds to 0: kept as 1
    assert out.shape == (1, 4, 4) and np.array_equal(out, image)
    assert spacing == (1.0, 1.0, 1.0)  # what nnU-Net reads back: the target spacing


def test_two_nearest_neighbour_output_voxels_take_the_two_ends():
    from livervessels.resample import resample_to_shape_torch

    ends = resample_to_shape_torch(np.arange(5, dtype=np.uint8)[:, None, None], (2, 1, 1), order=0, device="cpu")
    assert ends.ravel().tolist() == [0, 4]


def test_a_long_nearest_neighbour_axis_picks_the_indices_scipy_picks():
    # 3 -> 429 voxels: output 321 sits at 321 * 2 / 428 = 1.5; scipy (the CPU path) computes it in
    # float64 as 1.4999999999999998 and takes index 1, as the torch path must; in float32 it is 1.5
    # and index 2 would be taken
    from livervessels.resample import resample_to_shape_torch

    source = np.arange(3, dtype=np.uint8)[:, None, None]
    line = resample_to_shape_torch(source, (429, 1, 1), order=0, device="cpu")
    assert np.array_equal(line, resample_to_shape(source, (429, 1, 1), order=0))
    assert line[321, 0, 0] == 1 and line[322, 0, 0] == 2


def test_truncation_interpolates_in_float64_as_totalsegmentator_reads_the_image():
    # TotalSegmentator interpolates nibabel's get_fdata() (float64) and then casts to int32. Here
    # interpolating in float32 would round a value just under an integer up to it before truncation.
    from scipy import ndimage

    image = np.array([32.0, -280.0, 158.0], np.float32)[:, None, None]
    out, _ = zoom_to_spacing(image, (34 / 3, 1.0, 1.0), 1.0, truncate=True)
    assert out.shape == (34, 1, 1)
    totalseg = np.trunc(ndimage.zoom(image.astype(np.float64), (34 / 3, 1, 1), order=1, mode="nearest",
                                     prefilter=False)).astype(np.int32)
    assert np.array_equal(out.astype(np.int32), totalseg)


def test_the_resampled_spacing_is_the_float32_of_header_zooms_over_zoom():
    # the header stores 0.302 as float32 (0.3019999862); dividing that by the zoom gives 1.5 exactly,
    # dividing the float64 0.302 would give 1.5000001 once stored as float32 (0.316: 1.4999999)
    image = np.zeros((10, 10, 10), np.float32)
    _, spacing = zoom_to_spacing(image, (0.302, 0.316, 0.346), 1.5)
    assert spacing == (1.5, 1.5, 1.5)


def test_resampling_to_another_shape_writes_the_dtype_asked():
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = resample_to_shape(labels, (4, 6, 8), order=0, output=np.float32)
    assert out.dtype == np.float32 and out.shape == (4, 6, 8) and out[-1, -1, -1] == 23
