"""Accuracy of the portal / hepatic vein split on phantoms whose trees touch, against nearest-seed.

    .venv/bin/python bench/split_accuracy.py [--seeds 400 ... 419] [--cases 0 1 ...]
        [--param radial_weight=0 ...] [--json bench/results/split_accuracy.json]
    .venv/bin/python bench/split_accuracy.py --from-json bench/results/split_accuracy.json
    .venv/bin/python bench/split_accuracy.py --from-json NEW.json --against OLD.json   # paired, per phantom

Phantoms: vessels that touch but do not pass through each other (make_phantom(vessel_clearance_mm=0),
as in a real liver), and the stress case of the default phantom, whose vessels pass through each
other (physically impossible: where a hepatic vein runs through a portal branch, the truth itself
cuts the branch). Vessel masks: the ground truth (labels == liver_vessels) on a 1.5 x 1.5 x 2.5 mm
and a 0.94 x 0.94 x 1.25 mm grid; the ground truth with 15 small gaps; a network-like mask
(simulate_network_mask: thin branches missed, gaps, false-positive blobs, boundary errors) after
the enhancement step; and the bundled demo model's own mask after enhancement (a tiny network
trained on 16 pass-through phantoms; skipped when models/ lacks it). Support labels: the
phantom's liver, IVC and portal/splenic vein (the demo model's own for the demo-model case).

Methods: the centerline graph split, its voxel-geodesic fallback (--no_skeleton), and the
nearest-seed baseline (each vessel voxel takes the label of the nearest seed voxel, Euclidean mm;
same seeds). Metrics, over the mask's voxels that are truly vessel (a false-positive blob has no
right label): Dice per class, voxel accuracy, and branch accuracy: the share of skeleton branches
(and of their length) with the right label, on one reference skeleton of the mask for every method
(a branch's label is the majority of the method's labels on it, its truth the phantom's majority).
Seeds 200-209 tuned the split, 300-319 validated its choices, 10-99 validated the last one (the cost
of turning back towards a tree's root), 0-15 trained the demo model; the default 400-419 and
500-519 were not looked at before the reported runs. --param NAME=VALUE overrides a
SplitParams field (to measure what one part of the split contributes). Prints the mean over seeds
and writes JSON.
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

from livervessels.enhancement import repair_vessel_mask  # noqa: E402
from livervessels.portal_hepatic import HEPATIC, PORTAL, SplitParams, find_seeds, split_portal_hepatic  # noqa: E402
from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.synthetic.phantom_degrade import simulate_network_mask  # noqa: E402
from livervessels.vessel_graph import build_vessel_graph, skeletonize_mask  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from parallel import run_cases  # noqa: E402
from results_provenance import provenance  # noqa: E402
from split_scoring import split_params_from  # noqa: E402

GRIDS = {
    "1.5x1.5x2.5 mm": {"shape": (160, 160, 64), "spacing": (1.5, 1.5, 2.5)},
    "0.94x0.94x1.25 mm": {"shape": (256, 256, 128), "spacing": (0.94, 0.94, 1.25)},
}
# (case name, grid, vessel_clearance_mm, vessel mask source)
CASES = [
    ("touching, 1.5x1.5x2.5 mm", "1.5x1.5x2.5 mm", 0.0, "truth"),
    ("touching, 0.94x0.94x1.25 mm", "0.94x0.94x1.25 mm", 0.0, "truth"),
    ("touching, 1.5x1.5x2.5, 15 gaps", "1.5x1.5x2.5 mm", 0.0, "gaps"),
    ("touching, 1.5x1.5x2.5, network-like", "1.5x1.5x2.5 mm", 0.0, "network"),
    ("pass-through (stress), 1.5x1.5x2.5", "1.5x1.5x2.5 mm", None, "truth"),
    ("pass-through (stress), 0.94x0.94x1.25", "0.94x0.94x1.25 mm", None, "truth"),
    ("pass-through, demo model mask", "1.5x1.5x2.5 mm", None, "demo_model"),
]
MODELS = ROOT / "models"
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


def branch_majority(graph, volume: np.ndarray) -> np.ndarray:
    """Majority label (1/2) over each branch's non-zero voxels; 0 where a branch has none."""
    out = []
    for b in graph.branches:
        counts = np.bincount(volume[tuple(b.voxels.T)], minlength=3)[1:]
        out.append(0 if counts.sum() == 0 else int(np.argmax(counts)) + 1)
    return np.array(out, np.uint8)


