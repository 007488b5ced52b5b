"""Speed and memory of the contrast phase and the Couinaud segments on a full-size grid.

    .venv/bin/python bench/couinaud_speed.py            # realistic phantom 1000 on 512x512x300

A realistic phantom imaged on a 512x512x300 grid (0.89 x 0.89 x 1.78 mm for seed 1000), its true
masks as input. Seconds (wall) and the peak of Python-traced memory during each call (numpy
arrays included; the inputs, made before, not counted). Prints a table and writes
bench/results/couinaud_speed.json.
"""
from __future__ import annotations

import json
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.contrast_phase import contrast_phase_of_scan  # noqa: E402
from livervessels.couinaud import couinaud_segments  # noqa: E402
from livervessels.synthetic.realistic import draw_protocol, make_realistic_phantom  # noqa: E402

from results_provenance import provenance  # noqa: E402


def measure(fn) -> tuple[float, float, object]:
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def main() -> None:
    ph = make_realistic_phantom(1000, protocol=replace(draw_protocol("normal", 1000), shape=(512, 512, 300)))
    support, organs = ph.support(), ph.phase_masks()
    portal, hepatic = ph.vessel_tree == 1, ph.vessel_tree == 2
    rows = {}
    s, mb, phase = measure(lambda: contrast_phase_of_scan(ph.ct, organs, ph.spacing))
    rows["contrast_phase"] = {"seconds": round(s, 2), "peak_mb": round(mb, 1), "phase": phase.phase}
    s, mb, result = measure(lambda: couinaud_segments(support["liver"], portal, hepatic, support["ivc"], ph.affine,
                                                      portal_trunk=support["portal_vein"]))
    rows["couinaud"] = {"seconds": round(s, 2), "peak_mb": round(mb, 1), "refused": result.refused}
    print(f"grid {ph.ct.shape}, spacing {tuple(round(v, 2) for v in ph.spacing)} mm")
    print(f"{'step':16s} {'seconds':>8s} {'peak MB':>8s}")
    for name, r in rows.items():
        print(f"{name:16s} {r['seconds']:8.2f} {r['peak_mb']:8.1f}")
    out = ROOT / "bench" / "results" / "couinaud_speed.json"
    out.write_text(json.dumps({"grid": list(ph.ct.shape), "spacing_mm": list(ph.spacing), "rows": rows,
                               "provenance": provenance()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
