"""Run time of the portal / hepatic vein split on a large phantom, step by step.

    .venv/bin/python bench/split_speed.py [--repeats 3] [--json bench/results/split_speed.json]

Input: make_phantom(seed=1, shape=(512, 512, 300), spacing=(0.8, 0.8, 1.5)) ground-truth vessels
(labels == liver_vessels) with its liver, IVC and portal/splenic vein, i.e. a typical liver vessel
tree on a thin-slice CT grid. Times (median of the repeats, this machine's CPU): skeletonisation,
the centerline graph, and the whole split with its internal steps, for the graph split and the
voxel-geodesic fallback. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.portal_hepatic import split_portal_hepatic  # noqa: E402
from livervessels.vessel_graph import build_vessel_graph, skeletonize_mask  # noqa: E402

BUDGET_S = 5.0


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_speed.json"))
    args = ap.parse_args()
    shape, spacing = (512, 512, 300), (0.8, 0.8, 1.5)
    ph = make_phantom(seed=1, shape=shape, spacing=spacing)
    vessels = ph.labels == LABELS["liver_vessels"]
    support = {"liver": ph.labels == LABELS["liver"], "ivc": ph.labels == LABELS["inferior_vena_cava"],
               "portal_vein": ph.labels == LABELS["portal_vein_and_splenic_vein"]}
    rows = []
    t, skel = timed(lambda: skeletonize_mask(vessels), args.repeats)
    rows.append(("skeletonize (Lee 3D, bounding box)", t, f"{int(skel.sum())} centerline voxels"))
    t, graph = timed(lambda: build_vessel_graph(vessels, ph.spacing, ph.ct), args.repeats)
    rows.append(("build_vessel_graph (incl. skeleton)", t, f"{len(graph.branches)} branches, {len(graph.nodes)} nodes"))
    t, split = timed(lambda: split_portal_hepatic(vessels, ph.ct, ph.spacing, **support), args.repeats)
    for step, s in split.qc["timings_s"].items():
        if step != "total":
            rows.append((f"  split step: {step}", s, "last run"))
    rows.append(("split_portal_hepatic (graph)", t, f"confidence {split.qc['confidence']}"))
    t, geo = timed(lambda: split_portal_hepatic(vessels, ph.ct, ph.spacing, use_skeleton=False, **support),
                   args.repeats)
    rows.append(("split_portal_hepatic (--no_skeleton)", t, f"confidence {geo.qc['confidence']}"))
    vt = ph.vessel_tree
    accuracy = float((split.labels[vessels] == vt[vessels]).mean())

    print(f"phantom seed 1, {shape} voxels at {spacing} mm: {int(vessels.sum())} vessel voxels; "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); median of {args.repeats}")
    print(f"{'step':40s} {'seconds':>8s}  note")
    for name, s, note in rows:
        print(f"{name:40s} {s:8.3f}  {note}")
    total = next(s for name, s, _ in rows if name == "split_portal_hepatic (graph)")
    print(f"graph split {total:.2f} s (budget {BUDGET_S:.0f} s: {'met' if total <= BUDGET_S else 'MISSED'}); "
          f"voxel accuracy {accuracy:.3f}")
    result = {"phantom": {"seed": 1, "shape": shape, "spacing_mm": spacing, "vessel_voxels": int(vessels.sum())},
              "cpus": os.cpu_count(), "repeats": args.repeats, "budget_s": BUDGET_S,
              "steps": [{"step": n.strip(), "seconds": round(s, 3), "note": note} for n, s, note in rows],
              "graph_split_seconds": round(total, 3), "voxel_accuracy": round(accuracy, 4)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
