"""Run time of the portal / hepatic vein split on full-size inputs, step by step, and how it grows.

    .venv/bin/python bench/split_speed.py [--repeats 3] [--no-growth] [--json bench/results/split_speed.json]

Inputs (512 x 512 x 300 voxels at 0.8 x 0.8 x 1.5 mm, i.e. a thin-slice CT grid):
- phantom: make_phantom(seed=1) ground-truth vessels (labels == liver_vessels) with its liver, IVC
  and portal/splenic vein, a typical liver vessel tree;
- noisy network mask: bench/large_cases.py large_noisy_case(), a network-like mask made worse
  (gaps, false-positive blobs, noise speckles; ~280 components), with the case's affine.
Times (median of the repeats, this machine's CPUs; wall and process CPU): skeletonisation, the
centerline graph, and the whole split with its internal steps (qc["timings_s"] of the last run),
for the graph split and the voxel-geodesic fallback.

Growth (unless --no-growth): the graph split on denser masks of the same grid, one run each: the
noisy mask tiled (the union with 1 or 2 copies of itself shifted by 16 voxels in-plane, kept inside
the liver: several times the branches and junctions, and large junction blobs where copies
overlap), and, when livervessels.synthetic.realistic is present, a realistic phantom's
ground-truth tree (make_realistic_phantom(seed=1) on this grid). Reported per case: components,
branches, seconds and milliseconds per branch. Prints tables and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cc3d
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.portal_hepatic import split_portal_hepatic  # noqa: E402
from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.vessel_graph import build_vessel_graph, skeletonize_mask  # noqa: E402

from large_cases import large_noisy_case  # noqa: E402

BUDGET_S = 5.0
SHAPE, SPACING = (512, 512, 300), (0.8, 0.8, 1.5)
TILE_SHIFTS = [(16, 0, 0), (0, 16, 0)]  # voxels


def timed(fn, repeats: int):
    """(median wall seconds, median process CPU seconds, the last result)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), out


def phantom_case() -> dict:
    ph = make_phantom(seed=1, shape=SHAPE, spacing=SPACING)
    vessels = ph.labels == LABELS["liver_vessels"]
    return {"name": "phantom seed 1, ground truth", "vessels": vessels, "ct": ph.ct, "spacing": ph.spacing,
            "truth": ph.vessel_tree, "affine": None,
            "support": {"liver": ph.labels == LABELS["liver"], "ivc": ph.labels == LABELS["inferior_vena_cava"],
                        "portal_vein": ph.labels == LABELS["portal_vein_and_splenic_vein"]}}


def noisy_case() -> dict:
    c = large_noisy_case()
    return {"name": "noisy network mask (large_noisy_case)", "vessels": c.vessels, "ct": c.ct,
            "spacing": c.spacing, "truth": c.truth, "affine": c.affine,
            "support": {"liver": c.liver, "ivc": c.ivc, "portal_vein": c.portal_vein}}


def tiled(case: dict, copies: int) -> dict:
    """The case's mask united with `copies` shifted copies of itself, inside the liver."""
    v = case["vessels"].copy()
    for shift in TILE_SHIFTS[:copies]:
        v |= np.roll(case["vessels"], shift, axis=(0, 1, 2)) & case["support"]["liver"]
    return dict(case, name=f"noisy mask + {copies} shifted cop{'y' if copies == 1 else 'ies'}", vessels=v)


def realistic_case() -> dict | None:
    try:
        from livervessels.synthetic.realistic import ScanProtocol, make_realistic_phantom
    except ImportError:
        return None
    ph = make_realistic_phantom(1, protocol=ScanProtocol(pixel_mm=SPACING[0], slice_mm=SPACING[2], shape=SHAPE))
    return {"name": "realistic phantom seed 1, ground truth", "vessels": ph.vessel_mask, "ct": ph.ct,
            "spacing": ph.spacing, "truth": ph.vessel_tree, "affine": ph.affine, "support": ph.support()}


def split(case: dict, **kw):
    return split_portal_hepatic(case["vessels"], case["ct"], case["spacing"], affine=case["affine"],
                                **case["support"], **kw)


