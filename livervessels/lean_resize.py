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


def reproduces(in_shape, out_shape) -> bool:
    """Whether SkimageZoom can give skimage's resize of in_shape to out_shape here (scipy has the
    kernel, and skimage would return exactly out_shape)."""
    out_shape = tuple(int(s) for s in out_shape)
    return (available() and len(out_shape) == len(in_shape)
            and skimage_output_shape(in_shape, out_shape) == out_shape)


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
        if isinstance(image, list):
            image = image.pop()
        self._prepare(image.shape, image.dtype, out_shape, order)
        if self.order > 1:
            self._coefficients = self._empty_coefficients(image.shape)
            self._put(0, image)
            self._low, self._high = _range([image])
            del image
            self._filter()
        else:
            self._coefficients = image
            self._low, self._high = _range([image])

    @classmethod
    def from_row_blocks(cls, shape, dtype, blocks, out_shape, order: int) -> "SkimageZoom":
        """The same for an image that is never whole in memory: blocks yields (first row, rows), in
        order and covering the shape, e.g. a scan normalised a slab at a time.

        Raises:
            ValueError: as the constructor, or the blocks do not cover the shape.
        """
        zoom = cls.__new__(cls)
        zoom._prepare(tuple(shape), np.dtype(dtype), out_shape, order)
        zoom._coefficients = (zoom._empty_coefficients(shape) if zoom.order > 1
                              else np.empty(tuple(shape), dtype))
        covered, ranges = 0, []
        for start, block in blocks:
            if start != covered or block.shape[1:] != tuple(shape[1:]) or block.dtype != zoom.dtype:
                raise ValueError("row blocks must follow each other and match the shape and dtype")
            if zoom.order > 1:
                zoom._put(start, block)
            else:
                zoom._coefficients[start:start + len(block)] = block
            ranges.append(_range([block]))
            covered += len(block)
        if covered != shape[0]:
            raise ValueError(f"row blocks cover {covered} of {shape[0]} rows")
        lows, highs = zip(*ranges)
        zoom._low, zoom._high = _range([np.asarray(lows), np.asarray(highs)])
        if zoom.order > 1:
            zoom._filter()
        return zoom

    def _prepare(self, shape, dtype, out_shape, order: int) -> None:
        kernel = _kernel()
        if kernel is None:
            raise RuntimeError("scipy.ndimage has no zoom_shift kernel; use skimage.transform.resize")
        self._nd_image, ni_support = kernel
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"SkimageZoom takes float32 or float64 images, not {dtype}")
        out_shape = tuple(int(s) for s in out_shape)
        if len(out_shape) != len(shape) or skimage_output_shape(shape, out_shape) != out_shape:
            raise ValueError(f"skimage's resize of {tuple(shape)} would not return {out_shape}")
        self.dtype = np.dtype(dtype)
        self.out_shape = out_shape
        self.order = int(order)
        self._mode = ni_support._extend_mode_to_code("nearest")  # skimage's "edge"
        # scipy.ndimage.zoom: zoom factor from the whole shapes (grid_mode keeps them as they are)
        self._zoom = np.ascontiguousarray(np.divide(np.array(shape), np.array(out_shape),
                                                    out=np.ones(len(shape)), where=np.array(out_shape) != 0))
        # scipy pads (mode "nearest") before its spline filter, only for order > 1
        self._npad = _SCIPY_PREPAD if self.order > 1 else 0

    def _empty_coefficients(self, shape) -> np.ndarray:
        return np.empty(tuple(s + 2 * self._npad for s in shape), np.float64)

    def _put(self, start: int, rows: np.ndarray) -> None:
        """Rows of the image into the padded coefficient array (float32 -> float64 is exact)."""
        n = self._npad
        self._coefficients[(slice(n + start, n + start + len(rows)),)
                           + tuple(slice(n, n + s) for s in rows.shape[1:])] = rows

    def _filter(self) -> None:
        """scipy's np.pad(image, 12, mode="edge") then spline_filter(output=float64, mode="nearest"),
        on the array _put filled."""
        from scipy.ndimage import spline_filter

        n, c = self._npad, self._coefficients
        # Edge padding one axis at a time over the whole extent of the others, as np.pad does.
        for axis in range(c.ndim):
            size = c.shape[axis] - 2 * n
            lead = (slice(None),) * axis
            c[lead + (slice(0, n),)] = c[lead + (slice(n, n + 1),)]
            c[lead + (slice(n + size, None),)] = c[lead + (slice(n + size - 1, n + size),)]
        # spline_filter runs the 1-D filters axis after axis in its output array, so filtering the
        # array into itself is what it does after the first axis anyway.
        spline_filter(c, self.order, output=c, mode="nearest")

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

    def fill(self, out: np.ndarray) -> np.ndarray:
        """The whole result written into out (shape out_shape), a block of rows at a time."""
        for start, stop in self.row_blocks():
            out[start:stop] = self.rows(start, stop)
        return out

    def row_blocks(self, max_bytes: int = 128 << 20):
        """(start, stop) blocks of whole rows, each at most max_bytes of output (at least one row)."""
        per_row = int(np.prod(self.out_shape[1:], dtype=np.int64)) * np.dtype(self.dtype).itemsize
        step = max(1, max_bytes // max(per_row, 1))
        for start in range(0, self.out_shape[0], step):
            yield start, min(start + step, self.out_shape[0])


def _range(arrays) -> tuple[np.ndarray, np.ndarray]:
    """skimage's clip range over the arrays: min and max, NaN-safe when there are NaNs."""
    low = np.min([np.min(a) for a in arrays])
    if np.isnan(low):
        return np.asarray(np.min([np.nanmin(a) for a in arrays])), np.asarray(np.max([np.nanmax(a) for a in arrays]))
    return np.asarray(low), np.asarray(np.max([np.max(a) for a in arrays]))
