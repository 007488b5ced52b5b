"""Fit the split's confidence model on tuning phantoms of both families (synthetic data only).

    # the shipped fit: four stores filled by two processes at a time (~15 min each pair on 2 cores), then fitted
    .venv/bin/python bench/fit_split_confidence.py --store build/conf_ref_a.npz --realistic-seeds 1000 1001 \
        --first-seeds 200 201 202 203 204 --json build/fit_a.json &
    .venv/bin/python bench/fit_split_confidence.py --store build/conf_ref_b.npz --realistic-seeds 1005 1006 \
        --first-seeds 205 206 207 208 209 --json build/fit_b.json
    .venv/bin/python bench/fit_split_confidence.py --store build/conf_ref_c.npz --realistic-seeds 1002 1003 1004 \
        --first-seeds --json build/fit_c.json &
    .venv/bin/python bench/fit_split_confidence.py --store build/conf_ref_d.npz --realistic-seeds 1007 1008 1009 \
        --first-seeds --json build/fit_d.json
    .venv/bin/python bench/fit_split_confidence.py --fit-only --store build/conf_ref_a.npz \
        --store build/conf_ref_b.npz --store build/conf_ref_c.npz --store build/conf_ref_d.npz

For every branch of the benchmarks' reference skeleton of the mask (bench/split_scoring.py: the
unit the benchmarks score and the confidence must predict) on tuning phantoms, the evidence behind
the split's label there (that of the split branch covering most of it: the path-cost margin, the
intensity log-odds for its label, its radius, ...) and whether the label is right (the phantom's
majority on the branch); branches with no true vessel voxel (false-positive blobs) are left out.
A logistic model is fitted, then a monotone recalibration of its output (isotonic, 12 bins).
Phantoms: realistic family seeds 1000-1009 under the normal, hard and equilibrium
conditions with the true mask and with a network-like mask after the repair; first family seeds
200-209 (touching vessels: truth on both grids, 15 gaps, network-like; pass-through truth). Each
phantom weighs the same (its branches share one unit of weight), so the dense livers do not drown
the sparse ones. Prints the fitted weights and the reliability of the fit data, writes the weights
to bench/results/split_confidence_fit.json (copy them into livervessels/split_confidence.py
DEFAULT_MODEL); every case is stored as it finishes (an .npz, --store), for resuming and refitting.
"""
from __future__ import annotations

import argparse
import dataclasses
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
from livervessels.split_confidence import DEFAULT_MODEL, EVIDENCE, FEATURES, fit_confidence_model, fit_recalibration  # noqa: E402
from livervessels.synthetic.network_mask import simulate_network_mask  # noqa: E402
from livervessels.synthetic.realistic import make_realistic_phantom  # noqa: E402

from split_scoring import reliability  # noqa: E402

REALISTIC_SEEDS = list(range(1000, 1010))
FIRST_FAMILY_SEEDS = list(range(200, 210))


def branch_index_map(split) -> np.ndarray:
    """Per vessel voxel of the split: index + 1 of the split's branch nearest along the mask (0: none)."""
    from scipy import ndimage

    br = split.branches
    index = np.zeros(split.labels.shape, np.int32)
    for b in br.graph.branches:
        index[tuple(br.input_voxels(b.index).T)] = b.index + 1
    if not index.any():
        return index
    _, nearest = ndimage.distance_transform_edt(index == 0, return_indices=True)
    return np.where(split.labels > 0, index[tuple(nearest)], 0)


def reference_rows(split, vessels: np.ndarray, truth_tree: np.ndarray, spacing) -> dict:
    """Evidence and right/wrong per branch of the benchmarks' reference skeleton (split_scoring):
    the unit the benchmarks score and the confidence must predict. Each reference branch takes the
    evidence of the split branch covering most of it; its label is the majority of the split's labels
    on it. Also the evidence of every split branch with its length (to recompute the case's overall
    confidence) and the case's reference branch accuracy."""
    from split_scoring import Reference, branch_majority

    br = split.branches
    if br is None or br.evidence is None or not len(br.labels):
        return {}
    ref = Reference(vessels, truth_tree, spacing)
    index = branch_index_map(split)
    right = (branch_majority(ref.graph, split.labels) == ref.true_branch)[ref.known]
    owner = np.array([np.bincount(index[tuple(b.voxels.T)], minlength=1)[1:].argmax() if index[tuple(b.voxels.T)].any()
                      else -1 for b in ref.graph.branches])[ref.known]
    ok = owner >= 0
    rows = {k: np.asarray(br.evidence[k])[owner[ok]] for k in EVIDENCE}
    labelled = br.labels > 0
    return {**rows, "right": right[ok],
            "split_evidence": {k: np.asarray(br.evidence[k])[labelled] for k in EVIDENCE},
            "split_length_mm": np.array([b.length_mm for b in br.graph.branches])[labelled],
            "reference_accuracy": float(right.mean()) if len(right) else float("nan")}


