"""Vessel-derived Couinaud segments on the realistic phantom family: Dice and volume error per segment.

    .venv/bin/python bench/couinaud_realistic.py --set final              # seeds 3000-3019, reported
    .venv/bin/python bench/couinaud_realistic.py --set tuning --masks truth
    .venv/bin/python bench/couinaud_realistic.py --from-json bench/results/couinaud_realistic_final.json

Phantoms: livervessels.synthetic.realistic, condition normal. Truth: the Couinaud plane model on the
phantom's own landmarks (livervessels.synthetic.couinaud_truth: the IVC axis, the bifurcation, the
main hepatic veins with their tributaries, the end of the left portal vein's thick part). The phantom
does not model the umbilical fissure well (its left portal vein is cut short at the hilum in most
livers), so segments III and IV are scored together as the left anterior sector ("3+4"); the method
still labels them apart.

Inputs to the method (livervessels.couinaud.couinaud_segments), all with the phantom's liver, IVC and
extrahepatic portal vein masks:
- truth: the phantom's portal and hepatic vein labels;
- split: the split (split_portal_hepatic) of the true vessel mask;
- network: the split of a network-like mask after the repair, as the app runs.
Baseline ("atlas"): the same plane model with the tuning seeds' mean vein azimuths, about the
patient's own IVC axis and bifurcation (what an average liver would give without looking at its veins).
Metrics: Dice per segment, |volume error| in % of the true segment volume, mean and standard error
over the phantoms a method did not refuse; refusals counted. Targets (issue 19): mean Dice >= 0.85,
volume error <= 10 % per segment. Prints tables and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from parallel import run_cases  # noqa: E402
from results_provenance import provenance  # noqa: E402

SEED_SETS = {"tuning": list(range(1000, 1010)), "validation": list(range(2000, 2020)),
             "final": list(range(3000, 3020))}
SCORED = ("1", "2", "3+4", "5", "6", "7", "8")
MASKS = ("truth", "split", "network")


def atlas_azimuths(seeds: list[int]) -> dict[str, float]:
    """Mean vein and umbilical azimuths of the phantoms' true landmarks (trees only, no rendering)."""
    from livervessels.synthetic.couinaud_truth import landmarks_of
    from livervessels.synthetic.realistic import realistic_trees

    keys = ("right_hv_deg", "middle_hv_deg", "left_hv_deg", "umbilical_deg")
    values = {k: [] for k in keys}
    for seed in seeds:
        portal, hepatic, anat, _ = realistic_trees(seed)
        lm = landmarks_of(anat, portal, hepatic)
        for k in keys:
            values[k].append(getattr(lm, k))
    return {k: float(np.mean(v)) for k, v in values.items()}


