"""The split's working grid (livervessels/split_fine_grid.py): subdividing coarse voxels and bringing
the labels back. Checks repetition and block majority against each other (they invert each other),
the CT's linear interpolation against hand-computed values and scipy's zoom, the mask's
subdivision against the input's connectivity and volume, and the nearest-label fill in mm."""
from __future__ import annotations

import itertools

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from livervessels.split_fine_grid import (
    block_majority,
    downsample_labels,
    repeat_voxels,
    upsample_ct,
    upsample_mask,
)
from livervessels.split_types import HEPATIC, PORTAL

from synthetic_ct import tube_mask


def _zoom(a: np.ndarray, scale) -> np.ndarray:
    """The reference the module names: linear interpolation at the sub-voxel centres, edges repeated."""
    return ndimage.zoom(a.astype(np.float32), scale, order=1, grid_mode=True, mode="nearest")


def _components(m: np.ndarray) -> int:
    return cc3d.connected_components(m, connectivity=26, return_N=True)[1]


def _block_any(m: np.ndarray, scale) -> np.ndarray:
    """Per input voxel: whether any of its sub-voxels is set (computed by reshaping, not by the module)."""
    n = [s // k for s, k in zip(m.shape, scale)]
    return m.reshape(n[0], scale[0], n[1], scale[1], n[2], scale[2]).any(axis=(1, 3, 5))


# ---- repetition and block majority ------------------------------------------------------------------


@pytest.mark.parametrize("scale", [(1, 1, 1), (2, 2, 2), (1, 1, 3), (3, 1, 2)])
def test_repeating_voxels_then_taking_the_block_majority_returns_the_labels(scale):
    labels = np.random.default_rng(0).integers(0, 3, (4, 5, 3)).astype(np.uint8)
    fine = repeat_voxels(labels, scale)
    assert fine.shape == tuple(n * k for n, k in zip(labels.shape, scale))
    # every sub-voxel carries its input voxel's label
    for a, b, c in itertools.product(*(range(k) for k in scale)):
        assert np.array_equal(fine[a::scale[0], b::scale[1], c::scale[2]], labels)
    assert np.array_equal(block_majority(fine, scale), labels)


def test_block_majority_counts_the_labelled_sub_voxels_only():
    scale = (2, 2, 2)
    fine = np.zeros((8, 2, 2), np.uint8)  # four input voxels along axis 0, eight sub-voxels each
    fine[0:2].flat[:3] = PORTAL  # 3 portal, 5 background: background does not vote
    fine[2:4].flat[:2] = PORTAL
    fine[2:4].flat[2:5] = HEPATIC  # 2 portal, 3 hepatic
    fine[4:6].flat[:4] = PORTAL
    fine[4:6].flat[4:] = HEPATIC  # 4 and 4: a tie goes to portal
    # fine[6:8] stays background
    assert block_majority(fine, scale).ravel().tolist() == [PORTAL, HEPATIC, PORTAL, 0]
    # a block along one axis only (thick slices)
    assert block_majority(np.array([[[HEPATIC, 0, HEPATIC, PORTAL, 0, 0]]], np.uint8), (1, 1, 3)).ravel().tolist() \
        == [HEPATIC, PORTAL]


# ---- the CT -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_ct_is_interpolated_linearly_between_voxel_centres(axis):
    # Two voxels, 0 and 100 HU. Sub-voxel centres of a factor k lie at (j + 0.5) / k - 0.5 in input
    # voxel units; beyond the outer centres the edge value repeats.
    shape = [1, 1, 1]
    shape[axis] = 2
    ct = np.array([0, 100], np.int16).reshape(shape)
    for k, expected in ((2, [0, 25, 75, 100]), (4, [0, 0, 12.5, 37.5, 62.5, 87.5, 100, 100])):
        scale = [1, 1, 1]
        scale[axis] = k
        out = upsample_ct(ct, scale)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out.ravel(), expected)


@pytest.mark.parametrize("scale", [(2, 2, 1), (4, 2, 1), (1, 1, 2), (2, 2, 2), (3, 1, 1)])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_ct_upsampling_is_scipy_zoom_and_commutes_with_flips(scale, dtype):
    # The fast axis-by-axis path (16-bit CT, power-of-two factors) must return zoom's values to the
    # bit, as its docstring says; the other inputs take zoom itself.
    ct = np.random.default_rng(1).integers(-1024, 3000, (5, 6, 4)).astype(dtype)
    out = upsample_ct(ct, scale)
    np.testing.assert_array_equal(out, _zoom(ct, scale))
    # linear interpolation has no preferred direction
    for axis in range(3):
        np.testing.assert_array_equal(upsample_ct(np.flip(ct, axis), scale), np.flip(out, axis))


