"""Simulated network vessel masks: the phantom's ground truth with the typical errors of a network
trained on MSD Task08 (thin branches missing, branches broken into fragments, false-positive blobs,
boundaries a voxel too fat or too thin in places). Used to measure the enhancement step.

Every parameter is physical (mm), so the same call means the same errors on any grid.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from livervessels.synthetic.phantom import LABELS, Phantom


def _world(affine: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _nearest_segment(points: np.ndarray, phantom: Phantom, chunk: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Index of the segment whose tube surface is nearest each point, and the distance to its axis."""
    a = np.array([s.start_mm for s in phantom.segments])
    b = np.array([s.end_mm for s in phantom.segments])
    r = np.array([s.radius_mm for s in phantom.segments])
    v = b - a
    l2 = np.maximum((v * v).sum(1), 1e-12)
    best = np.empty(len(points), int)
    axis_d = np.empty(len(points))
    for i in range(0, len(points), chunk):
        p = points[i: i + chunk, None, :] - a[None]  # (n, s, 3)
        t = np.clip((p * v[None]).sum(-1) / l2[None], 0.0, 1.0)
        d = np.linalg.norm(p - t[..., None] * v[None], axis=-1)
        j = np.argmin(d - r[None], axis=1)
        best[i: i + chunk] = j
        axis_d[i: i + chunk] = d[np.arange(len(j)), j]
    return best, axis_d


def simulate_network_mask(
    phantom: Phantom,
    seed: int,
    *,
    thin_radius_mm: float = 1.3,
    drop_fraction: float = 0.8,
    n_gaps: int = 8,
    gap_length_mm: tuple[float, float] = (2.0, 6.0),
    n_blobs: int = 6,
    blob_radius_mm: tuple[float, float] = (1.5, 4.0),
    n_boundary_regions: int = 8,
    boundary_region_radius_mm: float = 15.0,
    boundary_shell_mm: float | None = None,
) -> np.ndarray:
    """A plausible raw network mask (uint8) of the intrahepatic vessels of a phantom.

    - branches with radius < thin_radius_mm are missed with probability drop_fraction (a kept thin
      branch whose parent was missed becomes a floating fragment, as networks produce);
    - n_gaps cuts, gap_length_mm long, across branches at least thin_radius_mm thick;
    - n_blobs false-positive ellipsoids (semi-axes in blob_radius_mm) in the parenchyma, not touching
      vessels;
    - in n_boundary_regions balls of boundary_region_radius_mm around vessel voxels, the boundary
      is dilated (half of them) or eroded (the others) by boundary_shell_mm (default: one in-plane
      voxel); erosion spares branches thinner than two shells so it does not delete them.
    """
    rng = np.random.default_rng(seed)
    spacing = np.asarray(phantom.spacing, float)
    truth = phantom.labels == LABELS["liver_vessels"]
    liver = (phantom.labels == LABELS["liver"]) | truth
    if not truth.any():
        return np.zeros(truth.shape, np.uint8)
    shell = float(boundary_shell_mm) if boundary_shell_mm is not None else float(spacing.min()) * 1.01

    # Work on the liver's bounding box (+ room for blobs and dilation).
    pad = np.ceil((blob_radius_mm[1] + shell + 2.0) / spacing).astype(int)
    idx = np.nonzero(liver)
    box = tuple(slice(max(int(i.min()) - p, 0), int(i.max()) + p + 1) for i, p in zip(idx, pad))
    offset = np.array([s.start for s in box])
    t_box, liver_box = truth[box], liver[box]
    mask = t_box.copy()

    vox = np.argwhere(t_box)
    seg_of, _ = _nearest_segment(_world(phantom.affine, vox + offset), phantom)
    radius = np.array([s.radius_mm for s in phantom.segments])
    seg_radius = radius[seg_of]

    # 1. Missed thin branches.
    dropped = (radius < thin_radius_mm) & (rng.random(len(radius)) < drop_fraction)
    gone = dropped[seg_of]
    mask[tuple(vox[gone].T)] = False

    # 2. Gaps across kept branches thick enough for the network to have seen them.
    lengths = np.array([np.linalg.norm(s.end_mm - s.start_mm) for s in phantom.segments])
    cand = np.nonzero(~dropped & (radius >= thin_radius_mm) & (lengths > gap_length_mm[1] + 4.0))[0]
    pts = _world(phantom.affine, vox + offset)
    for j in rng.choice(cand, size=min(n_gaps, len(cand)), replace=False):
        s = phantom.segments[j]
        length = rng.uniform(*gap_length_mm)
        axis = (s.end_mm - s.start_mm) / lengths[j]
        t0 = rng.uniform(2.0, lengths[j] - length - 2.0)
        rel = pts - s.start_mm
        t = rel @ axis
        d = np.linalg.norm(rel - t[:, None] * axis[None], axis=1)
        cut = (t >= t0) & (t <= t0 + length) & (d <= s.radius_mm + spacing.max())
        mask[tuple(vox[cut].T)] = False

    # 3. Boundary errors in places (before the blobs, so blobs keep their size).
    dist_out = ndimage.distance_transform_edt(~t_box, sampling=spacing)
    dist_in = ndimage.distance_transform_edt(t_box, sampling=spacing)
    thick = np.zeros(t_box.shape, bool)
    thick[tuple(vox.T)] = seg_radius >= 2.0 * shell
    grid = np.indices(t_box.shape, sparse=True)
    for k in range(n_boundary_regions):
        c = vox[rng.integers(len(vox))]
        ball = sum(((g - ci) * sp) ** 2 for g, ci, sp in zip(grid, c, spacing)) <= boundary_region_radius_mm**2
        if k % 2 == 0:
            mask |= ball & (dist_out > 0) & (dist_out <= shell) & liver_box
        else:
            mask &= ~(ball & thick & (dist_in <= shell))

    # 4. False-positive blobs in the parenchyma, away from vessels.
    free = np.argwhere(liver_box & (dist_out > blob_radius_mm[1] + 2.0))
    for _ in range(n_blobs if len(free) else 0):
        c = free[rng.integers(len(free))]
        axes = rng.uniform(*blob_radius_mm, size=3)
        blob = sum(((g - ci) * sp / ax) ** 2 for g, ci, sp, ax in zip(grid, c, spacing, axes)) <= 1.0
        mask |= blob & liver_box

    out = np.zeros(truth.shape, np.uint8)
    out[box] = mask
    return out
