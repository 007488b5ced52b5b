"""Speed of the vessel enhancement on clinical-size grids.

    .venv/bin/python bench/enhancement_speed.py [--repeats 3] [--device cpu|cuda]
        [--cases phantom large_noisy large_noisy_stray fine_slices fine_grid realistic]
        [--json bench/results/enhancement_speed.json]

Cases (the enhancement works on the box around the liver mask grown by the margin and the
vesselness/bridging halo; its size in voxels is what the time follows):
- phantom: make_phantom seed 1, 512 x 512 x 300 at 0.8 x 0.8 x 1.5 mm (--shape / --spacing), raw
  mask simulate_network_mask(seed 1) (27 components);
- large_noisy: bench/large_cases.py's large_noisy_case() (same grid, 20 HU noise, about 280
  components: gaps, false-positive blobs, speckle);
- large_noisy_stray: the same with one stray liver voxel in a corner of the volume, so the box runs
  from that corner to the liver (29 Mvoxel, 37 % of the volume): what a liver mask with a distant
  false-positive island costs;
- fine_slices: make_phantom seed 1, 512 x 512 x 400 at 0.75 x 0.75 x 1.0 mm (8.5 Mvoxel box);
- fine_grid: make_phantom seed 1, 512 x 512 x 400 at 0.6 x 0.6 x 0.8 mm: a 16.5 Mvoxel box, the size
  of a 1.5-2 litre liver's box at 0.75 mm pixels and 1 mm slices;
- realistic: livervessels.synthetic's realistic phantom seed 1000 (a 1.6 litre liver with dense
  portal and hepatic trees) on 512 x 512 x 320 at 0.75 x 0.75 x 1.0 mm, its network-like mask
  (about 60 components): a 14.7 Mvoxel box.

For the phantom case it also times the torch vesselness alone on the liver crop (without and with
the region mask the enhancement passes) and scikit-image's frangi on a small crop for comparison
(extrapolated per million voxels). Prints tables and writes the numbers as JSON. Timings on a
shared machine vary: the minimum and median wall time of the repeats, and the process CPU time of
the fastest repeat, are reported; per-step times are those of the fastest repeat.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.compute import resolve_device  # noqa: E402
from livervessels.enhancement import EnhancementParams, repair_vessel_mask  # noqa: E402
from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.synthetic.phantom_degrade import simulate_network_mask  # noqa: E402
from livervessels.vesselness import sigma_for_radius, vesselness  # noqa: E402

from large_cases import large_noisy_case  # noqa: E402

CASES = ["phantom", "large_noisy", "large_noisy_stray", "fine_slices", "fine_grid", "realistic"]
STEPS = ["region", "measure", "vesselness", "prune_blobs", "grow", "bridge", "trim", "fill_holes", "prune",
         "statistics"]


def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and process-CPU seconds of each repeat (CPU time shows contention: wall >> CPU / threads)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return walls, cpus, out


def liver_crop(liver: np.ndarray, spacing, params: EnhancementParams) -> tuple[slice, ...]:
    """The box enhancement works on: liver + margin + vesselness/bridging halo."""
    sigmas = [sigma_for_radius(d / 2) for d in params.vessel_diameters_mm]
    pad = np.ceil((params.liver_margin_mm + 3 * max(sigmas) + params.gap_mm) / np.asarray(spacing)).astype(int)
    idx = np.nonzero(liver)
    return tuple(slice(max(int(i.min()) - p, 0), min(int(i.max()) + p + 1, n))
                 for i, p, n in zip(idx, pad, liver.shape))


def make_case(name: str, shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """(ct, raw vessel mask, liver mask, spacing) of a benchmark case."""
    if name.startswith("large_noisy"):
        case = large_noisy_case()
        liver = case.liver
        if name == "large_noisy_stray":
            liver = liver.copy()
            liver[2, 2, 2] = True
        return case.ct, case.vessels, liver, case.spacing
    if name == "realistic":
        from livervessels.synthetic.network_mask import simulate_network_mask as realistic_network_mask
        from livervessels.synthetic.realistic import draw_protocol, make_realistic_phantom
        ph = make_realistic_phantom(1000, protocol=draw_protocol("normal", 1000, pixel_mm=0.75, slice_mm=1.0,
                                                                 shape=(512, 512, 320)))
        return ph.ct, realistic_network_mask(ph, 1000), ph.support()["liver"], ph.spacing
    grid = {"phantom": (tuple(shape), tuple(spacing)), "fine_slices": ((512, 512, 400), (0.75, 0.75, 1.0)),
            "fine_grid": ((512, 512, 400), (0.6, 0.6, 0.8))}[name]
    ph = make_phantom(seed=1, shape=grid[0], spacing=grid[1])
    liver = (ph.labels == LABELS["liver"]) | (ph.labels == LABELS["liver_vessels"])
    return ph.ct, simulate_network_mask(ph, seed=1), liver, ph.spacing


def row(name, times, cpu, voxels_m):
    return {"step": name, "min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
            "cpu_s_of_min": round(cpu[times.index(min(times))], 3),
            "mvoxels": round(voxels_m, 3), "s_per_mvoxel": round(min(times) / voxels_m, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300], help="grid of the phantom case")
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.5], help="spacing of the phantom case")
    ap.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "enhancement_speed.json"))
    args = ap.parse_args()
    device = str(resolve_device(args.device))
    params = EnhancementParams()
    sigmas = [sigma_for_radius(d / 2) for d in params.vessel_diameters_mm]

    cases, rows, vessel_rows = [], [], []
    for name in args.cases:
        t = time.perf_counter()
        ct, raw, liver, spacing = make_case(name, args.shape, args.spacing)
        t_make = time.perf_counter() - t
        box = liver_crop(liver, spacing, params)
        box_shape = [int(s.stop - s.start) for s in box]
        metas = []
        # the lambda runs inside timed(), before the del at the end of the loop (ruff reads it as after)
        e_times, e_cpu, _ = timed(
            lambda: metas.append(repair_vessel_mask(raw, liver, ct, spacing, device=device)[1]),  # noqa: F821
            args.repeats)
        meta = metas[e_times.index(min(e_times))]  # per-step times of the fastest repeat
        step_times = meta["timings"]
        cases.append({
            "case": name, "shape": list(ct.shape), "spacing_mm": [round(s, 4) for s in spacing],
            "box_shape": box_shape, "box_mvoxels": round(float(np.prod(box_shape)) / 1e6, 2),
            "raw_components": meta["components_before"], "enhanced_components": meta["components_after"],
            "enhanced_voxels": meta["voxels"], "make_s": round(t_make, 1),
            **{k: v for k, v in row("repair_vessel_mask", e_times, e_cpu, 1.0).items()
               if k in ("min_s", "median_s", "cpu_s_of_min")},
            "step_timings_s": step_times,
        })
        print(f"{name}: grid {tuple(ct.shape)} at {tuple(round(s, 3) for s in spacing)} mm, box {tuple(box_shape)} = "
              f"{cases[-1]['box_mvoxels']:.2f} Mvoxel, {meta['components_before']} raw components, "
              f"{cases[-1]['min_s']:.2f} s (CPU {cases[-1]['cpu_s_of_min']:.2f} s), made in {t_make:.1f} s", flush=True)

        if name == "phantom":
            crop = np.ascontiguousarray(ct[box], np.float32)
            region = np.asarray(liver[box], bool)  # the enhancement's region is this grown by 3 mm
            mvox = crop.size / 1e6
            v_times, v_cpu, _ = timed(lambda: vesselness(crop, spacing, sigmas, device=device), args.repeats)
            vb_times, vb_cpu, _ = timed(lambda: vesselness(crop, spacing, sigmas, polarity="both", device=device),
                                        args.repeats)
            vm_times, vm_cpu, _ = timed(lambda: vesselness(crop, spacing, sigmas, polarity="both", device=device,
                                                           mask=region), args.repeats)
            # scikit-image frangi on a small crop (it is ~10 s per Mvoxel): same scales, isotropic voxels assumed.
            from skimage.filters import frangi
            c = tuple(s.start + (s.stop - s.start) // 2 for s in box)
            small = np.ascontiguousarray(ct[c[0] - 32:c[0] + 32, c[1] - 32:c[1] + 32, c[2] - 20:c[2] + 20], np.float32)
            sk_sigmas = [s / float(np.mean(spacing)) for s in sigmas]
            sk_times, sk_cpu, _ = timed(lambda: frangi(small, sigmas=sk_sigmas, black_ridges=False), 1)
            ours_small, ours_cpu, _ = timed(lambda: vesselness(small, spacing, sigmas, device=device), 3)
            vessel_rows = [
                row("vesselness (bright), liver crop", v_times, v_cpu, mvox),
                row("vesselness (bright + dark null), liver crop", vb_times, vb_cpu, mvox),
                row("vesselness (bright + dark), liver voxels only", vm_times, vm_cpu, mvox),
                row("skimage.filters.frangi, small crop", sk_times, sk_cpu, small.size / 1e6),
                row("our vesselness, same small crop", ours_small, ours_cpu, small.size / 1e6),
            ]
            rows = vessel_rows + [row("repair_vessel_mask, whole", e_times, e_cpu, float(np.prod(ct.shape)) / 1e6)]
        del ct, raw, liver

    print(f"\ndevice {device}; torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs")
    print(f"{'case':<18} {'box (voxels)':>16} {'Mvoxel':>7} {'comp':>5} {'min s':>7} {'median s':>9} {'CPU s':>7}  "
          + " ".join(f"{k[:8]:>8}" for k in STEPS))
    for c in cases:
        print(f"{c['case']:<18} {'x'.join(map(str, c['box_shape'])):>16} {c['box_mvoxels']:>7.2f} "
              f"{c['raw_components']:>5} {c['min_s']:>7.2f} {c['median_s']:>9.2f} {c['cpu_s_of_min']:>7.2f}  "
              + " ".join(f"{c['step_timings_s'].get(k, 0.0):>8.2f}" for k in STEPS))
    frangi_full = None
    if rows:
        print(f"\n{'step (phantom)':<46} {'min s':>8} {'median s':>9} {'CPU s':>8} {'Mvoxel':>8} {'s/Mvoxel':>9}")
        for r in rows:
            print(f"{r['step']:<46} {r['min_s']:>8.3f} {r['median_s']:>9.3f} {r['cpu_s_of_min']:>8.3f} "
                  f"{r['mvoxels']:>8.2f} {r['s_per_mvoxel']:>9.3f}")
        frangi_full = rows[3]["s_per_mvoxel"] * rows[0]["mvoxels"]
        print(f"skimage frangi extrapolated to the liver crop: {frangi_full:.1f} s "
              f"(x{frangi_full / max(rows[0]['min_s'], 1e-9):.0f} slower than ours)")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "device": device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "torch": torch.__version__, "repeats": args.repeats,
        "cases": cases, "rows": rows,
        "skimage_frangi_extrapolated_liver_crop_s": None if frangi_full is None else round(frangi_full, 2),
        "target": "enhancement <= 10 s on 2 CPU cores for a 512 x 512 x 300 CT (realistic and noisy masks) and "
                  "for 10-20 Mvoxel liver boxes",
    }, indent=2))


if __name__ == "__main__":
    main()
