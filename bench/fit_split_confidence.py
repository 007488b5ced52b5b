"""Fit the split's confidence model on tuning phantoms of both families (synthetic data only).

    .venv/bin/python bench/fit_split_confidence.py --realistic-seeds 1000 1001 1005 1006   # the shipped fit, ~30 min
    .venv/bin/python bench/fit_split_confidence.py            # all tuning seeds, about 60 min (resumable)
    .venv/bin/python bench/fit_split_confidence.py --fit-only  # refit on the stored cases

For every branch of the split's own graph on tuning phantoms, the evidence behind its label (the
path-cost margin, the intensity log-odds for its label, its radius) and whether the label is right
(the phantom's majority on the branch); branches with no true vessel voxel (false-positive blobs)
are left out. Phantoms: realistic family seeds 1000-1009 under the normal, hard and equilibrium
conditions with the true mask and with a network-like mask after the repair; first family seeds
200-209 (touching vessels: truth on both grids, 15 gaps, network-like; pass-through truth). Each
phantom weighs the same (its branches share one unit of weight), so the dense livers do not drown
the sparse ones. Prints the fitted weights and the reliability of the fit data, writes the weights
to bench/results/split_confidence_fit.json (copy them into livervessels/split_confidence.py
DEFAULT_MODEL); every case is stored as it finishes (an .npz, --store), for resuming and refitting.
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

from livervessels.enhancement import enhance_liver_vessels  # noqa: E402
from livervessels.portal_hepatic import SplitParams, split_portal_hepatic  # noqa: E402
from livervessels.split_confidence import DEFAULT_MODEL, EVIDENCE, FEATURES, fit_confidence_model  # noqa: E402
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
                    vessels = enhance_liver_vessels(raw, support["liver"], ph.ct, ph.spacing,
                                                    exclude=support["ivc"] | support["portal_vein"])[0] > 0
                t = time.perf_counter()
                split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=params, **support)
                rows = reference_rows(split, vessels, ph.vessel_tree, ph.spacing)
                keep({"case": name, **rows})
                print(f"{name}: {len(rows.get('right', []))} branches, {np.mean(rows['right']):.3f} right "
                      f"({time.perf_counter() - t:.1f} s)", flush=True)
    import split_accuracy as first  # the first family's cases, as its benchmark builds them
    from livervessels.phantom import make_phantom
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
    p = np.concatenate([model(e) for e in evidence])
    print(f"\nfitted on {len(cases)} phantoms, {len(y)} branches ({(~y).sum()} wrong)")
    print("weights:", dict(zip(FEATURES, np.round(model.weights, 4))))
    print(f"{'confidence':>12s} {'branches':>9s} {'mean conf':>10s} {'accuracy':>9s}")
    for b in reliability(p, y):
        if b["branches"]:
            print(f"{b['bin']:>12s} {b['branches']:9d} {b['mean_confidence']:10.3f} {b['accuracy']:9.3f}")
    Path(args.json).write_text(json.dumps({"features": FEATURES, "weights": list(model.weights),
                                           "margin_scale": model.margin_scale, "phantoms": len(cases),
                                           "branches": int(len(y)), "wrong": int((~y).sum())}, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
