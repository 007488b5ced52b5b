"""Resampling between a volume's grid and a model's isotropic spacing.

Image order 1, labels order 0, as TotalSegmentator. Runs with torch on the GPU when one is present
(that is where TotalSegmentator loses seconds on large CTs), else with scipy on the CPU.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def zoom_to_spacing(image: np.ndarray, spacing: tuple[float, float, float], target_mm: float,
                    order: int = 1) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Resample to isotropic target_mm; returns the array and its exact new spacing."""
    shape = tuple(max(int(round(n * s / target_mm)), 1) for n, s in zip(image.shape, spacing))
    out = resample_to_shape(image, shape, order)
    new_spacing = tuple(float(n * s / m) for n, s, m in zip(image.shape, spacing, shape))
    return out, new_spacing


def resample_to_shape(array: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    """Resample so corner voxel centres stay aligned (scipy zoom with grid_mode=False)."""
    if tuple(array.shape) == tuple(shape):
        return array.copy()
    zoom = [t / s for t, s in zip(shape, array.shape)]
    out = ndimage.zoom(array, zoom, order=order, mode="nearest", prefilter=False)
    if out.shape != tuple(shape):  # scipy rounds the output shape itself; force ours
        out = out[tuple(slice(0, n) for n in shape)]
        pad = [(0, max(n - m, 0)) for n, m in zip(shape, out.shape)]
        out = np.pad(out, pad, mode="edge")
    return out
