"""lean_resize gives skimage's resize values bit for bit, whole or by blocks of rows, with less memory."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from livervessels import lean_resize
from livervessels.lean_resize import SkimageZoom

CASES = [((37, 41, 29), (15, 20, 11)),  # down
         ((20, 23, 17), (47, 31, 40)),  # up
         ((33, 9, 12), (33, 30, 5))]    # one axis unchanged, mixed


def _skimage(image, shape, order):
    return resize(image, shape, order, mode="edge", anti_aliasing=False)


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", CASES)
def test_rows_equal_skimage_bit_for_bit(order, dtype, shapes):
    rng = np.random.default_rng(3)
    image = rng.normal(0, 100, shapes[0]).astype(dtype)
    image[0, 0, 0] = 900  # an outlier: order 3 overshoots next to it, and the clip must match skimage's
    expected = _skimage(image, shapes[1], order)
    zoom = SkimageZoom(image.copy(), shapes[1], order)
    assert zoom.rows().dtype == expected.dtype
    np.testing.assert_array_equal(zoom.rows(), expected)
    row_bytes = shapes[1][1] * shapes[1][2] * np.dtype(dtype).itemsize
    blocks = list(zoom.row_blocks(max_bytes=3 * row_bytes))
    assert len(blocks) > 1 and blocks[0] == (0, 3) and blocks[-1][1] == shapes[1][0]
    np.testing.assert_array_equal(np.concatenate([zoom.rows(a, b) for a, b in blocks]), expected)
    np.testing.assert_array_equal(zoom.fill(np.empty(shapes[1], dtype)), expected)


def test_input_handed_over_in_a_list_is_released():
    """Passed in a list, the image is taken out of it: the caller's last reference can go."""
    image = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    expected = _skimage(image, (8, 8, 8), 3)
    holder = [image.copy()]
    zoom = SkimageZoom(holder, (8, 8, 8), 3)
    assert holder == []
    np.testing.assert_array_equal(zoom.rows(), expected)


def test_refuses_what_it_cannot_reproduce():
    with pytest.raises(ValueError, match="float32 or float64"):
        SkimageZoom(np.zeros((4, 4, 4), np.int16), (2, 2, 2), 1)
    with pytest.raises(ValueError, match="would not return"):
        SkimageZoom(np.zeros((10, 10, 10), np.float32), (4, 4), 1)
    assert lean_resize.reproduces((10, 10, 10), (4, 5, 6)) and not lean_resize.reproduces((10, 10, 10), (4, 4))


def test_falls_back_when_scipy_lacks_the_kernel(monkeypatch):
    monkeypatch.setattr(lean_resize, "_kernel", lambda: None)
    assert not lean_resize.available() and not lean_resize.reproduces((4, 4, 4), (2, 2, 2))
    with pytest.raises(RuntimeError, match="zoom_shift"):
        SkimageZoom(np.zeros((4, 4, 4), np.float32), (2, 2, 2), 1)


@pytest.mark.parametrize("order", [1, 3])
def test_image_given_a_block_at_a_time_gives_the_same_values(order):
    """from_row_blocks (a scan normalised slab by slab, never whole in float) equals the whole image;
    NaNs in one block set skimage's NaN-safe clip range as they do for the whole image."""
    rng = np.random.default_rng(5)
    image = rng.normal(0, 50, (23, 19, 17)).astype(np.float32)
    image[4, 2, 2] = np.nan
    expected = _skimage(image, (11, 30, 9), order)
    blocks = ((a, image[a:a + 5]) for a in range(0, 23, 5))
    zoom = SkimageZoom.from_row_blocks(image.shape, np.float32, blocks, (11, 30, 9), order)
    np.testing.assert_array_equal(zoom.rows(), expected)
    with pytest.raises(ValueError, match="cover 10 of 23"):
        SkimageZoom.from_row_blocks(image.shape, np.float32, [(0, image[:10])], (11, 30, 9), order)
    with pytest.raises(ValueError, match="follow each other"):
        SkimageZoom.from_row_blocks(image.shape, np.float32, [(0, image[:5]), (6, image[6:])], (11, 30, 9), order)