# ---- the vessel mask -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5])
def test_thick_slices_are_subdivided_by_repetition(k):
    # One axis subdivided: a sub-voxel's own voxel weighs more than 0.5 in the interpolation, so
    # thresholding zoom at 0.5 is plain repetition, and upsample_mask returns exactly that.
    mask = np.random.default_rng(2).random((6, 7, 5)) < 0.4
    for scale in ((1, 1, k), (k, 1, 1)):
        repeated = repeat_voxels(mask, scale)
        assert np.array_equal(_zoom(mask, scale) >= 0.5, repeated)
        assert np.array_equal(upsample_mask(mask, scale), repeated)


def test_a_lone_voxel_keeps_its_block_centre():
    # Trilinear interpolation of a lone voxel peaks at 0.75^3 = 0.42 on a 2x grid: thresholding
    # alone would erase it; the vessel keeps the centre sub-voxel of its block and nothing else.
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, 1] = True
    assert not (_zoom(mask, (2, 2, 2)) >= 0.5).any()
    assert np.argwhere(upsample_mask(mask, (2, 2, 2))).tolist() == [[3, 3, 3]]


@pytest.mark.parametrize("step, scale", [((1, 1, 1), (2, 2, 2)), ((1, 1, 1), (3, 3, 3)), ((1, 1, 1), (2, 2, 3)),
                                         ((1, 0, 1), (2, 2, 3)), ((1, 1, 0), (2, 2, 2)), ((1, -1, 1), (4, 4, 1))])
def test_voxels_touching_at_a_corner_or_edge_stay_connected(step, scale):
    # A one-voxel vessel running diagonally: its voxels touch at corners or edges only, which the
    # interpolation breaks (checked below); the subdivided mask must still be one vessel, and every
    # input voxel must keep sub-voxels (its label comes back by block majority).
    mask = np.zeros((8, 8, 8), bool)
    start = np.array([1, 6 if step[1] < 0 else 1, 1])
    for i in range(6):
        mask[tuple(start + i * np.asarray(step))] = True
    assert _components(mask) == 1
    assert _components(_zoom(mask, scale) >= 0.5) != 1  # the interpolation alone breaks it
    out = upsample_mask(mask, scale)
    assert _components(out) == 1
    assert _block_any(out, scale)[mask].all()


@pytest.mark.parametrize("scale", [(2, 2, 2), (3, 3, 3), (2, 2, 3)])
def test_vessels_one_voxel_apart_stay_apart(scale):
    # Repairs restore the input's contacts only: two lines with a background voxel between them
    # (interpolated to at most 0.25 there) remain two vessels.
    mask = np.zeros((10, 7, 5), bool)
    mask[1:9, 2, 2] = True
    mask[1:9, 4, 2] = True
    assert _components(upsample_mask(mask, scale)) == 2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 2.5)])
def test_subdivided_vessels_keep_their_volume_and_every_voxel(spacing):
    # A Y of 2.6 mm tubes. Thresholding the interpolation at 0.5 puts the wall halfway between voxel
    # centres, where the input's voxel boundary is: the volume in mm^3 stays (within the smoothing of
    # corners), the vessel stays one piece, and each input vessel voxel keeps at least one sub-voxel.
    shape = tuple(int(round(e / s)) for e, s in zip((30, 30, 40), spacing))
    mask = tube_mask(shape, spacing, [((8, 8, 5), (22, 20, 35)), ((8, 8, 5), (24, 6, 30))], 2.6)
    volume = mask.sum() * np.prod(spacing)
    for scale in ((2, 2, 2), (2, 2, 3)):
        out = upsample_mask(mask, scale)
        assert out.sum() * np.prod(spacing) / np.prod(scale) == pytest.approx(volume, rel=0.1)
        assert _components(out) == 1
        assert _block_any(out, scale)[mask].all()
        # so every vessel voxel gets its label back from the working grid
        back = downsample_labels(out.astype(np.uint8) * HEPATIC, scale, mask, spacing)
        assert np.array_equal(back, mask * np.uint8(HEPATIC))


