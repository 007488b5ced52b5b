"""What the SR measurement report, the key-measurement SR and the preview secondary capture add to a run.

The bundled demo study through the enhanced pipeline once (demo model, repair, split), then the
outputs written repeatedly into fresh folders: everything the app writes, and the SRs + SC step
(`pipeline.write_dicom_reports`) alone. Reports the median of the repeats; budget 1 s.

    .venv/bin/python bench/dicom_reports_speed.py [--repeats 5] [--json bench/results/dicom_reports_speed.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from livervessels.outputs.study_outputs import write_dicom_reports, write_study_outputs, write_study_seg
    from livervessels.pipeline import run_liver_vessels
    from livervessels.study import load_ct_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "dicom_reports_speed.json")
    args = parser.parse_args()

    study = load_ct_study(ROOT / "demo" / "study")
    result = run_liver_vessels(study.volume, model_dirs=[ROOT / "models"], device="cpu")
    all_outputs, reports_only = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            out = Path(tmp) / f"all{i}"
            out.mkdir()
            t = time.perf_counter()
            write_study_outputs(out, study, result)
            all_outputs.append(time.perf_counter() - t)
            seg = write_study_seg(out, study, result)
            t = time.perf_counter()
            write_dicom_reports(out, study, result, seg)
            reports_only.append(time.perf_counter() - t)
    rows = {"all outputs (SEG, NIfTI, statistics, preview, meshes, SRs, SC, QC)": statistics.median(all_outputs),
            "SR + key SR + SC": statistics.median(reports_only)}
    print(f"| step | median s of {args.repeats} |\n|---|---|")
    for name, seconds in rows.items():
        print(f"| {name} | {seconds:.2f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"study": "demo/study", "shape": list(study.volume.shape), "repeats": args.repeats,
                                     "median_s": rows, "all_s": {"all": all_outputs, "sr_sc": reports_only},
                                     "machine": platform.processor() or platform.machine(),
                                     "python": sys.version.split()[0]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