def bench_case(case: dict, repeats: int) -> dict:
    vessels = case["vessels"]
    rows = []  # (step, wall s, CPU s or None, note)
    t, c, skel = timed(lambda: skeletonize_mask(vessels), repeats)
    rows.append(("skeletonize (Lee 3D, bounding box)", t, c, f"{int(skel.sum())} centerline voxels"))
    t, c, graph = timed(lambda: build_vessel_graph(vessels, case["spacing"], case["ct"]), repeats)
    rows.append(("build_vessel_graph (incl. skeleton)", t, c,
                 f"{len(graph.branches)} branches, {len(graph.nodes)} nodes"))
    t, c, result = timed(lambda: split(case), repeats)
    for step, s in result.qc["timings_s"].items():
        if step != "total":
            rows.append((f"  split step: {step}", s, None, "last run"))
    rows.append(("split_portal_hepatic (graph)", t, c, f"confidence {result.qc['confidence']}, "
                 f"{result.qc['branches']} branches (working grid)"))
    t_geo, c_geo, geo = timed(lambda: split(case, use_skeleton=False), repeats)
    rows.append(("split_portal_hepatic (--no_skeleton)", t_geo, c_geo, f"confidence {geo.qc['confidence']}"))
    scored = vessels & (case["truth"] > 0)  # a false-positive voxel has no right label
    accuracy = float((result.labels[scored] == case["truth"][scored]).mean())
    return {"case": case["name"], "vessel_voxels": int(vessels.sum()),
            "components": int(cc3d.connected_components(vessels, connectivity=26, return_N=True)[1]),
            "branches": int(result.qc["branches"]),
            "steps": [{"step": n.strip(), "seconds": round(s, 3), "cpu_seconds": None if cs is None else round(cs, 3),
                       "note": note} for n, s, cs, note in rows],
            "graph_split_seconds": round(t, 3), "graph_split_cpu_seconds": round(c, 3),
            "budget_met": t <= BUDGET_S, "voxel_accuracy": round(accuracy, 4), "_rows": rows}


def growth_row(case: dict) -> dict:
    t, c, result = timed(lambda: split(case), 1)
    nb = int(result.qc["branches"])
    return {"case": case["name"], "vessel_voxels": int(case["vessels"].sum()),
            "components": int(cc3d.connected_components(case["vessels"], connectivity=26, return_N=True)[1]),
            "branches": nb, "seconds": round(t, 3), "cpu_seconds": round(c, 3),
            "ms_per_branch": round(1000 * t / max(nb, 1), 2),
            "steps": {k: v for k, v in result.qc["timings_s"].items() if k != "total"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-growth", action="store_true", help="skip the denser masks")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_speed.json"))
    args = ap.parse_args()

    print(f"{SHAPE} voxels at {SPACING} mm; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"median of {args.repeats}")
    results, noisy = [], None
    for make in (phantom_case, noisy_case):
        case = make()
        if make is noisy_case:
            noisy = case
        res = bench_case(case, args.repeats)
        results.append(res)
        print(f"\n{res['case']}: {res['vessel_voxels']} vessel voxels, {res['components']} components")
        print(f"{'step':40s} {'wall s':>8s} {'CPU s':>8s}  note")
        for name, s, cs, note in res.pop("_rows"):
            print(f"{name:40s} {s:8.3f} {'' if cs is None else f'{cs:8.3f}':>8s}  {note}")
        print(f"graph split {res['graph_split_seconds']:.2f} s (CPU {res['graph_split_cpu_seconds']:.2f} s; "
              f"budget {BUDGET_S:.0f} s: {'met' if res['budget_met'] else 'MISSED'}); "
              f"voxel accuracy {res['voxel_accuracy']:.3f}")

    growth = []
    if not args.no_growth:
        cases = [noisy] + [tiled(noisy, n) for n in (1, 2)]
        real = realistic_case()
        if real is not None:
            cases.append(real)
        growth = [growth_row(c) for c in cases]
        print("\ngrowth (graph split, one run each)")
        print(f"{'case':42s} {'voxels':>8s} {'comps':>6s} {'branches':>8s} {'wall s':>7s} {'CPU s':>7s} "
              f"{'ms/branch':>9s}")
        for g in growth:
            print(f"{g['case']:42s} {g['vessel_voxels']:8d} {g['components']:6d} {g['branches']:8d} "
                  f"{g['seconds']:7.2f} {g['cpu_seconds']:7.2f} {g['ms_per_branch']:9.2f}")

    out = {"grid": {"shape": SHAPE, "spacing_mm": SPACING}, "cpus": os.cpu_count(), "repeats": args.repeats,
           "budget_s": BUDGET_S, "cases": results, "growth": growth}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