def vessel_mask(ph, source: str, seed: int) -> tuple[np.ndarray, dict]:
    """The vessel mask and the support labels for one case."""
    support = {"liver": ph.labels == LABELS["liver"], "ivc": ph.labels == LABELS["inferior_vena_cava"],
               "portal_vein": ph.labels == LABELS["portal_vein_and_splenic_vein"]}
    truth = ph.labels == LABELS["liver_vessels"]
    if source == "truth":
        return truth, support
    if source == "gaps":
        return degrade(truth, ph.spacing, seed), support
    if source == "network":
        raw = simulate_network_mask(ph, seed)
        return repair_vessel_mask(raw, support["liver"] | truth, ph.ct, ph.spacing,
                                  exclude=support["ivc"] | support["portal_vein"])[0] > 0, support
    from livervessels.geometry import Volume  # demo model: its own masks, as the app runs it
    from livervessels.inference import segment
    seg = segment(Volume(ph.ct, ph.affine), "demo_liver", model_dirs=[MODELS])
    support = {"liver": seg.mask("liver") > 0, "ivc": seg.mask("inferior_vena_cava") > 0,
               "portal_vein": seg.mask("portal_vein_and_splenic_vein") > 0}
    enhanced = repair_vessel_mask(seg.mask("liver_vessels"), seg.mask("liver"), ph.ct, ph.spacing,
                                  exclude=support["ivc"] | support["portal_vein"])[0] > 0
    return enhanced, support


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def evaluate_case(seed: int, grid: dict, clearance: float | None, source: str,
                  params: SplitParams | None = None) -> dict:
    ph = make_phantom(seed=seed, vessel_clearance_mm=clearance, **grid)
    vessels, support = vessel_mask(ph, source, seed)
    truth = np.where(vessels, ph.vessel_tree, 0)
    scored = truth > 0
    t0 = time.perf_counter()
    ours = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=params, **support)
    t_ours = time.perf_counter() - t0
    geo = split_portal_hepatic(vessels, ph.ct, ph.spacing, use_skeleton=False, affine=ph.affine, params=params,
                               **support)
    seeds = find_seeds(vessels, ph.spacing, portal_vein=support["portal_vein"], ivc=support["ivc"], affine=ph.affine)
    _, nearest = ndimage.distance_transform_edt(~(seeds[PORTAL] | seeds[HEPATIC]), sampling=ph.spacing,
                                                return_indices=True)
    baseline = np.where(vessels, np.where(seeds[PORTAL][tuple(nearest)], PORTAL, HEPATIC), 0).astype(np.uint8)

    reference = build_vessel_graph(vessels, ph.spacing)
    true_branch = branch_majority(reference, truth)
    known = true_branch > 0
    lengths = np.array([b.length_mm for b in reference.branches])[known]
    row = {"seed": seed, "vessel_voxels": int(vessels.sum()), "scored_voxels": int(scored.sum()),
           "branches": int(known.sum()),
           "touching_voxels": int((ndimage.binary_dilation(truth == PORTAL, np.ones((3, 3, 3), bool))
                                   & (truth == HEPATIC)).sum()),
           "split_seconds": round(t_ours, 3), "confidence": ours.qc["confidence"], "flags": ours.qc["flags"]}
    for name, labels in (("graph split", ours.labels), ("geodesic fallback", geo.labels), ("nearest seed", baseline)):
        right = (branch_majority(reference, labels) == true_branch)[known]
        row[name] = {
            "dice_portal": round(dice((labels == PORTAL) & scored, truth == PORTAL), 4),
            "dice_hepatic": round(dice((labels == HEPATIC) & scored, truth == HEPATIC), 4),
            "voxel_accuracy": round(float((labels[scored] == truth[scored]).mean()), 4),
            "branch_accuracy": round(float(right.mean()), 4),
            "branch_length_accuracy": round(float((right * lengths).sum() / lengths.sum()), 4),
        }
    return row


METRICS = ("dice_portal", "dice_hepatic", "voxel_accuracy", "branch_accuracy", "branch_length_accuracy")
HEADER = f"{'case':38s} {'method':18s} " + " ".join(
    f"{m:>14s}" for m in ("Dice portal", "Dice hepatic", "voxel acc", "branch acc", "br. length acc",
                          "worst br. acc", "br. acc SE"))


