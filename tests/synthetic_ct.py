"""Synthetic CT and vessel masks in world millimetres for the tests of the repair, the vesselness
filter, the centerline graph and the split: grids centred on 0, partial-volume edges, bright tubes,
tube masks drawn along segments."""
from __future__ import annotations

import numpy as np
from scipy import special


def grid(spacing, size_mm):
    """World coordinates (mm) of an odd-sized grid centred on 0, so the centre voxel sits at 0."""
    n = [2 * int(round(s / sp / 2)) + 1 for s, sp in zip(size_mm, spacing)]
    axes = [(np.arange(k) - k // 2) * sp for k, sp in zip(n, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1), tuple(k // 2 for k in n)


def edge(dist_mm, blur_mm=0.6):
    """Partial-volume profile of a sharp edge at distance 0 seen through a Gaussian blur."""
    return 0.5 * special.erfc(dist_mm / (np.sqrt(2) * blur_mm))


def tube(spacing, radius=2.5, direction=(1, 0, 0), size_mm=(40, 30, 30), contrast=100.0):
    """A bright infinite tube through the grid's centre: (image, centre voxel index)."""
    p, centre = grid(spacing, size_mm)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    dist = np.linalg.norm(p - (p @ d)[..., None] * d, axis=-1)
    return (contrast * edge(dist - radius)).astype(np.float32), centre


def tube_mask(shape, spacing, segments, radius_mm: float, caps: bool = True) -> np.ndarray:
    """Voxels whose centre lies within radius_mm of any of the segments ((start, end) in mm); without
    caps, cut flat at the segments' ends (a cylinder exactly as long as its segment)."""
    idx = np.indices(shape).reshape(3, -1).T * np.asarray(spacing, float)
    inside = np.zeros(len(idx), bool)
    for a, b in segments:
        a, b = np.asarray(a, float), np.asarray(b, float)
        d = b - a
        t = (idx - a) @ d / (d @ d)
        near = np.linalg.norm(idx - (a + np.clip(t, 0, 1)[:, None] * d), axis=1) <= radius_mm
        inside |= near if caps else near & (t >= 0) & (t <= 1)
    return inside.reshape(shape)
