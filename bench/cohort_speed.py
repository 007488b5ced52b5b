"""Cohort throughput: TotalSegmentatorBatch against looping the single-study command, same studies.

N copies of the bundled demo study (DICOM, 160x160x64) through the enhanced liver vessel pipeline
(demo model -> repair -> split -> SEG, NIfTI, QC), as a researcher would run a cohort:

  batch   `.venv/bin/TotalSegmentatorBatch -i COPIES -o OUT --mode enhanced_liver --split_portal_hepatic`
          (one process: models loaded once, the next study read while the current one runs)
  loop    `for s in COPIES: .venv/bin/TotalSegmentatorEnhanced -i s -o OUT/s ...` (a process per study)

Wall time, studies per hour, and peak memory of the process tree (PSS, psutil). Both runs write the
same files per study; the script checks that every study succeeded and that the batch's masks equal
the loop's. Timings on a shared machine are noisy: one paired run, compared as a ratio.

    .venv/bin/python bench/cohort_speed.py                 # 8 copies, about 8 min on 2 cores
    .venv/bin/python bench/cohort_speed.py --copies 2      # a quick look

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

from parity_totalseg import run_measured  # noqa: E402

BIN = ROOT / ".venv" / "bin"
OPTIONS = ["--mode", "enhanced_liver", "--split_portal_hepatic", "-m", str(ROOT / "models")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "cohort_speed.json"))
    args = ap.parse_args()
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
        for name, r in runs.items():
            if r["rc"] != 0:
                raise SystemExit(f"{name} failed (exit {r['rc']}): see {work / (name + '.log')}")
        same = all(np.array_equal(np.asanyarray(nib.load(work / "batch" / s.name / m).dataobj),
                                  np.asanyarray(nib.load(work / "loop" / s.name / m).dataobj))
                   for s in studies.iterdir() for m in ("portal_vein_branches.nii.gz", "hepatic_veins.nii.gz"))
        rows = []
        for name, r in runs.items():
            rows.append({"run": name, "studies": args.copies, "wall_s": round(r["wall_s"], 1),
                         "studies_per_hour": round(3600 * args.copies / r["wall_s"], 1),
                         "peak_pss_mb": r.get("peak_pss_mb")})
        ratio = runs["loop"]["wall_s"] / runs["batch"]["wall_s"]
        print(f"{'run':8s} {'studies':>8s} {'wall s':>8s} {'studies/h':>10s} {'peak PSS MB':>12s}")
        for r in rows:
            print(f"{r['run']:8s} {r['studies']:8d} {r['wall_s']:8.1f} {r['studies_per_hour']:10.1f} "
                  f"{r['peak_pss_mb'] or float('nan'):12.0f}")
        print(f"batch is {ratio:.2f}x the loop's throughput; masks identical: {same}")
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"command": " ".join(["bench/cohort_speed.py", *sys.argv[1:]]), "rows": rows,
                                   "speedup": round(ratio, 2), "masks_identical": same,
                                   "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}},
                                  indent=2))
        print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
