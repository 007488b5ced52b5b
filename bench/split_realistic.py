"""Portal / hepatic split on the realistic phantom family: accuracy, calibration, against nearest-seed.

    .venv/bin/python bench/split_realistic.py --set validation          # seeds 2000-2019
    .venv/bin/python bench/split_realistic.py --set final               # seeds 3000-3019, the reported run
    .venv/bin/python bench/split_realistic.py --seeds 1000 1001 --conditions normal --masks truth
    .venv/bin/python bench/split_realistic.py --from-json bench/results/split_realistic_final.json

Phantoms: livervessels.synthetic.realistic (dense portal and hepatic trees filling a 1.2-1.8 l
liver, hundreds of branches each, touching wherever they meet), imaged under three conditions
(`CONDITIONS`: normal = 1-2 mm slices and 8-16 HU noise; hard = 2-3 mm slices and 18-30 HU;
equilibrium = normal but portal and hepatic veins equally bright; portal-venous contrast of 0-40 HU
between the trees otherwise). Vessel masks: the truth, and a network-like mask
(livervessels.synthetic.network_mask) after the repair step (repair_vessel_mask), as the app
runs it. Support labels: the phantom's liver, IVC and portal/splenic vein.

Methods: the graph split (split_portal_hepatic) and the nearest-seed baseline (same seeds). Metrics
(bench/split_scoring.py): branch accuracy on the detected branches of a reference skeleton of the
mask, mean and standard error over phantoms; voxel accuracy; Dice per class; the split's overall
confidence beside the branch accuracy (|confidence - accuracy| per phantom, mean); a per-branch
reliability table (branches binned by their confidence: mean confidence vs share right) and its
expected calibration error.

Seed sets: tuning 1000-1009 (methods were tuned there), validation 2000-2019 (choices checked
there), final 3000-3019 (run once, at the end, for the README). --param NAME=VALUE overrides a
SplitParams field. Prints tables and writes JSON.
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
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.enhancement import repair_vessel_mask  # noqa: E402
from livervessels.portal_hepatic import SplitParams, split_portal_hepatic  # noqa: E402
from livervessels.synthetic.metrics import cldice, dice, n_components  # noqa: E402
from livervessels.synthetic.network_mask import simulate_network_mask  # noqa: E402
from livervessels.synthetic.realistic import CONDITIONS, make_realistic_phantom  # noqa: E402

from parallel import run_cases  # noqa: E402
from results_provenance import provenance  # noqa: E402
from split_scoring import (  # noqa: E402
    Reference,
    calibration_error,
    mean_se,
    nearest_seed_labels,
    reliability,
    split_params_from,
)

SEED_SETS = {"tuning": list(range(1000, 1010)), "validation": list(range(2000, 2020)),
             "final": list(range(3000, 3020))}
MASKS = ("truth", "network")
METHODS = ("graph split", "nearest seed")
METRICS = ("branch_accuracy", "voxel_accuracy", "dice_portal", "dice_hepatic", "branch_length_accuracy")


def confidence_map(split) -> np.ndarray:
    """Per vessel voxel: the confidence of the split's branch it belongs to."""
    cmap = getattr(split, "confidence_map", None)
    if cmap is not None:
        return cmap
    from scipy import ndimage
    br = split.branches
    centre = np.zeros(split.labels.shape, np.float32)
    has = np.zeros(split.labels.shape, bool)
    for b in br.graph.branches:
        v = br.input_voxels(b.index)
        centre[tuple(v.T)] = br.confidence[b.index]
        has[tuple(v.T)] = True
    if not has.any():
        return centre
    _, ind = ndimage.distance_transform_edt(~has, return_indices=True)
    return np.where(split.labels > 0, centre[tuple(ind)], 0.0).astype(np.float32)


def evaluate(seed: int, condition: str, masks, params: SplitParams) -> list[dict]:
    ph = make_realistic_phantom(seed, condition)
    support = ph.support()
    truth_mask = ph.vessel_mask
    p = ph.protocol
    rows = []
    for source in masks:
        t0 = time.perf_counter()
        repair = None
        if source == "truth":
            vessels = truth_mask
        else:
            raw = simulate_network_mask(ph, seed)
            enhanced, meta = repair_vessel_mask(raw, support["liver"], ph.ct, ph.spacing,
                                                exclude=support["ivc"] | support["portal_vein"])
            vessels = enhanced > 0
            truth = ph.vessel_mask
            repair = {"backed_off": meta.get("backed_off"), "seconds": round(time.perf_counter() - t0, 2),
                      "slice_mm": round(p.slice_mm, 2), "noise_hu": round(p.noise_hu, 1),
                      "dice_raw": dice(raw, truth), "dice_enh": dice(vessels, truth),
                      "cldice_raw": cldice(raw, truth), "cldice_enh": cldice(vessels, truth),
                      "comp_raw": n_components(raw), "comp_enh": n_components(vessels),
                      "comp_truth": n_components(truth)}
        ref = Reference(vessels, ph.vessel_tree, ph.spacing)
        t = time.perf_counter()
        split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=params, **support)
        seconds = time.perf_counter() - t
        row = {"seed": seed, "condition": condition, "mask": source,
               "protocol": {"pixel_mm": round(p.pixel_mm, 3), "slice_mm": round(p.slice_mm, 3),
                            "noise_hu": round(p.noise_hu, 1),
                            "portal_minus_hepatic_hu": round(p.portal_hu - p.hepatic_hu, 1)},
               "branches": int(ref.known.sum()), "split_seconds": round(seconds, 2), "repair": repair,
               "confidence": split.qc["confidence"], "flags": split.qc["flags"],
               "intensity": split.qc.get("intensity"), "missing_tree_regions": split.qc.get("missing_tree_regions")}
        row["graph split"] = ref.score(split.labels, confidence_map(split))
        row["nearest seed"] = ref.score(nearest_seed_labels(vessels, ph.spacing, support, ph.affine))
        rows.append(row)
        print(f"seed {seed} {condition:11s} {source:8s} branches {row['branches']:5d}  graph split "
              f"{row['graph split']['branch_accuracy']:.3f} (confidence {row['confidence']:.3f})  nearest seed "
              f"{row['nearest seed']['branch_accuracy']:.3f}  split {seconds:.1f} s", flush=True)
    return rows


