"""Network-like vessel masks for the realistic phantoms: what a segmentation network gives on that scan.

The errors follow the image, as a network's do (Task08-style liver vessel networks):

- a branch is found with a probability that rises with its contrast-to-noise ratio on this scan
  (lumen contrast x the partial-volume peak of its radius under this scan's point-spread, over the
  noise), so thin branches are missed more often on thick, noisy slices; below a missed branch the
  network usually loses the rest of the subtree too, keeping a floating fragment now and then;
- short gaps across thin and medium branches;
- false bridges where a portal and a hepatic vessel pass close without touching (the blur fills
  the thin parenchyma between them), more of them on thick slices;
- false-positive blobs in the parenchyma, half of them stuck to a vessel;
- boundaries a voxel too wide or too narrow in places.

Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervessels.synthetic.phantom import HEPATIC_TREE, PORTAL_TREE
from livervessels.synthetic.realistic import RealisticPhantom, point_spread_sigmas


@dataclass(frozen=True)
class NetworkErrors:
    """Error rates of the simulated network (physical units)."""

    # Networks trained on incomplete labels (MSD Task08) miss thin branches the CT still shows: the
    # detection curve sits well above what the image supports (an observer sees a detectability of ~5).
    detect_d50: float = 12.0  # a branch is found with probability 1/2 at this detectability (branch_detectability)
    detect_width: float = 3.0  # logistic width of that curve
    miss_any: float = 0.05  # any branch, however clear, is missed with this probability
    lose_subtree: float = 0.75  # below a missed branch, each branch is also lost with this probability
    gaps_per_100_branches: float = 2.0
    gap_length_mm: tuple[float, float] = (2.0, 6.0)
    gap_radius_mm: tuple[float, float] = (0.7, 2.5)  # gaps fall on branches of this radius
    bridges_per_mm_slice: float = 4.0  # false bridges per mm of slice thickness
    bridge_max_gap_mm: float = 2.0  # ... between vessels of the two trees this close (surface to surface)
    blobs: int = 8
    blob_radius_mm: tuple[float, float] = (1.2, 3.5)
    boundary_regions: int = 8
    boundary_region_radius_mm: float = 15.0


def branch_detectability(ph: RealisticPhantom, window_mm: float = 4.0) -> np.ndarray:
    """Detectability index of each branch on this scan (Rose model): the contrast of its centre,
    lumen contrast x (1 - exp(-r^2 / 2 s^2)) with s the point-spread averaged over directions across
    the vessel, over the noise SD, times the square root of the number of voxels a window_mm long
    piece of it covers (a detector integrates along and across the vessel)."""
    p = ph.protocol
    s2 = float(np.mean(point_spread_sigmas(p) ** 2))
    r = ph.branch_radius_mm
    peak = 1.0 - np.exp(-r ** 2 / (2 * s2))
    contrast = np.where(ph.branch_tree == PORTAL_TREE, p.portal_hu, p.hepatic_hu) - p.parenchyma_hu
    voxels = np.pi * np.maximum(r, np.sqrt(s2)) ** 2 * window_mm / float(np.prod(ph.spacing))
    return contrast * peak / max(p.noise_hu, 1.0) * np.sqrt(np.maximum(voxels, 1.0))


def simulate_network_mask(ph: RealisticPhantom, seed: int, errors: NetworkErrors = NetworkErrors()) -> np.ndarray:
    """A network-like raw vessel mask (bool) for a realistic phantom."""
    rng = np.random.default_rng([seed, 23])
    sp = np.asarray(ph.spacing)
    truth = ph.vessel_tree > 0
    if not truth.any():
        return truth.copy()
    liver = ph.support()["liver"]
    pad = np.ceil((errors.blob_radius_mm[1] + 3.0) / sp).astype(int)
    idx = np.nonzero(liver)
    box = tuple(slice(max(int(i.min()) - q, 0), int(i.max()) + q + 1) for i, q in zip(idx, pad))
    t_box, liver_box, bmap = truth[box], liver[box], ph.branch_map[box]
    tree_box = ph.vessel_tree[box]

    # 1. branches the network does not find, and what hangs below them
    nb = len(ph.branch_tree)
    logit = (branch_detectability(ph) - errors.detect_d50) / errors.detect_width
    p_found = (1.0 - errors.miss_any) / (1.0 + np.exp(-logit))
    found = rng.random(nb) < p_found
    lost = ~found
    order = np.argsort(_branch_depth(ph.branch_parent))
    for b in order:
        q = ph.branch_parent[b]
        if q >= 0 and lost[q] and rng.random() < errors.lose_subtree:
            lost[b] = True
    mask = t_box & ~lost[np.maximum(bmap - 1, 0)]

    # 2. gaps across thin and medium branches
    kept = np.flatnonzero(~lost & (ph.branch_radius_mm >= errors.gap_radius_mm[0])
                          & (ph.branch_radius_mm <= errors.gap_radius_mm[1])
                          & (ph.branch_length_mm > errors.gap_length_mm[1] + 4.0))
    n_gaps = int(round(errors.gaps_per_100_branches * (~lost).sum() / 100.0))
    vox = np.argwhere(mask)
    vb = bmap[tuple(vox.T)] - 1
    for b in rng.choice(kept, size=min(n_gaps, len(kept)), replace=False):
        pts = vox[vb == b]
        if len(pts) < 3:
            continue
        centre = pts[rng.integers(len(pts))]
        half = rng.uniform(*errors.gap_length_mm) / 2.0
        near = np.linalg.norm((pts - centre) * sp, axis=1) <= half + ph.branch_radius_mm[b]
        mask[tuple(pts[near].T)] = False

    # 3. false bridges between close vessels of the two trees
    d_p = ndimage.distance_transform_edt(tree_box != PORTAL_TREE, sampling=sp)
    d_h = ndimage.distance_transform_edt(tree_box != HEPATIC_TREE, sampling=sp)
    between = liver_box & ~t_box & (d_p > 0) & (d_h > 0) & (d_p + d_h <= errors.bridge_max_gap_mm + float(sp.max()))
    cand = np.argwhere(between)
    n_bridges = int(round(errors.bridges_per_mm_slice * ph.protocol.slice_mm))
    for c in cand[rng.choice(len(cand), size=min(n_bridges, len(cand)), replace=False)] if len(cand) else []:
        reach = max(d_p[tuple(c)], d_h[tuple(c)]) + 0.5 * float(sp.min())
        sl, ball = _ellipsoid(c, np.full(3, reach), sp, t_box.shape)
        mask[sl] |= ball & liver_box[sl]

    # 4. boundary errors (before the blobs, so the blobs keep their size)
    shell = float(sp.min()) * 1.01
    dist_out = ndimage.distance_transform_edt(~mask, sampling=sp)
    dist_in = ndimage.distance_transform_edt(mask, sampling=sp)
    vox = np.argwhere(mask)
    for k in range(errors.boundary_regions if len(vox) else 0):
        c = vox[rng.integers(len(vox))]
        sl, ball = _ellipsoid(c, np.full(3, errors.boundary_region_radius_mm), sp, t_box.shape)
        if k % 2 == 0:
            mask[sl] |= ball & (dist_out[sl] > 0) & (dist_out[sl] <= shell) & liver_box[sl]
        else:
            mask[sl] &= ~(ball & (dist_in[sl] <= shell) & (dist_in[sl] > 2 * shell - 1e-6))

    # 5. false-positive blobs: half in the parenchyma, half stuck to a vessel
    free = np.argwhere(liver_box & (dist_out > errors.blob_radius_mm[1] + 2.0))
    wall = np.argwhere(liver_box & (dist_out > 0) & (dist_out <= 1.5 * shell))
    for k in range(errors.blobs):
        pool = free if k % 2 == 0 else wall
        if not len(pool):
            continue
        c = pool[rng.integers(len(pool))]
        sl, blob = _ellipsoid(c, rng.uniform(*errors.blob_radius_mm, size=3), sp, t_box.shape)
        mask[sl] |= blob & liver_box[sl]

    out = np.zeros(truth.shape, bool)
    out[box] = mask
    return out


def _ellipsoid(centre, axes_mm, spacing, shape) -> tuple[tuple[slice, ...], np.ndarray]:
    """(box, mask in the box) of an axis-aligned ellipsoid around a voxel."""
    reach = np.ceil(np.asarray(axes_mm) / spacing).astype(int) + 1
    lo = np.maximum(centre - reach, 0)
    hi = np.minimum(centre + reach + 1, shape)
    sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    g = np.ogrid[sl]
    inside = sum(((gi - ci) * q / ax) ** 2 for gi, ci, q, ax in zip(g, centre, spacing, axes_mm)) <= 1.0
    return sl, inside


def _branch_depth(parent: np.ndarray) -> np.ndarray:
    """Number of ancestors of each branch (parents come first when sorted by it)."""
    depth = np.zeros(len(parent), np.int64)
    ptr = parent.copy()
    while (ptr >= 0).any():
        has = ptr >= 0
        depth[has] += 1
        ptr[has] = parent[ptr[has]]
    return depth