def collect(realistic_seeds, first_seeds, store: Path) -> list[dict]:
    """Run the phantoms (appending each case to `store` as it finishes, so a run can resume)."""
    cases = list(np.load(store, allow_pickle=True)["cases"]) if store.exists() else []
    done = {c["case"] for c in cases}

    def keep(case: dict) -> None:
        cases.append(case)
        np.savez_compressed(store, cases=np.array(cases, dtype=object))

    params = SplitParams()
    for seed in realistic_seeds:
        for condition in ("normal", "hard", "equilibrium"):
            if all(f"realistic {seed} {condition} {s}" in done for s in ("truth", "network")):
                continue
            ph = make_realistic_phantom(seed, condition)
            support = ph.support()
            for source in ("truth", "network"):
                name = f"realistic {seed} {condition} {source}"
                if name in done:
                    continue
                if source == "truth":
                    vessels = ph.vessel_mask
                else:
                    raw = simulate_network_mask(ph, seed)
                    vessels = repair_vessel_mask(raw, support["liver"], ph.ct, ph.spacing,
                                                 exclude=support["ivc"] | support["portal_vein"])[0] > 0
                t = time.perf_counter()
                split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=params, **support)
                rows = reference_rows(split, vessels, ph.vessel_tree, ph.spacing)
                keep({"case": name, **rows})
                print(f"{name}: {len(rows.get('right', []))} branches, {np.mean(rows['right']):.3f} right "
                      f"({time.perf_counter() - t:.1f} s)", flush=True)
    import split_accuracy as first  # the first family's cases, as its benchmark builds them

    from livervessels.synthetic.phantom import make_phantom
    for seed in first_seeds:
        for case in (0, 1, 2, 3, 4):
            label, grid, clearance, source = first.CASES[case]
            name = f"first {seed} {label}"
            if name in done:
                continue
            ph = make_phantom(seed=seed, vessel_clearance_mm=clearance, **first.GRIDS[grid])
            vessels, support = first.vessel_mask(ph, source, seed)
            split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=params, **support)
            rows = reference_rows(split, vessels, ph.vessel_tree, ph.spacing)
            keep({"case": name, **rows})
            print(f"{name}: {len(rows.get('right', []))} branches, {np.mean(rows['right']):.3f} right", flush=True)
    return cases


def case_confidence_errors(model, cases) -> dict[str, list[float]]:
    """|overall confidence - reference branch accuracy| per phantom, by family; the overall
    confidence as the split reports it (the mean over its own branches)."""
    out: dict[str, list[float]] = {}
    for c in cases:
        if "split_evidence" not in c:
            continue
        overall = float(np.mean(model(c["split_evidence"])))
        out.setdefault(c["case"].split()[0], []).append(abs(overall - c["reference_accuracy"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", action="append",
                    help="case store(s) (.npz): collected into (the first; resumes) and fitted on (all); "
                         "default bench/results/split_confidence_data.npz")
    ap.add_argument("--realistic-seeds", type=int, nargs="*", default=REALISTIC_SEEDS)
    ap.add_argument("--first-seeds", type=int, nargs="*", default=FIRST_FAMILY_SEEDS)
    ap.add_argument("--fit-only", action="store_true", help="fit on the stores without running phantoms")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_confidence_fit.json"))
    args = ap.parse_args()
    stores = [Path(s) for s in (args.store or [ROOT / "bench" / "results" / "split_confidence_data.npz"])]
    if not args.fit_only:
        stores[0].parent.mkdir(parents=True, exist_ok=True)
        collect(args.realistic_seeds, args.first_seeds, stores[0])
    cases = [c for st in stores for c in np.load(st, allow_pickle=True)["cases"] if len(c.get("right", []))]
    model0 = DEFAULT_MODEL
    evidence = [{k: c[k] for k in EVIDENCE if k in c} for c in cases]
    x = np.vstack([model0.features(e) for e in evidence])
    y = np.concatenate([c["right"] for c in cases])
    # every phantom weighs the same: resample each case's branches to a common count
    per_case = 400
    rng = np.random.default_rng(0)
    idx, start = [], 0
    for c in cases:
        n = len(c["right"])
        idx.append(start + rng.choice(n, per_case, replace=n < per_case))
        start += n
    idx = np.concatenate(idx)
    model = fit_confidence_model(x[idx], y[idx], margin_scale=model0.margin_scale)
    # the monotone recalibration, each phantom weighing the same again
    case_weight = np.concatenate([np.full(len(c["right"]), 1.0 / len(c["right"])) for c in cases])
    logistic = np.concatenate([model.logistic(e) for e in evidence])
    model = dataclasses.replace(model, recalibration=fit_recalibration(logistic, y, case_weight))
    p = np.concatenate([model(e) for e in evidence])
    print(f"\nfitted on {len(cases)} phantoms, {len(y)} branches ({(~y).sum()} wrong)")
    print("weights:", {k: round(float(v), 4) for k, v in zip(FEATURES, model.weights)})
    print("recalibration knots:", model.recalibration)
    case_error = case_confidence_errors(model, cases)
    for family, errors in case_error.items():
        print(f"{family}: mean |overall confidence - reference branch accuracy| {np.mean(errors):.4f} "
              f"over {len(errors)} phantoms (in-sample)")
    print(f"{'confidence':>12s} {'branches':>9s} {'mean conf':>10s} {'accuracy':>9s}")
    for b in reliability(p, y):
        if b["branches"]:
            print(f"{b['bin']:>12s} {b['branches']:9d} {b['mean_confidence']:10.3f} {b['accuracy']:9.3f}")
    Path(args.json).write_text(json.dumps({"features": FEATURES, "weights": list(model.weights),
                                           "recalibration": model.recalibration,
                                           "case_error_in_sample": {k: float(np.mean(v))
                                                                    for k, v in case_error.items()},
                                           "margin_scale": model.margin_scale, "phantoms": len(cases),
                                           "branches": int(len(y)), "wrong": int((~y).sum())}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