def evaluate_seed(seed: int, conditions, masks, params: SplitParams) -> list[dict]:
    """Every condition of one seed (one worker: the seed's trees are built once)."""
    return [row for cond in conditions for row in evaluate(seed, cond, masks, params)]


def table(rows: list[dict]) -> list[str]:
    """Mean (SE) per condition, mask and method; calibration of the graph split."""
    head = (f"{'condition':12s} {'mask':8s} {'method':13s} {'branch acc':>11s} {'SE':>6s} {'worst':>6s} "
            f"{'voxel acc':>9s} {'Dice P':>7s} {'Dice H':>7s} {'confidence':>10s} {'|conf-acc|':>10s} {'ECE':>6s}")
    lines = [head, "-" * len(head)]
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["condition"], r["mask"]), []).append(r)
    for (cond, mask), rs in groups.items():
        for method in METHODS:
            acc = [r[method]["branch_accuracy"] for r in rs]
            m, se = mean_se(acc)
            extra = ""
            if method == "graph split":
                conf = [r["confidence"] for r in rs]
                gap = np.mean([abs(c - a) for c, a in zip(conf, acc)])
                bc = sum((r[method].get("branch_confidence", []) for r in rs), [])
                br = sum((r[method].get("branch_right", []) for r in rs), [])
                extra = f" {np.mean(conf):10.3f} {gap:10.3f} {calibration_error(bc, br):6.3f}"
            lines.append(f"{cond:12s} {mask:8s} {method:13s} {m:11.3f} {se:6.3f} {min(acc):6.3f} "
                         f"{np.mean([r[method]['voxel_accuracy'] for r in rs]):9.3f} "
                         f"{np.mean([r[method]['dice_portal'] for r in rs]):7.3f} "
                         f"{np.mean([r[method]['dice_hepatic'] for r in rs]):7.3f}" + extra)
    return lines


def reliability_lines(rows: list[dict]) -> list[str]:
    lines = []
    for mask in MASKS:
        rs = [r for r in rows if r["mask"] == mask]
        if not rs:
            continue
        bc = sum((r["graph split"].get("branch_confidence", []) for r in rs), [])
        br = sum((r["graph split"].get("branch_right", []) for r in rs), [])
        lines.append(f"reliability of the per-branch confidence, {mask} masks, all conditions "
                     f"({len(bc)} branches; ECE {calibration_error(bc, br):.3f}):")
        lines.append(f"  {'confidence':>12s} {'branches':>9s} {'mean conf':>10s} {'accuracy':>9s}")
        for b in reliability(bc, br):
            if b["branches"]:
                lines.append(f"  {b['bin']:>12s} {b['branches']:9d} {b['mean_confidence']:10.3f} {b['accuracy']:9.3f}")
    return lines


def add_phantom_arguments(ap: argparse.ArgumentParser) -> None:
    """--set / --seeds / --conditions / --jobs, shared with bench/repair_realistic.py."""
    ap.add_argument("--set", choices=list(SEED_SETS), default="validation")
    ap.add_argument("--seeds", type=int, nargs="+", help="instead of --set")
    ap.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one seed each (0: one per core)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_phantom_arguments(ap)
    ap.add_argument("--masks", nargs="+", default=list(MASKS), choices=list(MASKS))
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="override a SplitParams field (repeatable)")
    ap.add_argument("--json", help="default: bench/results/split_realistic_<set>.json")
    ap.add_argument("--from-json", metavar="JSON", nargs="+", help="reprint the tables of earlier runs (rows merged)")
    args = ap.parse_args()
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(Path(f).read_text())["rows"]]
        print("\n".join(table(rows) + [""] + reliability_lines(rows)))
        return
    params, overrides = split_params_from(args.param, ap.error)
    seeds = args.seeds or SEED_SETS[args.set]
    per_seed = run_cases(evaluate_seed, [(s, args.conditions, args.masks, params) for s in seeds], args.jobs)
    rows = sorted((r for rs in per_seed for r in rs),
                  key=lambda r: (list(CONDITIONS).index(r["condition"]), MASKS.index(r["mask"]), r["seed"]))
    lines = table(rows) + [""] + reliability_lines(rows)
    print(f"\nseeds {seeds[0]}..{seeds[-1]} ({len(seeds)} phantoms); targets: branch accuracy >= 0.95 (truth), "
          ">= 0.90 (network + repair); |confidence - accuracy| <= 0.05")
    print("\n".join(lines))
    set_name = args.set if not args.seeds else "custom"
    out = Path(args.json or ROOT / "bench" / "results" / f"split_realistic_{set_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    # compact: the rows carry every branch's confidence and right / wrong (for the reliability table)
    out.write_text(json.dumps({"seeds": seeds, "params": overrides, "provenance": provenance(), "rows": rows},
                              separators=(",", ":")))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
