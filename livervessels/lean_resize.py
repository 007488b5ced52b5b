"""skimage's resize (as nnU-Net calls it) with bounded memory and the same values, bit for bit.

nnunetv2 resamples images and class scores with skimage.transform.resize(..., mode="edge",
anti_aliasing=False), which is scipy.ndimage.zoom(grid_mode=True) followed by a clip to the input's
range. On a long scan that call holds, besides its input and output, a padded copy of the input
and its float64 spline coefficients (order 3), or a float64 output the size of the scan per class
(order 1): several GB each at 512 x 512 x 1500.

SkimageZoom gives the same numbers with less:
- order > 1: the coefficients are computed in place in one float64 array padded as scipy pads it,
  filled straight from the input (no padded float32 copy; the input may be freed first);
- any order: the output is computed a block of rows at a time. scipy's zoom kernel computes each
  output coordinate as (k + shift + 0.5) * zoom - 0.5 with the zoom factor taken from the whole
  shapes, so asking it for rows k0..k1 with shift k0 gives exactly the coordinates, weights and
  sums of the whole-array call.

It drives scipy.ndimage's compiled zoom kernel (scipy.ndimage._nd_image.zoom_shift, what
scipy.ndimage.zoom itself calls); `available()` says whether this scipy has it, and callers fall
back to skimage's resize when it does not. tests/test_lean_resize.py compares the values with
skimage's bit for bit.

Research use only; not a medical device.
"""
from __future__ import annotations

import numpy as np

# scipy pads this many samples per side (mode "nearest", order > 1) before the spline filter.
_SCIPY_PREPAD = 12


def _kernel():
    try:
        from scipy.ndimage import _nd_image, _ni_support
    except ImportError:  # pragma: no cover - depends on the installed scipy
        return None
    if not hasattr(_nd_image, "zoom_shift") or not hasattr(_ni_support, "_extend_mode_to_code"):
        return None  # pragma: no cover
    return _nd_image, _ni_support


def available() -> bool:
    """Whether the installed scipy exposes the zoom kernel this module drives."""
    return _kernel() is not None


def skimage_output_shape(in_shape, out_shape) -> tuple[int, ...]:
    """The shape skimage's resize actually returns for out_shape (scipy rounds in_shape * zoom)."""
    factors = np.divide(in_shape, out_shape)
    return tuple(int(round(n * (1 / f))) for n, f in zip(in_shape, factors))


class SkimageZoom:
    """skimage.transform.resize(image, out_shape, order, mode="edge", anti_aliasing=False) by rows.

    image: float32 or float64 array (the dtype skimage's result has); for order > 1 it may be
    passed as a one-element list, which is emptied so the caller's reference can be the last one
    and the input is freed while the coefficients are built.

    Raises:
        ValueError: an unsupported dtype, or scipy/skimage would not give out_shape.
        RuntimeError: the installed scipy lacks the zoom kernel (check `available()` first).
    """

    def __init__(self, image, out_shape, order: int):
        kernel = _kernel()
        if kernel is None:
            raise RuntimeError("scipy.ndimage has no zoom_shift kernel; use skimage.transform.resize")
        self._nd_image, ni_support = kernel
        if isinstance(image, list):
            image = image.pop()
        if image.dtype not in (np.float32, np.float64):
            raise ValueError(f"SkimageZoom takes float32 or float64 images, not {image.dtype}")
        out_shape = tuple(int(s) for s in out_shape)
        if len(out_shape) != image.ndim or skimage_output_shape(image.shape, out_shape) != out_shape:
            raise ValueError(f"skimage's resize of {image.shape} would not return {out_shape}")
        self.dtype = image.dtype
        self.out_shape = out_shape
        self.order = int(order)
        self._mode = ni_support._extend_mode_to_code("nearest")  # skimage's "edge"
        # scipy.ndimage.zoom: zoom factor from the whole shapes (grid_mode keeps them as they are)
        self._zoom = np.ascontiguousarray(np.divide(np.array(image.shape), np.array(out_shape),
                                                    out=np.ones(image.ndim), where=np.array(out_shape) != 0))
        # skimage clips to the input's range (NaN-safe when the input has NaNs)
        low = np.min(image)
        if np.isnan(low):
            low, high = np.nanmin(image), np.nanmax(image)
        else:
            high = np.max(image)
        self._low, self._high = np.asarray(low), np.asarray(high)
        if self.order > 1:
            self._npad = _SCIPY_PREPAD
            self._coefficients = self._spline_coefficients(image)
        else:
            self._npad = 0
            self._coefficients = image
        del image

    def _spline_coefficients(self, image: np.ndarray) -> np.ndarray:
        """scipy's np.pad(image, 12, mode="edge") then spline_filter(output=float64, mode="nearest"),
        built in one float64 array."""
        from scipy.ndimage import spline_filter

        n = self._npad
        coefficients = np.empty(tuple(s + 2 * n for s in image.shape), np.float64)
        coefficients[tuple(slice(n, n + s) for s in image.shape)] = image  # float32 -> float64 is exact
        # Edge padding one axis at a time over the whole extent of the others, as np.pad does.
        for axis, size in enumerate(image.shape):
            lead = (slice(None),) * axis
            coefficients[lead + (slice(0, n),)] = coefficients[lead + (slice(n, n + 1),)]
            coefficients[lead + (slice(n + size, None),)] = coefficients[lead + (slice(n + size - 1, n + size),)]
        # spline_filter runs the 1-D filters axis after axis in its output array, so filtering the
        # array into itself is what it does after the first axis anyway.
        spline_filter(coefficients, self.order, output=coefficients, mode="nearest")
        return coefficients

    def rows(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows start..stop (first axis) of skimage's result, in its dtype."""
        stop = self.out_shape[0] if stop is None else min(int(stop), self.out_shape[0])
        out = np.empty((stop - start, *self.out_shape[1:]), self.dtype)
        shift = np.zeros(len(self.out_shape), np.float64)
        shift[0] = start  # integer: k + start is the whole-array row index exactly
        self._nd_image.zoom_shift(self._coefficients, self._zoom, shift, out, self.order, self._mode, 0.0,
                                  self._npad, True)
        np.clip(out, self._low, self._high, out=out)
        return out

    def row_blocks(self, max_bytes: int = 128 << 20):
        """(start, stop) blocks of whole rows, each at most max_bytes of output (at least one row)."""
        per_row = int(np.prod(self.out_shape[1:], dtype=np.int64)) * np.dtype(self.dtype).itemsize
        step = max(1, max_bytes // max(per_row, 1))
        for start in range(0, self.out_shape[0], step):
            yield start, min(start + step, self.out_shape[0])
