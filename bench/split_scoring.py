"""Scoring shared by the split benchmarks: branch accuracy on a reference skeleton, the nearest-seed
baseline, and confidence calibration (case level and a per-branch reliability table).

Branch accuracy is scored on one reference skeleton of the vessel mask for every method (the mask's
own centerline graph on its own grid): a branch's label is the majority of the method's labels on
it, its truth the phantom's majority; branches without a true vessel voxel (false-positive blobs)
are not scored ("detected branches" are the mask's branches that are truly vessel).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from livervessels.portal_hepatic import HEPATIC, PORTAL, SplitParams, find_seeds
from livervessels.vessel_graph import VesselGraph, build_vessel_graph

# Confidence bins of the reliability table.
BINS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0001)


def branch_majority(graph: VesselGraph, volume: np.ndarray) -> np.ndarray:
    """Majority label (1/2) over each branch's non-zero voxels; 0 where a branch has none."""
    out = []
    for b in graph.branches:
        counts = np.bincount(volume[tuple(b.voxels.T)], minlength=3)[1:]
        out.append(0 if counts.sum() == 0 else int(np.argmax(counts)) + 1)
    return np.array(out, np.uint8)


def branch_mean(graph: VesselGraph, volume: np.ndarray) -> np.ndarray:
    """Mean of a float volume over each branch's voxels."""
    return np.array([float(np.mean(volume[tuple(b.voxels.T)])) for b in graph.branches])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def nearest_seed_labels(vessels: np.ndarray, spacing, support: dict, affine) -> np.ndarray:
    """Baseline: every vessel voxel takes the label of the nearest seed voxel (Euclidean mm), with
    the split's own seeds."""
    seeds = find_seeds(vessels, spacing, portal_vein=support["portal_vein"], ivc=support["ivc"], affine=affine)
    if not (seeds[PORTAL] | seeds[HEPATIC]).any():
        return np.zeros(vessels.shape, np.uint8)
    _, nearest = ndimage.distance_transform_edt(~(seeds[PORTAL] | seeds[HEPATIC]), sampling=spacing,
                                                return_indices=True)
    return np.where(vessels, np.where(seeds[PORTAL][tuple(nearest)], PORTAL, HEPATIC), 0).astype(np.uint8)


class Reference:
    """The reference skeleton of one vessel mask and the truth on it."""

    def __init__(self, vessels: np.ndarray, truth_tree: np.ndarray, spacing):
        self.vessels = vessels
        self.truth = np.where(vessels, truth_tree, 0).astype(np.uint8)
        self.graph = build_vessel_graph(vessels, spacing)
        self.true_branch = branch_majority(self.graph, self.truth)
        self.known = self.true_branch > 0
        self.lengths = np.array([b.length_mm for b in self.graph.branches])[self.known]

    def score(self, labels: np.ndarray, confidence_map: np.ndarray | None = None) -> dict:
        """Dice per class, voxel accuracy, branch and branch-length accuracy; with a confidence map,
        each scored branch's confidence (mean over its centerline) and whether it was right."""
        scored = self.truth > 0
        right = (branch_majority(self.graph, labels) == self.true_branch)[self.known]
        out = {
            "dice_portal": round(dice((labels == PORTAL) & scored, self.truth == PORTAL), 4),
            "dice_hepatic": round(dice((labels == HEPATIC) & scored, self.truth == HEPATIC), 4),
            "voxel_accuracy": round(float((labels[scored] == self.truth[scored]).mean()), 4) if scored.any() else 0.0,
            "branch_accuracy": round(float(right.mean()), 4) if len(right) else 0.0,
            "branch_length_accuracy": round(float((right * self.lengths).sum() / max(self.lengths.sum(), 1e-9)), 4),
        }
        if confidence_map is not None:
            conf = branch_mean(self.graph, confidence_map)[self.known]
            out["branch_confidence"] = [round(float(c), 3) for c in conf]
            out["branch_right"] = [int(r) for r in right]  # 1 right, 0 wrong
        return out


def reliability(confidences, rights, bins=BINS) -> list[dict]:
    """Per confidence bin: branches, mean confidence, share right."""
    c = np.asarray(confidences, float)
    r = np.asarray(rights, bool)
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (c >= lo) & (c < hi)
        rows.append({"bin": f"{lo:.2f}-{min(hi, 1.0):.2f}", "branches": int(sel.sum()),
                     "mean_confidence": round(float(c[sel].mean()), 3) if sel.any() else None,
                     "accuracy": round(float(r[sel].mean()), 3) if sel.any() else None})
    return rows


def calibration_error(confidences, rights, bins=BINS) -> float:
    """Expected calibration error: branch-weighted mean |confidence - accuracy| over the bins."""
    c = np.asarray(confidences, float)
    r = np.asarray(rights, bool)
    if not len(c):
        return float("nan")
    err = 0.0
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = (c >= lo) & (c < hi)
        if sel.any():
            err += sel.sum() * abs(float(c[sel].mean()) - float(r[sel].mean()))
    return err / len(c)


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error of the mean."""
    v = np.asarray(values, float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def split_params_from(items: list[str], error) -> tuple[SplitParams, dict]:
    """SplitParams with the benchmark's --param NAME=VALUE overrides (booleans as 1/0 or true/false),
    and the overrides for the results JSON; error(message) reports a bad item (argparse's parser.error)."""
    overrides = {}
    for item in items:
        name, _, value = item.partition("=")
        default = getattr(SplitParams(), name, None)
        if default is None or not value:
            error(f"--param {item}: expected NAME=VALUE with NAME a SplitParams field")
        overrides[name] = value.lower() in ("1", "true") if isinstance(default, bool) else type(default)(value)
    return SplitParams(**overrides), overrides