@pytest.mark.parametrize("scale", [(1, 1, 3), (2, 1, 1), (1, 4, 1)])
def test_thick_slices_are_repeated_without_interpolating(scale, monkeypatch):
    # the repetition is the interpolation's result there (test above), at a fraction of its cost
    def no_zoom(*args, **kwargs):
        raise AssertionError("interpolated although one axis only is subdivided")

    monkeypatch.setattr("livervessels.split_fine_grid.ndimage.zoom", no_zoom)
    mask = np.random.default_rng(4).random((4, 5, 3)) < 0.4
    assert np.array_equal(upsample_mask(mask, scale), repeat_voxels(mask, scale))


def test_where_the_interpolation_keeps_every_voxel_and_contact_nothing_is_added():
    # A straight one-voxel line along x: every block keeps sub-voxels and the line stays connected,
    # so the working-grid mask is the thresholded interpolation as it is (the end voxel's block keeps
    # only the half towards its neighbour; no centre is added to it).
    mask = np.zeros((7, 5, 5), bool)
    mask[1:6, 2, 2] = True
    scale = (2, 2, 2)
    thresholded = _zoom(mask, scale) >= 0.5
    assert _components(thresholded) == 1 and _block_any(thresholded, scale)[mask].all()
    assert np.array_equal(upsample_mask(mask, scale), thresholded)


def test_in_plane_subdivision_rounds_a_lone_voxel_instead_of_repeating_it():
    # Two axes subdivided 4x: the interpolation rounds a voxel's corners (its corner sub-voxels weigh
    # (5/8)^2 < 0.5), so this is not the repetition used for thick slices: 12 of 16 sub-voxels.
    mask = np.zeros((3, 3, 1), bool)
    mask[1, 1, 0] = True
    out = upsample_mask(mask, (4, 4, 1))
    block = out[4:8, 4:8, 0]
    assert out.sum() == block.sum() == 12
    assert not block[0, 0] and not block[0, 3] and not block[3, 0] and not block[3, 3]


@pytest.mark.parametrize("scale", [(2, 2, 2), (4, 4, 1), (2, 3, 2)])
def test_a_mask_filling_the_volume_stays_full_to_its_edges(scale):
    # the edges of the volume repeat (mode "nearest"): a vessel cut by the field of view is not
    # thinned where it leaves the image
    assert upsample_mask(np.ones((3, 4, 3), bool), scale).all()


def test_a_corner_contact_is_restored_inside_the_two_blocks_even_at_the_volume_edge():
    # (0, 1, 1) and (1, 0, 0) touch at an edge; the neighbour has index 0 on two axes. The join is
    # drawn between the two block centres, inside the box of the two blocks.
    mask = np.zeros((4, 4, 4), bool)
    mask[0, 1, 1] = mask[1, 0, 0] = True
    scale = (2, 2, 2)
    out = upsample_mask(mask, scale)
    assert _components(out) == 1
    assert out[:4, :4, :4].sum() == out.sum() > 2


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("scale", [(2, 2, 2), (3, 3, 2)])
def test_random_sparse_vessels_keep_their_connectivity(seed, scale):
    # Many diagonal contacts, rings among them (joins found already made must be skipped, not end the
    # repair): each 26-connected piece of the input is one piece on the working grid, no piece
    # merges with another, and every input voxel keeps a sub-voxel.
    mask = np.random.default_rng(seed).random((9, 9, 9)) < 0.15
    out = upsample_mask(mask, scale)
    labels_in = cc3d.connected_components(mask, connectivity=26)
    labels_out = cc3d.connected_components(out, connectivity=26)
    assert labels_out.max() == labels_in.max()
    assert _block_any(out, scale)[mask].all()
    piece_of_block = repeat_voxels(labels_in, scale)  # the input piece each sub-voxel's block belongs to
    inside = out & (piece_of_block > 0)
    pairs = set(zip(piece_of_block[inside].tolist(), labels_out[inside].tolist()))
    assert len(pairs) == labels_in.max()  # input piece -> output piece is one to one


def test_block_majority_gives_uint8_labels():
    assert block_majority(np.full((4, 4, 2), HEPATIC, np.uint8), (2, 2, 2)).dtype == np.uint8


# ---- labels back on the input grid ------------------------------------------------------------------


def test_downsampled_labels_are_the_block_majority_on_vessel_voxels_only():
    scale = (2, 1, 3)
    labels = np.random.default_rng(3).integers(0, 3, (5, 4, 3)).astype(np.uint8)
    vessels = labels > 0
    assert np.array_equal(downsample_labels(repeat_voxels(labels, scale), scale, vessels, (1, 1, 1)), labels)
    # sub-voxels labelled where the input has no vessel do not label it
    everywhere = repeat_voxels(np.full(labels.shape, PORTAL, np.uint8), scale)
    assert np.array_equal(downsample_labels(everywhere, scale, vessels, (1, 1, 1)), vessels * np.uint8(PORTAL))


