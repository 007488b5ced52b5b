"""Vessel repair (repair_vessel_mask) on the realistic phantom family: never worse than the raw mask?

    .venv/bin/python bench/repair_realistic.py --set validation      # seeds 2000-2019
    .venv/bin/python bench/repair_realistic.py --set final           # seeds 3000-3019, the reported run
    .venv/bin/python bench/repair_realistic.py --from-json bench/results/repair_realistic_final.json
    .venv/bin/python bench/repair_realistic.py --from-split-json bench/results/split_realistic_final.json

For each seed and condition (livervessels.synthetic.realistic CONDITIONS: normal, hard,
equilibrium), the raw mask is a network-like mask (livervessels.synthetic.network_mask: branches
missed by their detectability on that scan, gaps, false bridges, blobs, boundary errors) and the
repaired mask is repair_vessel_mask(raw, liver, ct, spacing). Dice and centerline Dice (clDice)
against the true vessel mask, raw and repaired, mean and standard error over the phantoms, the
worst change of any phantom, components, and how often the repair backed off (the scan too noisy
or its slices too thick to tell thin vessels from noise). Seed sets as in bench/split_realistic.py.
Prints a table and writes JSON.
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
from livervessels.synthetic.metrics import cldice, dice, n_components  # noqa: E402
from livervessels.synthetic.network_mask import simulate_network_mask  # noqa: E402
from livervessels.synthetic.realistic import make_realistic_phantom  # noqa: E402

from parallel import run_cases  # noqa: E402
from split_realistic import SEED_SETS, add_phantom_arguments  # noqa: E402
from split_scoring import mean_se  # noqa: E402


def evaluate(seed: int, condition: str) -> dict:
    ph = make_realistic_phantom(seed, condition)
    truth = ph.vessel_mask
    raw = simulate_network_mask(ph, seed)
    t = time.perf_counter()
    support = ph.support()
    enhanced, meta = repair_vessel_mask(raw, support["liver"], ph.ct, ph.spacing,
                                        exclude=support["ivc"] | support["portal_vein"])
    seconds = time.perf_counter() - t
    enhanced = enhanced > 0
    p = ph.protocol
    row = {"seed": seed, "condition": condition, "slice_mm": round(p.slice_mm, 2), "noise_hu": round(p.noise_hu, 1),
           "dice_raw": dice(raw, truth), "dice_enh": dice(enhanced, truth),
           "cldice_raw": cldice(raw, truth), "cldice_enh": cldice(enhanced, truth),
           "comp_raw": n_components(raw), "comp_enh": n_components(enhanced), "comp_truth": n_components(truth),
           "backed_off": meta.get("backed_off"), "seconds": round(seconds, 2)}
    print(f"seed {seed} {condition:11s} slice {row['slice_mm']:.1f} noise {row['noise_hu']:4.1f}  Dice "
          f"{row['dice_raw']:.3f} -> {row['dice_enh']:.3f}  clDice {row['cldice_raw']:.3f} -> {row['cldice_enh']:.3f}"
          f"  components {row['comp_raw']} -> {row['comp_enh']}  {seconds:.1f} s"
          + (f"  backed off: {row['backed_off']}" if row["backed_off"] else ""), flush=True)
    return row


def evaluate_seed(seed: int, conditions) -> list[dict]:
    """Every condition of one seed (one worker: the seed's trees are built once)."""
    return [evaluate(seed, cond) for cond in conditions]


def table(rows: list[dict]) -> list[str]:
    head = (f"{'condition':12s} {'phantoms':>8s} {'Dice raw':>9s} {'Dice repaired':>14s} {'worst dDice':>11s} "
            f"{'clDice raw':>10s} {'clDice repaired':>16s} {'worst dclDice':>13s} {'components':>16s} "
            f"{'backed off':>10s}")
    lines = [head, "-" * len(head)]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        rs = [r for r in rows if r["condition"] == cond]
        d_raw, d_raw_se = mean_se([r["dice_raw"] for r in rs])
        d_enh, d_enh_se = mean_se([r["dice_enh"] for r in rs])
        c_raw, c_raw_se = mean_se([r["cldice_raw"] for r in rs])
        c_enh, c_enh_se = mean_se([r["cldice_enh"] for r in rs])
        worst_d = min(r["dice_enh"] - r["dice_raw"] for r in rs)
        worst_c = min(r["cldice_enh"] - r["cldice_raw"] for r in rs)
        comps = f"{np.mean([r['comp_raw'] for r in rs]):.0f} -> {np.mean([r['comp_enh'] for r in rs]):.0f}"
        backed = sum(bool(r["backed_off"]) for r in rs)
        lines.append(f"{cond:12s} {len(rs):8d} {d_raw:6.3f}±{d_raw_se:.3f} {d_enh:10.3f}±{d_enh_se:.3f} "
                     f"{worst_d:+11.3f} "
                     f"{c_raw:6.3f}±{c_raw_se:.3f} {c_enh:12.3f}±{c_enh_se:.3f} {worst_c:+13.3f} {comps:>16s} "
                     f"{backed:>6d}/{len(rs)}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_phantom_arguments(ap)
    ap.add_argument("--json", help="default: bench/results/repair_realistic_<set>.json")
    ap.add_argument("--from-json", metavar="JSON", help="reprint the table of an earlier run")
    ap.add_argument("--from-split-json", metavar="JSON",
                    help="the table from a bench/split_realistic.py run (its network rows ran the same repair)")
    args = ap.parse_args()
    if args.from_json:
        print("\n".join(table(json.loads(Path(args.from_json).read_text())["rows"])))
        return
    if args.from_split_json:
        rows = [{"seed": r["seed"], "condition": r["condition"], **r["repair"]}
                for r in json.loads(Path(args.from_split_json).read_text())["rows"] if r.get("repair")]
        print("\n".join(table(rows)))
        return
    seeds = args.seeds or SEED_SETS[args.set]
    per_seed = run_cases(evaluate_seed, [(s, args.conditions) for s in seeds], args.jobs)
    rows = sorted((r for rs in per_seed for r in rs), key=lambda r: (args.conditions.index(r["condition"]), r["seed"]))
    print(f"\nseeds {seeds[0]}..{seeds[-1]} ({len(seeds)} phantoms); targets: repaired >= raw - 0.005 (Dice and "
          "clDice) on every condition, clDice +0.10 on normal")
    print("\n".join(table(rows)))
    set_name = args.set if not args.seeds else "custom"
    out = Path(args.json or ROOT / "bench" / "results" / f"repair_realistic_{set_name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": seeds, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
