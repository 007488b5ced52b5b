"""Cohort throughput: TotalSegmentatorBatch against looping the single-study command, same studies.

N copies of the bundled demo study (DICOM, 160x160x64) through the enhanced liver vessel pipeline
(demo model -> repair -> split -> SEG, NIfTI, QC), as a researcher would run a cohort:

  batch   `.venv/bin/TotalSegmentatorBatch -i COPIES -o OUT --mode enhanced_liver --split_portal_hepatic`
          (one process: models loaded once, the next study read while the current one runs)
  loop    `for s in COPIES: .venv/bin/TotalSegmentatorEnhanced -i s -o OUT/s ...` (a process per study)
  ray     (with --ray) the batch on a local Ray instance, one 1-CPU actor per core

With --task liver_vessels, the TotalSegmentator-compatible command instead, against TotalSegmentator
2.18 itself, on NIfTI copies of the demo study (the form both read) and the stand-in weights in the
official layout (bench/standin_weights.py; TotalSegmentator offline as in bench/parity_totalseg.py):

  batch     `TotalSegmentatorBatch -i COPIES -o OUT -ta liver_vessels -m WEIGHTS -d cpu`
  loop      our `TotalSegmentator -i s -o OUT/s -ta liver_vessels -m WEIGHTS -d cpu`, a process per study
  ts_loop   TotalSegmentator 2.18 (bench/.venv-totalseg) `-ta liver_vessels -d cpu`, a process per study

Wall time, studies per hour, and peak memory of the process tree (PSS, psutil). The runs write the
same files per study; the script checks that every study succeeded and that the batch's masks equal
the loop's (and, against TotalSegmentator, the lowest class Dice). Timings on a shared machine are
noisy: one paired run, compared as a ratio.

    .venv/bin/python bench/cohort_speed.py                 # 8 copies, about 8 min on 2 cores
    .venv/bin/python bench/cohort_speed.py --copies 2      # a quick look
    bash bench/totalseg_venv.sh && .venv/bin/python bench/cohort_speed.py --task liver_vessels --copies 4

Writes bench/results/cohort_speed.json (or --json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from parity_totalseg import DEFAULT_WEIGHTS, TS_BIN, offline_env, run_measured, totalseg_home  # noqa: E402

BIN = ROOT / ".venv" / "bin"
OPTIONS = ["--mode", "enhanced_liver", "--split_portal_hepatic", "-m", str(ROOT / "models")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--task", choices=["enhanced", "liver_vessels"], default="enhanced")
    ap.add_argument("--ray", action="store_true", help="also the batch on Ray, one 1-CPU actor per core")
    ap.add_argument("--json", default=None, help="default bench/results/cohort_speed[_liver_vessels].json")
    args = ap.parse_args()
    if args.json is None:
        suffix = "" if args.task == "enhanced" else "_liver_vessels"
        args.json = str(ROOT / "bench" / "results" / f"cohort_speed{suffix}.json")
    if args.task == "liver_vessels":
        return liver_vessels(args)
    work = Path(tempfile.mkdtemp(prefix="cohort-speed-"))
    try:
        studies = work / "studies"
        for i in range(args.copies):
            shutil.copytree(ROOT / "demo" / "study", studies / f"study{i:02d}")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        runs = {}
        runs["batch"] = run_measured([str(BIN / "TotalSegmentatorBatch"), "-i", str(studies), "-o", str(work / "batch"),
                                      *OPTIONS, "--no_progress"], env, work, work / "batch.log")
        loop_script = work / "loop.sh"
        loop_script.write_text("set -e\n" + "".join(
            f"{BIN / 'TotalSegmentatorEnhanced'} -i {studies / s.name} -o {work / 'loop' / s.name} "
            f"{' '.join(OPTIONS)} -q\n" for s in sorted(studies.iterdir())))
        runs["loop"] = run_measured(["bash", str(loop_script)], env, work, work / "loop.log")
        if args.ray:
            runs["ray"] = run_measured([str(BIN / "TotalSegmentatorBatch"), "-i", str(studies), "-o", str(work / "ray"),
                                        *OPTIONS, "--no_progress", "--ray", "auto", "--ray_workers",
                                        str(os.cpu_count()), "--ray_cpus_per_worker", "1"], env, work, work / "ray.log")
        for name, r in runs.items():
            if r["rc"] != 0:
                raise SystemExit(f"{name} failed (exit {r['rc']}): see {work / (name + '.log')}")
        same = all(np.array_equal(np.asanyarray(nib.load(work / run / s.name / m).dataobj),
                                  np.asanyarray(nib.load(work / "loop" / s.name / m).dataobj))
                   for s in studies.iterdir() for m in ("portal_vein_branches.nii.gz", "hepatic_veins.nii.gz")
                   for run in runs if run != "loop")
        rows = []
        for name, r in runs.items():
            rows.append({"run": name, "studies": args.copies, "wall_s": round(r["wall_s"], 1),
                         "studies_per_hour": round(3600 * args.copies / r["wall_s"], 1),
                         "peak_pss_mb": r.get("peak_pss_mb")})
        ratio = runs["loop"]["wall_s"] / runs["batch"]["wall_s"]
        ray_ratio = runs["loop"]["wall_s"] / runs["ray"]["wall_s"] if "ray" in runs else None
        print(f"{'run':8s} {'studies':>8s} {'wall s':>8s} {'studies/h':>10s} {'peak PSS MB':>12s}")
        for r in rows:
            print(f"{r['run']:8s} {r['studies']:8d} {r['wall_s']:8.1f} {r['studies_per_hour']:10.1f} "
                  f"{r['peak_pss_mb'] or float('nan'):12.0f}")
        print(f"batch is {ratio:.2f}x the loop's throughput" + (f", on Ray {ray_ratio:.2f}x" if ray_ratio else "")
              + f"; masks identical: {same}")
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": " ".join(["bench/cohort_speed.py", *sys.argv[1:]]), "rows": rows,
                                   "speedup": round(ratio, 2), "masks_identical": same,
                                   "speedup_ray": round(ray_ratio, 2) if ray_ratio else None,
                                   "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}},
                                  indent=2))
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def liver_vessels(args) -> None:
    """The TotalSegmentator-compatible batch against looping it and against looping TotalSegmentator 2.18."""
    from livervessels.geometry import nifti_image
    from livervessels.inputs import load_input

    if not TS_BIN.exists():
        raise SystemExit(f"TotalSegmentator 2.18 is not installed at {TS_BIN}: run bash bench/totalseg_venv.sh")
    if not (DEFAULT_WEIGHTS / "Dataset008_HepaticVessel").is_dir():
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py")], check=True)
    work = Path(tempfile.mkdtemp(prefix="cohort-speed-lv-"))
    home = totalseg_home(DEFAULT_WEIGHTS)
    try:
        studies = work / "studies"
        studies.mkdir()
        with load_input(ROOT / "demo" / "study") as loaded:
            image = nifti_image(loaded.volume.array, loaded.volume.affine)
        for i in range(args.copies):
            nib.save(image, studies / f"study{i:02d}.nii.gz")
        env = {**offline_env(home), "PYTHONUNBUFFERED": "1"}
        task = ["-ta", "liver_vessels", "-d", "cpu"]
        ours = [*task, "-m", str(DEFAULT_WEIGHTS)]
        names = sorted(p.name[:-len(".nii.gz")] for p in studies.iterdir())
        runs = {"batch": run_measured([str(BIN / "TotalSegmentatorBatch"), "-i", str(studies), "-o",
                                       str(work / "batch"), *ours, "--no_progress"], env, work, work / "batch.log")}
        for run, exe, options in (("loop", BIN / "TotalSegmentator", ours), ("ts_loop", TS_BIN, task)):
            script = work / f"{run}.sh"
            script.write_text("set -e\n" + "".join(
                f"{exe} -i {studies / (n + '.nii.gz')} -o {work / run / n} {' '.join(options)}\n" for n in names))
            runs[run] = run_measured(["bash", str(script)], env, work, work / f"{run}.log")
        for name, r in runs.items():
            if r["rc"] != 0:
                raise SystemExit(f"{name} failed (exit {r['rc']}): see {work / (name + '.log')}")

        def mask(run: str, study: str, cls: str) -> np.ndarray:
            return np.asanyarray(nib.load(work / run / study / f"{cls}.nii.gz").dataobj) > 0

        classes = ("liver_vessels", "liver_tumor")
        same = all(np.array_equal(mask("batch", n, c), mask("loop", n, c)) for n in names for c in classes)
        min_dice_ts = min(_dice(mask("batch", n, c), mask("ts_loop", n, c)) for n in names for c in classes)
        rows = [{"run": name, "studies": args.copies, "wall_s": round(r["wall_s"], 1),
                 "studies_per_hour": round(3600 * args.copies / r["wall_s"], 1), "peak_pss_mb": r.get("peak_pss_mb")}
                for name, r in runs.items()]
        print(f"{'run':8s} {'studies':>8s} {'wall s':>8s} {'studies/h':>10s} {'peak PSS MB':>12s}")
        for r in rows:
            print(f"{r['run']:8s} {r['studies']:8d} {r['wall_s']:8.1f} {r['studies_per_hour']:10.1f} "
                  f"{r['peak_pss_mb'] or float('nan'):12.0f}")
        speedup = {"batch_vs_loop": round(runs["loop"]["wall_s"] / runs["batch"]["wall_s"], 2),
                   "batch_vs_ts_loop": round(runs["ts_loop"]["wall_s"] / runs["batch"]["wall_s"], 2)}
        print(f"batch is {speedup['batch_vs_loop']:.2f}x our loop and {speedup['batch_vs_ts_loop']:.2f}x "
              f"TotalSegmentator 2.18's loop; batch masks equal the loop's: {same}; lowest Dice against "
              f"TotalSegmentator: {min_dice_ts:.3f}")
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": " ".join(["bench/cohort_speed.py", *sys.argv[1:]]), "rows": rows,
                                   "speedup": speedup, "masks_identical_to_loop": same,
                                   "min_dice_vs_totalsegmentator": round(min_dice_ts, 4),
                                   "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}},
                                  indent=2))
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
