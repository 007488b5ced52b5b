"""Accuracy of the portal / hepatic vein split on phantoms whose trees touch, against nearest-seed.

    .venv/bin/python bench/split_accuracy.py [--seeds 200 ... 209] [--json bench/results/split_accuracy.json]

Input: the phantom's ground-truth vessel mask (labels == liver_vessels) with its liver, IVC and
portal/splenic vein as support labels, on the default grid, on a finer grid, and (default grid)
with a degraded vessel mask (small random gaps cut into the centerlines). Methods: the centerline
graph split, its voxel-geodesic fallback (--no_skeleton), and the nearest-seed baseline (each vessel
voxel takes the label of the nearest seed voxel, Euclidean mm; same candidate seeds). Metrics: Dice
per class, voxel accuracy, and branch accuracy: the share of skeleton branches (and of their
length) whose label is right, a branch's true label being the phantom's majority over its voxels.
Seeds 200+ (0..15 trained the demo model). Prints the mean over seeds and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.portal_hepatic import HEPATIC, PORTAL, find_seeds, split_portal_hepatic  # noqa: E402
from livervessels.vessel_graph import skeletonize_mask  # noqa: E402

GRIDS = {
    "default 1.5x1.5x2.5 mm": {"shape": (160, 160, 64), "spacing": (1.5, 1.5, 2.5)},
    "fine 0.94x0.94x1.25 mm": {"shape": (256, 256, 128), "spacing": (0.94, 0.94, 1.25)},
}
METHODS = ("graph split", "geodesic fallback", "nearest seed")


def degrade(vessels: np.ndarray, spacing, seed: int, gaps: int = 15, gap_radius_mm: float = 1.5) -> np.ndarray:
    """Cut `gaps` small balls out of the vessel tree at random centerline points (a network that
    misses short stretches of vessel)."""
    rng = np.random.default_rng(seed)
    centers = np.argwhere(skeletonize_mask(vessels))
    out = vessels.copy()
    sp = np.asarray(spacing)
    reach = np.ceil(gap_radius_mm / sp).astype(int)
    for c in centers[rng.choice(len(centers), min(gaps, len(centers)), replace=False)]:
        lo, hi = np.maximum(c - reach, 0), np.minimum(c + reach + 1, vessels.shape)
        idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), -1)
        ball = np.linalg.norm((idx - c) * sp, axis=-1) <= gap_radius_mm
        out[tuple(idx[ball].T)] = False
    return out


def branch_majority(graph, offset, volume: np.ndarray) -> np.ndarray:
    return np.array([np.argmax(np.bincount(volume[tuple((b.voxels + offset).T)], minlength=3)[1:]) + 1
                     for b in graph.branches])


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def evaluate_case(seed: int, grid: dict, degraded: bool) -> dict:
    ph = make_phantom(seed=seed, **grid)
    vessels = ph.labels == LABELS["liver_vessels"]
    if degraded:
        vessels = degrade(vessels, ph.spacing, seed)
    support = {"liver": ph.labels == LABELS["liver"], "ivc": ph.labels == LABELS["inferior_vena_cava"],
               "portal_vein": ph.labels == LABELS["portal_vein_and_splenic_vein"]}
    truth = np.where(vessels, ph.vessel_tree, 0)
    t0 = time.perf_counter()
    ours = split_portal_hepatic(vessels, ph.ct, ph.spacing, **support)
    t_ours = time.perf_counter() - t0
    geo = split_portal_hepatic(vessels, ph.ct, ph.spacing, use_skeleton=False, **support)
    seeds = find_seeds(vessels, ph.spacing, portal_vein=support["portal_vein"], ivc=support["ivc"])
    _, nearest = ndimage.distance_transform_edt(~(seeds[PORTAL] | seeds[HEPATIC]), sampling=ph.spacing,
                                                return_indices=True)
    baseline = np.where(vessels, np.where(seeds[PORTAL][tuple(nearest)], PORTAL, HEPATIC), 0).astype(np.uint8)

    graph, offset = ours.branches.graph, ours.branches.offset
    true_branch = branch_majority(graph, offset, truth)
    lengths = np.array([b.length_mm for b in graph.branches])
    row = {"seed": seed, "vessel_voxels": int(vessels.sum()), "branches": len(graph.branches),
           "touching_voxels": int((ndimage.binary_dilation(truth == PORTAL, np.ones((3, 3, 3), bool))
                                   & (truth == HEPATIC)).sum()),
           "split_seconds": round(t_ours, 3), "confidence": ours.qc["confidence"], "flags": ours.qc["flags"]}
    for name, labels, branch_labels in (
            ("graph split", ours.labels, ours.branches.labels),
            ("geodesic fallback", geo.labels, branch_majority(graph, offset, geo.labels)),
            ("nearest seed", baseline, branch_majority(graph, offset, baseline))):
        right = branch_labels == true_branch
        row[name] = {
            "dice_portal": round(dice(labels == PORTAL, truth == PORTAL), 4),
            "dice_hepatic": round(dice(labels == HEPATIC, truth == HEPATIC), 4),
            "voxel_accuracy": round(float((labels[vessels] == truth[vessels]).mean()), 4),
            "branch_accuracy": round(float(right.mean()), 4),
            "branch_length_accuracy": round(float((right * lengths).sum() / lengths.sum()), 4),
        }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(200, 210)))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_accuracy.json"))
    args = ap.parse_args()
    cases = [(name, grid, False) for name, grid in GRIDS.items()]
    cases.append(("default, degraded mask (15 gaps)", GRIDS["default 1.5x1.5x2.5 mm"], True))
    results = {"seeds": args.seeds, "rows": []}
    metrics = ("dice_portal", "dice_hepatic", "voxel_accuracy", "branch_accuracy", "branch_length_accuracy")
    header = f"{'case':34s} {'method':18s} " + " ".join(f"{m:>14s}" for m in
                                                        ("Dice portal", "Dice hepatic", "voxel acc", "branch acc",
                                                         "br. length acc"))
    lines = [header, "-" * len(header)]
    for name, grid, degraded in cases:
        per_seed = [evaluate_case(seed, grid, degraded) for seed in args.seeds]
        summary = {"case": name, "grid": grid, "degraded": degraded, "per_seed": per_seed,
                   "mean_touching_voxels": float(np.mean([r["touching_voxels"] for r in per_seed])),
                   "mean_split_seconds": float(np.mean([r["split_seconds"] for r in per_seed]))}
        for method in METHODS:
            summary[method] = {m: round(float(np.mean([r[method][m] for r in per_seed])), 4) for m in metrics}
            summary[method]["branch_accuracy_min"] = round(float(min(r[method]["branch_accuracy"]
                                                                     for r in per_seed)), 4)
            lines.append(f"{name:34s} {method:18s} " + " ".join(f"{summary[method][m]:14.3f}" for m in metrics))
        results["rows"].append(summary)
        lines.append("")
        print("\n".join(lines[-len(METHODS) - 1:]), flush=True)
    print(f"\nmean over seeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)} phantoms); "
          "target branch acc >= 0.95")
    print("\n".join(lines))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