def summarize(summary: dict) -> list[str]:
    """Fill in the per-method means (and the worst phantom and the standard error of the mean branch
    accuracy over phantoms) from summary["per_seed"]; return the table lines of this case."""
    per_seed = summary["per_seed"]
    lines = []
    for method in METHODS:
        branch = np.array([r[method]["branch_accuracy"] for r in per_seed])
        summary[method] = {m: round(float(np.mean([r[method][m] for r in per_seed])), 4) for m in METRICS}
        summary[method]["branch_accuracy_min"] = round(float(branch.min()), 4)
        sem = float(branch.std(ddof=1) / np.sqrt(len(branch))) if len(branch) > 1 else float("nan")
        summary[method]["branch_accuracy_sem"] = round(sem, 4)
        lines.append(f"{summary['case']:38s} {method:18s} " + " ".join(
            f"{summary[method][m]:14.3f}" for m in METRICS + ("branch_accuracy_min", "branch_accuracy_sem")))
    conf = np.array([r["confidence"] for r in per_seed])
    acc = np.array([r["graph split"]["branch_accuracy"] for r in per_seed])
    summary["calibration"] = {"mean_confidence": round(float(conf.mean()), 4),
                              "mean_abs_confidence_minus_accuracy": round(float(np.abs(conf - acc).mean()), 4)}
    lines.append(f"{summary['case']:38s} {'(split confidence)':18s} mean {conf.mean():.3f}, "
                 f"|confidence - branch accuracy| {np.abs(conf - acc).mean():.3f} per phantom")
    return lines


def paired_lines(results: dict, before: dict) -> list[str]:
    """Graph split branch accuracy of `results` against `before`, per case, on the phantoms both ran:
    both means, the mean paired difference and how many phantoms got better or worse."""
    old = {r["case"]: {x["seed"]: x["graph split"]["branch_accuracy"] for x in r["per_seed"]} for r in before["rows"]}
    lines = [f"{'case':38s} {'phantoms':>8s} {'before':>8s} {'after':>8s} {'diff':>8s} {'better':>7s} {'worse':>6s}"]
    for row in results["rows"]:
        pairs = [(old[row["case"]][x["seed"]], x["graph split"]["branch_accuracy"]) for x in row["per_seed"]
                 if x["seed"] in old.get(row["case"], {})]
        if not pairs:
            continue
        a, b = np.array(pairs).T
        lines.append(f"{row['case']:38s} {len(a):8d} {a.mean():8.4f} {b.mean():8.4f} {(b - a).mean():+8.4f} "
                     f"{int((b > a).sum()):7d} {int((b < a).sum()):6d}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(400, 420)))
    ap.add_argument("--cases", type=int, nargs="+", default=list(range(len(CASES))),
                    help="indices into the case list (default: all)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="override a SplitParams field, e.g. radial_weight=0 (repeatable)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one phantom each (0: one per core)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_accuracy.json"))
    ap.add_argument("--from-json", metavar="JSON",
                    help="print the table of an earlier run from its JSON (per-phantom rows) instead of running")
    ap.add_argument("--against", metavar="JSON",
                    help="also compare the graph split's branch accuracy, phantom by phantom, with this earlier run")
    args = ap.parse_args()
    before = json.loads(Path(args.against).read_text()) if args.against else None
    lines = [HEADER, "-" * len(HEADER)]
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        keep = set(args.seeds)  # --seeds picks a subset of the stored phantoms (default: all of 400-419)
        for summary in results["rows"]:
            summary["per_seed"] = [x for x in summary["per_seed"] if x["seed"] in keep]
            lines += summarize(summary) + [""]
        seeds = [x for x in results["seeds"] if x in keep]
        results["seeds"] = seeds
        print(f"mean over seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} phantoms), from {args.from_json}; "
              "target branch acc >= 0.95")
        print("\n".join(lines))
        if before:
            print(f"\nagainst {args.against}:\n" + "\n".join(paired_lines(results, before)))
        return
    params, overrides = split_params_from(args.param, ap.error)
    results = {"seeds": args.seeds, "params": overrides, "provenance": provenance(), "rows": []}
    for name, grid_name, clearance, source in [CASES[i] for i in args.cases]:
        if source == "demo_model" and not any(MODELS.glob("Dataset*")):
            print(f"{name}: skipped (no demo model in {MODELS})")
            continue
        grid = GRIDS[grid_name]
        per_seed = run_cases(evaluate_case, [(seed, grid, clearance, source, params) for seed in args.seeds],
                             1 if source == "demo_model" else args.jobs)
        summary = {"case": name, "grid": grid, "vessel_clearance_mm": clearance, "vessel_mask": source,
                   "per_seed": per_seed,
                   "mean_touching_voxels": float(np.mean([r["touching_voxels"] for r in per_seed])),
                   "mean_split_seconds": float(np.mean([r["split_seconds"] for r in per_seed]))}
        case_lines = summarize(summary)
        lines += case_lines + [""]
        results["rows"].append(summary)
        print("\n".join(case_lines) + "\n", flush=True)
    print(f"\nmean over seeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)} phantoms); "
          "target branch acc >= 0.95")
    print("\n".join(lines))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")
    if before:
        print(f"\nagainst {args.against}:\n" + "\n".join(paired_lines(results, before)))


if __name__ == "__main__":
    main()
