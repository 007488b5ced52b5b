"""livervessels/masks.py: bounding boxes (plain, grown, padded in voxels or by a reach in mm) and
hole filling, each against scipy's own answer or boxes worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from livervessels.masks import bounding_box, fill_holes, grow_box, padded_box, reach_voxels


def _random_masks(n: int = 30):
    rng = np.random.default_rng(0)
    for _ in range(n):
        shape = tuple(int(s) for s in rng.integers(3, 25, 3))
        yield rng.random(shape) < rng.choice([0.001, 0.02, 0.3, 0.7])


def test_bounding_box_is_scipys_find_objects_box():
    for mask in _random_masks():
        expected = ndimage.find_objects(mask.astype(int))
        assert bounding_box(mask) == (expected[0] if expected else None)
    assert bounding_box(np.zeros((3, 3, 3))) is None


def test_padded_box_is_the_extent_plus_the_pad_within_the_array():
    # TotalSegmentator's crop_to_mask: [first - addon, last + addon] inclusive, clipped to the image
    mask = np.zeros((20, 30, 40), bool)
    mask[5:8, 1, 30:40] = True
    assert padded_box(mask, 2) == (slice(3, 10), slice(0, 4), slice(28, 40))
    assert padded_box(mask, (0, 3, 1)) == (slice(5, 8), slice(0, 5), slice(29, 40))
    assert padded_box(mask, np.array([0.0, 3.0, 1.0])) == (slice(5, 8), slice(0, 5), slice(29, 40))  # from np.ceil
    assert padded_box(np.zeros_like(mask), 2) is None


def test_grow_box_pads_each_side_and_clips_to_the_shape():
    box = (slice(2, 4), slice(0, 5), slice(7, 9))
    assert grow_box(box, 1, (10, 10, 10)) == (slice(1, 5), slice(0, 6), slice(6, 10))
    assert grow_box(box, (3, 0, 5), (10, 6, 12)) == (slice(0, 7), slice(0, 5), slice(2, 12))
    assert grow_box(box, 0, (10, 10, 10)) == box


@pytest.mark.parametrize("spacing, reach_mm, expected", [
    ((1.0, 1.0, 1.0), 3.0, (4, 4, 4)),
    ((0.8, 1.5, 3.0), 6.0, (9, 5, 3)),  # ceil(7.5) + 1, ceil(4) + 1, ceil(2) + 1
    ((2.0, 2.0, 2.0), 0.0, (1, 1, 1)),
])
def test_reach_voxels_covers_the_reach_and_a_voxel_more(spacing, reach_mm, expected):
    assert reach_voxels(spacing, reach_mm) == expected


def test_a_box_grown_by_the_reach_holds_every_voxel_that_near():
    spacing = (0.7, 1.3, 2.5)
    for mask in _random_masks(10):
        if not mask.any() or mask.all():
            continue
        near = ndimage.distance_transform_edt(~mask, sampling=spacing) <= 4.0
        box = padded_box(mask, reach_voxels(spacing, 4.0))
        inside = np.zeros_like(mask)
        inside[box] = True
        assert not (near & ~inside).any()


def test_fill_holes_is_scipys_binary_fill_holes():
    for mask in _random_masks():
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


def test_fill_holes_fills_a_hollow_tube_and_keeps_an_open_one_open():
    tube = np.zeros((12, 12, 12), bool)
    tube[3:9, 3:9, 2:10] = True
    tube[5:7, 5:7, 3:9] = False  # a closed pocket: lumen the segmentation missed
    assert fill_holes(tube)[3:9, 3:9, 2:10].all()
    open_tube = tube.copy()
    open_tube[5:7, 5:7, 2:10] = False  # open at both ends: a real opening, reaching the outside
    assert np.array_equal(fill_holes(open_tube), open_tube)
    empty = np.zeros((4, 4, 4), bool)
    out = fill_holes(empty)
    assert not out.any() and out is not empty


def test_fill_holes_reads_a_label_mask_as_true_where_non_zero():
    tube = np.zeros((10, 10, 10), np.uint8)
    tube[2:8, 2:8, 2:8] = 3  # a label value, not a bool
    tube[4:6, 4:6, 4:6] = 0  # an enclosed pocket
    filled = fill_holes(tube)
    assert filled.dtype == bool and np.array_equal(filled, ndimage.binary_fill_holes(tube > 0))