@pytest.mark.parametrize("spacing, expected", [((1.0, 1.0, 3.0), PORTAL), ((3.0, 1.0, 1.0), HEPATIC)])
def test_a_vessel_voxel_whose_block_lost_its_labels_takes_the_nearest_label_in_mm(spacing, expected):
    # The voxel at (2, 2, 2) has no labelled sub-voxel. A portal voxel lies 2 voxels away along axis
    # 0, a hepatic one 1 voxel away along axis 2: nearer in voxels is hepatic, but in mm it depends
    # on the spacing (2 mm vs 3 mm, or 6 mm vs 1 mm).
    scale = (2, 2, 2)
    vessels = np.zeros((5, 5, 5), bool)
    vessels[2, 2, 2] = vessels[4, 2, 2] = vessels[2, 2, 3] = True
    coarse = np.zeros(vessels.shape, np.uint8)
    coarse[4, 2, 2], coarse[2, 2, 3] = PORTAL, HEPATIC
    out = downsample_labels(repeat_voxels(coarse, scale), scale, vessels, spacing)
    assert out[2, 2, 2] == expected
    assert out[4, 2, 2] == PORTAL and out[2, 2, 3] == HEPATIC and out.sum() == out[vessels].sum()
    # with no label anywhere there is nothing to copy
    assert not downsample_labels(np.zeros_like(repeat_voxels(coarse, scale)), scale, vessels, spacing).any()


@pytest.mark.parametrize("dtype,scale,fast", [
    (np.int16, (2, 2, 1), True), (np.uint8, (4, 4, 2), True), (np.int16, (4, 4, 2), True),  # 16 + 3 + 3 + 2 bits
    (np.int16, (8, 8, 1), True),  # 16 + 4 + 4: an axis left alone adds no bits
    (np.int16, (4, 4, 4), False), (np.int16, (8, 8, 4), False),  # 25 and 27 bits: over float32's 24
    (np.int16, (8, 8, 2), False),  # 26 bits: a factor 2 adds 2
    (np.int16, (3, 1, 1), False), (np.int16, (2, 6, 1), False),  # not powers of two
    (np.int32, (2, 2, 1), False), (np.float32, (2, 2, 1), False), (np.float64, (2, 1, 1), False),
])
def test_the_fast_path_runs_exactly_where_it_is_exact(dtype, scale, fast, monkeypatch):
    # The axis-by-axis path is only a faster zoom: it must run where its values are zoom's to the bit
    # (16-bit integers, power-of-two factors, at most 24 bits of mantissa) and nowhere else.
    low, high = (0, 255) if dtype == np.uint8 else (-32768, 32767)  # the whole 16-bit range
    ct = np.random.default_rng(3).integers(low, high, (5, 5, 5)).astype(dtype)
    if dtype == np.int32:
        ct = ct * 4099 + 2 ** 20  # values a 32-bit CT may hold, beyond float32's exact range once weighted
    zoom_calls = []
    real_zoom = ndimage.zoom
    monkeypatch.setattr("livervessels.split_fine_grid.ndimage.zoom",
                        lambda *a, **k: zoom_calls.append(1) or real_zoom(*a, **k))
    out = upsample_ct(ct, scale)
    assert (not zoom_calls) == fast
    np.testing.assert_array_equal(out, _zoom(ct, scale))


def test_beyond_24_fraction_bits_the_axis_by_axis_path_would_round():
    # why the fast path stops at 24 bits: with factors 8 x 8 x 4 float32 arithmetic axis by axis no
    # longer gives zoom's values everywhere on 16-bit data (so the fallback above is needed)
    ct = np.random.default_rng(3).integers(-32768, 32767, (5, 5, 5)).astype(np.int16)
    out = ct.astype(np.float32)
    for ax, k in enumerate((8, 8, 4)):
        n = out.shape[ax]
        at = (np.arange(n * k) + 0.5) / k - 0.5
        lo = np.floor(at).astype(np.int64)
        w = (at - lo).astype(np.float32).reshape([-1 if a == ax else 1 for a in range(3)])
        out = (np.take(out, np.clip(lo, 0, n - 1), axis=ax) * (1 - w)
               + np.take(out, np.clip(lo + 1, 0, n - 1), axis=ax) * w)
    assert not np.array_equal(out, _zoom(ct, (8, 8, 4)))
