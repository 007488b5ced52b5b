"""Speed of the vessel enhancement on a clinical-size grid (512 x 512 x 300 at 0.8 x 0.8 x 1.5 mm).

    .venv/bin/python bench/enhancement_speed.py [--repeats 3] [--device cpu|cuda]
        [--json bench/results/enhancement_speed.json]

Times the torch vesselness alone on the liver region (the crop enhancement works on), the whole
enhancement with its per-step timings, and scikit-image's frangi on a small crop for comparison
(extrapolated per million voxels). Prints a table and writes the numbers as JSON. Timings on a
shared machine vary: the minimum and median wall time of the repeats, and the process CPU time of
the fastest repeat, are reported.
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

from livervessels.enhancement import EnhancementParams, enhance_liver_vessels  # noqa: E402
from livervessels.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.phantom_degrade import simulate_network_mask  # noqa: E402
from livervessels.vesselness import pick_device, sigma_for_radius, vesselness  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.5])
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "enhancement_speed.json"))
    args = ap.parse_args()
    device = str(pick_device(args.device))
    params = EnhancementParams()
    sigmas = [sigma_for_radius(d / 2) for d in params.vessel_diameters_mm]

    t = time.perf_counter()
    ph = make_phantom(seed=1, shape=tuple(args.shape), spacing=tuple(args.spacing))
    t_phantom = time.perf_counter() - t
    truth = ph.labels == LABELS["liver_vessels"]
    liver = (ph.labels == LABELS["liver"]) | truth
    t = time.perf_counter()
    raw = simulate_network_mask(ph, seed=1)
    t_degrade = time.perf_counter() - t

    box = liver_crop(liver, ph.spacing, params)
    crop = np.ascontiguousarray(ph.ct[box], np.float32)
    mvox = crop.size / 1e6
    v_times, v_cpu, _ = timed(lambda: vesselness(crop, ph.spacing, sigmas, device=device), args.repeats)
    vb_times, vb_cpu, _ = timed(lambda: vesselness(crop, ph.spacing, sigmas, polarity="both", device=device),
                                args.repeats)
    e_times, e_cpu, (enh, meta) = timed(lambda: enhance_liver_vessels(raw, liver, ph.ct, ph.spacing, device=device),
                                 args.repeats)

    # scikit-image frangi on a small crop (it is ~10 s per Mvoxel): same scales, isotropic voxels assumed.
    from skimage.filters import frangi
    c = tuple(s.start + (s.stop - s.start) // 2 for s in box)
    small = np.ascontiguousarray(ph.ct[c[0] - 32:c[0] + 32, c[1] - 32:c[1] + 32, c[2] - 20:c[2] + 20], np.float32)
    sk_sigmas = [s / float(np.mean(ph.spacing)) for s in sigmas]
    sk_times, sk_cpu, _ = timed(lambda: frangi(small, sigmas=sk_sigmas, black_ridges=False), 1)
    ours_small, ours_cpu, _ = timed(lambda: vesselness(small, ph.spacing, sigmas, device=device), 3)

    def row(name, times, cpu, voxels_m):
        return {"step": name, "min_s": round(min(times), 3), "median_s": round(statistics.median(times), 3),
                "cpu_s_of_min": round(cpu[times.index(min(times))], 3),
                "mvoxels": round(voxels_m, 3), "s_per_mvoxel": round(min(times) / voxels_m, 3)}

    rows = [
        row("vesselness (bright), liver crop", v_times, v_cpu, mvox),
        row("vesselness (bright + dark null), liver crop", vb_times, vb_cpu, mvox),
        row("enhance_liver_vessels, whole", e_times, e_cpu, np.prod(args.shape) / 1e6),
        row("skimage.filters.frangi, small crop", sk_times, sk_cpu, small.size / 1e6),
        row("our vesselness, same small crop", ours_small, ours_cpu, small.size / 1e6),
    ]
    print(f"grid {tuple(args.shape)} at {tuple(args.spacing)} mm; liver crop {crop.shape} = {mvox:.2f} Mvoxel; "
          f"device {device}; torch threads {torch.get_num_threads()}; phantom {t_phantom:.1f} s; "
          f"simulated raw mask {t_degrade:.1f} s")
    print(f"{'step':<46} {'min s':>8} {'median s':>9} {'CPU s':>8} {'Mvoxel':>8} {'s/Mvoxel':>9}")
    for r in rows:
        print(f"{r['step']:<46} {r['min_s']:>8.3f} {r['median_s']:>9.3f} {r['cpu_s_of_min']:>8.3f} "
              f"{r['mvoxels']:>8.2f} {r['s_per_mvoxel']:>9.3f}")
    print("enhancement steps (last run, s): " + ", ".join(f"{k} {v}" for k, v in meta["timings"].items()))
    frangi_full = rows[3]["s_per_mvoxel"] * mvox
    print(f"skimage frangi extrapolated to the liver crop: {frangi_full:.1f} s "
          f"(x{frangi_full / max(rows[0]['min_s'], 1e-9):.0f} slower than ours)")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "grid": {"shape": args.shape, "spacing_mm": args.spacing, "liver_crop_shape": list(crop.shape)},
        "device": device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "torch": torch.__version__,
        "phantom_s": round(t_phantom, 2), "simulated_raw_mask_s": round(t_degrade, 2),
        "rows": rows, "enhancement_step_timings_s": meta["timings"],
        "skimage_frangi_extrapolated_liver_crop_s": round(frangi_full, 2),
        "target": "vesselness <= 10 s on CPU, <= 1 s on GPU for the liver region",
    }, indent=2))


if __name__ == "__main__":
    main()