def _merged(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[out == 4] = 3
    return out


def score(labels: np.ndarray, truth: np.ndarray, voxel_ml: float) -> dict:
    a, t = _merged(labels), _merged(truth)
    out = {}
    for name, s in zip(SCORED, (1, 2, 3, 5, 6, 7, 8)):
        pa, pt = a == s, t == s
        vt = float(pt.sum())
        out[name] = {"dice": float(2.0 * (pa & pt).sum() / max(pa.sum() + pt.sum(), 1)),
                     "volume_error_pct": float(100.0 * abs(float(pa.sum()) - vt) / vt) if vt else None,
                     "true_ml": round(vt * voxel_ml, 1)}
    return out


def evaluate_seed(seed: int, masks, atlas: dict) -> list[dict]:
    from livervessels.couinaud import couinaud_segments, find_landmarks, segments_from_landmarks
    from livervessels.enhancement import repair_vessel_mask
    from livervessels.portal_hepatic import HEPATIC, PORTAL, split_portal_hepatic
    from livervessels.synthetic.couinaud_truth import true_segments
    from livervessels.synthetic.network_mask import simulate_network_mask
    from livervessels.synthetic.realistic import make_realistic_phantom

    ph = make_realistic_phantom(seed, "normal")
    support = ph.support()
    truth = true_segments(ph)
    voxel_ml = float(np.prod(ph.spacing)) / 1000.0
    rows = []
    for source in masks:
        confidence = None
        if source == "truth":
            portal, hepatic = ph.vessel_tree == PORTAL, ph.vessel_tree == HEPATIC
        else:
            vessels = ph.vessel_mask
            if source == "network":
                raw = simulate_network_mask(ph, seed)
                vessels = repair_vessel_mask(raw, support["liver"], ph.ct, ph.spacing,
                                             exclude=support["ivc"] | support["portal_vein"])[0] > 0
            split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, **support)
            portal, hepatic = split.labels == PORTAL, split.labels == HEPATIC
            confidence = float(split.qc["confidence"]["overall"]) if isinstance(split.qc["confidence"], dict) \
                else float(split.qc["confidence"])
        t0 = time.perf_counter()
        result = couinaud_segments(support["liver"], portal, hepatic, support["ivc"], ph.affine,
                                   portal_trunk=support["portal_vein"], split_confidence=confidence)
        seconds = time.perf_counter() - t0
        row = {"seed": seed, "mask": source, "split_confidence": confidence, "seconds": round(seconds, 2),
               "refused": result.refused, "landmarks": result.landmarks.as_qc() if result.landmarks else None}
        if result.labels is not None:
            row["vessels"] = score(result.labels, truth, voxel_ml)
        # the atlas baseline: the patient's IVC axis and bifurcation, average vein azimuths
        lm, _ = find_landmarks(support["liver"], portal, hepatic, support["ivc"], ph.affine, support["portal_vein"])
        if lm is not None:
            row["atlas"] = score(segments_from_landmarks(support["liver"], ph.affine, replace(lm, **atlas)), truth,
                                 voxel_ml)
        rows.append(row)
        mean = np.mean([v["dice"] for v in row["vessels"].values()]) if "vessels" in row else float("nan")
        print(f"seed {seed} {source:8s} mean Dice {mean:.3f}  {'refused: ' + result.refused if result.refused else ''}"
              f"  {seconds:.1f} s", flush=True)
    return rows


def mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None], float)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def table(rows: list[dict]) -> list[str]:
    lines = [f"{'mask':8s} {'method':8s} {'metric':9s} {'n':>3s} {'refused':>7s} "
             + " ".join(f"{s:>13s}" for s in SCORED) + f" {'mean':>13s}"]
    for mask in MASKS:
        rs = [r for r in rows if r["mask"] == mask]
        if not rs:
            continue
        for method in ("vessels", "atlas"):
            ok = [r for r in rs if method in r]
            refused = sum(1 for r in rs if method not in r)
            for metric, label in (("dice", "Dice"), ("volume_error_pct", "vol err %")):
                cells = [mean_se([r[method][s][metric] for r in ok]) for s in SCORED]
                per_case = [np.mean([r[method][s][metric] for s in SCORED if r[method][s][metric] is not None])
                            for r in ok]
                m = mean_se(per_case)
                lines.append(f"{mask:8s} {method:8s} {label:9s} {len(ok):3d} {refused:7d} "
                             + " ".join(f"{c[0]:6.2f} ± {c[1]:4.2f}" for c in cells) + f" {m[0]:6.2f} ± {m[1]:4.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SEED_SETS), default="final")
    ap.add_argument("--seeds", type=int, nargs="+", help="instead of --set")
    ap.add_argument("--masks", nargs="+", choices=MASKS, default=list(MASKS))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="JSON path (default bench/results/couinaud_realistic_<set>.json)")
    ap.add_argument("--from-json", help="print the tables of an earlier run's JSON instead of running")
    args = ap.parse_args()
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        print(f"seeds {data['seeds'][0]}..{data['seeds'][-1]}; atlas {data['atlas']}")
        for line in table(data["rows"]):
            print(line)
        return
    seeds = args.seeds or SEED_SETS[args.set]
    atlas = atlas_azimuths(SEED_SETS["tuning"])
    print("atlas azimuths (tuning seeds' mean):", {k: round(v, 1) for k, v in atlas.items()})
    rows = [r for rs in run_cases(evaluate_seed, [(s, args.masks, atlas) for s in seeds], args.jobs) for r in rs]
    print(f"\nCouinaud segments, seeds {seeds[0]}..{seeds[-1]} ({len(seeds)} phantoms, normal condition); "
          "mean ± standard error; 3+4 scored together (see the docstring)")
    for line in table(rows):
        print(line)
    name = args.set if not args.seeds else "custom"
    out = Path(args.out or ROOT / "bench" / "results" / f"couinaud_realistic_{name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seeds": seeds, "atlas": atlas, "provenance": provenance(), "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
