"""Accuracy of the vessel enhancement on phantoms with ground truth and simulated network masks.

    .venv/bin/python bench/enhancement_accuracy.py [--seeds 100 101 102 103 104]
        [--json bench/results/enhancement_accuracy.json]

Seeds 0..15 trained the demo model, so the default seeds are 100..104. For each grid and image
condition, the raw mask is simulate_network_mask(phantom, seed) (thin branches missed, gaps,
false-positive blobs, boundary errors) and the enhanced mask is repair_vessel_mask(raw, liver,
ct, spacing) with the liver from the phantom's labels. Prints Dice, centerline Dice and the number
of 26-connected components for raw vs enhanced (per seed and mean) and writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.enhancement import repair_vessel_mask  # noqa: E402
from livervessels.synthetic.metrics import cldice, dice, n_components  # noqa: E402
from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.synthetic.phantom_degrade import simulate_network_mask  # noqa: E402

GRIDS = {
    "1.5x1.5x2.5": {"shape": (160, 160, 64), "spacing": (1.5, 1.5, 2.5)},
    "0.94x0.94x1.25": {"shape": (256, 256, 128), "spacing": (0.94, 0.94, 1.25)},
}
# The phantom's default image (12 HU noise, vessels +80..100 HU over parenchyma) and two harder
# ones the method was not tuned on: twice the noise, and half the vessel contrast.
CONDITIONS = {
    "default": {},
    "noise 25 HU": {"noise_hu": 25.0},
    "contrast +40 HU": {"contrast_hu": 140.0},
}
KEYS = ["dice_raw", "dice_enh", "cldice_raw", "cldice_enh", "comp_raw", "comp_enh", "comp_truth"]


def evaluate(seed: int, grid: dict, condition: dict) -> dict:
    ph = make_phantom(seed=seed, shape=grid["shape"], spacing=grid["spacing"], **condition)
    truth = ph.labels == LABELS["liver_vessels"]
    liver = (ph.labels == LABELS["liver"]) | truth
    raw = simulate_network_mask(ph, seed)
    # the IVC and portal trunk labels, as the app passes TotalSegmentator's
    trunks = (ph.labels == LABELS["inferior_vena_cava"]) | (ph.labels == LABELS["portal_vein_and_splenic_vein"])
    t = time.perf_counter()
    enhanced, meta = repair_vessel_mask(raw, liver, ph.ct, ph.spacing, exclude=trunks)
    seconds = time.perf_counter() - t
    return {
        "seed": seed,
        "dice_raw": dice(raw, truth), "dice_enh": dice(enhanced, truth),
        "cldice_raw": cldice(raw, truth), "cldice_enh": cldice(enhanced, truth),
        "comp_raw": n_components(raw), "comp_enh": n_components(enhanced), "comp_truth": n_components(truth),
        "seconds": round(seconds, 2), "added_voxels": meta["added_voxels"], "removed_voxels": meta["removed_voxels"],
        "backed_off": meta.get("backed_off"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    ap.add_argument("--grids", nargs="+", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "enhancement_accuracy.json"))
    args = ap.parse_args()

    head = (f"{'grid (mm)':<15} {'condition':<16} {'seed':>5} {'Dice raw':>9} {'Dice enh':>9} {'clDice raw':>11} "
            f"{'clDice enh':>11} {'comp raw':>9} {'comp enh':>9} {'comp GT':>8} {'enh s':>6}")
    print(head)
    results = []
    for gname in args.grids:
        for cname in args.conditions:
            rows = [evaluate(seed, GRIDS[gname], CONDITIONS[cname]) for seed in args.seeds]
            for r in rows:
                print(f"{gname:<15} {cname:<16} {r['seed']:>5} {r['dice_raw']:>9.3f} {r['dice_enh']:>9.3f} "
                      f"{r['cldice_raw']:>11.3f} {r['cldice_enh']:>11.3f} {r['comp_raw']:>9d} {r['comp_enh']:>9d} "
                      f"{r['comp_truth']:>8d} {r['seconds']:>6.1f}")
            mean = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in KEYS + ["seconds"]}
            print(f"{gname:<15} {cname:<16} {'mean':>5} {mean['dice_raw']:>9.3f} {mean['dice_enh']:>9.3f} "
                  f"{mean['cldice_raw']:>11.3f} {mean['cldice_enh']:>11.3f} {mean['comp_raw']:>9.1f} "
                  f"{mean['comp_enh']:>9.1f} {mean['comp_truth']:>8.1f} {mean['seconds']:>6.1f}")
            results.append({"grid": gname, **GRIDS[gname], "condition": cname, "phantom_kwargs": CONDITIONS[cname],
                            "per_seed": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                                         for r in rows],
                            "mean": mean})
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": args.seeds, "degradation": "simulate_network_mask defaults",
                               "results": results}, indent=2))


if __name__ == "__main__":
    main()
