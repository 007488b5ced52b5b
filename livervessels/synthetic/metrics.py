"""Overlap and topology metrics for binary vessel masks (Dice, centerline Dice, component count)."""
from __future__ import annotations

import cc3d
import numpy as np
from skimage.morphology import skeletonize

from livervessels.masks import bounding_box


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


def cldice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Centerline Dice (Shit et al., CVPR 2021) with skimage's 3-D skeletonize.

    Harmonic mean of topology precision (prediction skeleton inside the truth) and topology
    sensitivity (truth skeleton inside the prediction): rewards connected, complete trees and is
    insensitive to vessel thickness.
    """
    # skeletonize is the slow part: only the union's bounding box is thinned
    box = bounding_box(np.asarray(pred, bool) | np.asarray(truth, bool))
    if box is None:
        return 1.0
    # One empty voxel of padding: the 3-D thinning erases objects that touch the array border.
    p, t = np.pad(np.asarray(pred, bool)[box], 1), np.pad(np.asarray(truth, bool)[box], 1)
    if not p.any() or not t.any():
        return 0.0
    sp, st = skeletonize(p), skeletonize(t)
    t_prec = float(np.logical_and(sp, t).sum()) / max(int(sp.sum()), 1)
    t_sens = float(np.logical_and(st, p).sum()) / max(int(st.sum()), 1)
    return 0.0 if t_prec + t_sens == 0 else 2 * t_prec * t_sens / (t_prec + t_sens)


def n_components(mask: np.ndarray) -> int:
    """Number of 26-connected components."""
    m = np.asarray(mask, bool)
    if not m.any():
        return 0
    _, n = cc3d.connected_components(m.view(np.uint8), connectivity=26, return_N=True)
    return int(n)
