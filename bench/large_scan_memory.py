"""Host memory of the enhanced liver-vessel run on long scans (issue 16: 512 x 512 x 1500 within 8 GB).

Makes 512 x 512 x N CTs (N = 300 and 1500 by default) with make_phantom (seed 7, 0.8 x 0.8 x 0.6 mm):
the body continues over the whole length and the liver keeps its size (about 270 slices), as in a
chest-abdomen-pelvis series of thin slices; saved as int16 NIfTI with the phantom's liver, portal
vein and IVC masks beside it. Then, each in a fresh process, wall time and the peak PSS of its
process tree (bench/parity_totalseg.run_measured, polled every 50 ms):

- `support given`: `TotalSegmentatorEnhanced -i ct.nii -o OUT --mode enhanced_liver
  --split_portal_hepatic --split_support_dir SUPPORT -m models -d cpu`: the liver, portal vein and
  IVC from the folder, the raw vessels from the demo model (inference on the whole scan), repair,
  split and every output written;
- `all from the model` (300 slices by default, --all-from-model-slices): the same without the
  folder. The demo model, trained on short phantoms, labels the whole body interior liver on long
  scans (a toy model's limit, not anatomy), so this row shows the cost of a liver box as long as the
  scan;
- `nnunet` / `ours` (300 slices, --compare-nnunet): the demo model alone, once through nnunetv2's
  predict_single_npy_array (the float32 copy TotalSegmentator hands it) and once through this
  project's path (nnunet_runner._predict): peak PSS each and whether the labels are identical.

    .venv/bin/python bench/large_scan_memory.py                    # ~35 min on 2 cores
    .venv/bin/python bench/large_scan_memory.py --slices 1500 --no-compare-nnunet --all-from-model-slices

Writes bench/results/large_scan_memory.json (inputs and outputs under build/large_scan/, git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

WORK = ROOT / "build" / "large_scan"
MODELS = ROOT / "models"
BUDGET_GB = 8.0
SUPPORT = ("liver", "inferior_vena_cava", "portal_vein_and_splenic_vein")


def make_long_ct(slices: int, folder: Path) -> tuple[Path, Path]:
    """(ct.nii, support folder) of the phantom on a 512 x 512 x slices grid (see the docstring)."""
    import nibabel as nib

    from livervessels.geometry import nifti_image
    from livervessels.synthetic.phantom import LABELS, make_phantom

    ct_path, support = folder / "ct.nii", folder / "support"
    if ct_path.exists() and all((support / f"{n}.nii.gz").exists() for n in SUPPORT):
        return ct_path, support
    ph = make_phantom(seed=7, shape=(512, 512, slices), spacing=(0.8, 0.8, 0.6), vessel_clearance_mm=0.0)
    support.mkdir(parents=True, exist_ok=True)
    img = nifti_image(np.asarray(ph.ct, np.int16), ph.affine)
    img.header.set_data_dtype(np.int16)
    nib.save(img, str(ct_path))
    for name in SUPPORT:
        mask = nifti_image((ph.labels == LABELS[name]).astype(np.uint8), ph.affine)
        nib.save(mask, str(support / f"{name}.nii.gz"))
    return ct_path, support


def predict_only(which: str, ct_path: Path, out: Path) -> None:
    """In a fresh process: the demo model's labels for the scan, by nnunetv2's path or ours."""
    import nibabel as nib
    import torch

    from livervessels import nnunet_runner

    img = nib.load(str(ct_path))
    image = np.asarray(img.dataobj)  # int16 as stored
    spacing = [float(np.float32(s)) for s in img.header.get_zooms()[:3]]
    model = nnunet_runner.load_model(MODELS / "Dataset990_LiverVesselsDemo" / "nnUNetTrainer__nnUNetPlans__3d_fullres",
                                     precision="bf16")
    props = {"spacing": spacing[::-1]}
    with torch.inference_mode():
        if which == "nnunet":
            data = np.ascontiguousarray(image.transpose(2, 1, 0)[None], np.float32)
            labels = model.predictor.predict_single_npy_array(data, props)
        else:
            labels = nnunet_runner._predict(model.predictor, image.transpose(2, 1, 0)[None], props)
    np.save(out, np.asarray(labels, np.uint8))


def _liver_ml(qc_path: Path) -> float | None:
    """The liver volume the run found (qc.json), or None when the run wrote none."""
    try:
        return json.loads(qc_path.read_text())["structures"]["liver"]["volume_ml"]
    except (OSError, KeyError, ValueError):
        return None


def run_case(name: str, cmd: list[str], log: Path) -> dict:
    from parity_totalseg import run_measured

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = run_measured(cmd, env, ROOT, log)
    row = {"case": name, "rc": r["rc"], "wall_s": round(r["wall_s"], 1),
           "peak_pss_gb": round(r["peak_pss_mb"] / 1024, 2), "log": str(log.relative_to(ROOT))}
    print(f"{name:48s} rc {row['rc']:3d}  {row['wall_s']:7.1f} s  peak {row['peak_pss_gb']:6.2f} GB", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[300, 1500])
    parser.add_argument("--compare-nnunet", action=argparse.BooleanOptionalAction, default=True,
                        help="the demo model alone, nnunetv2's path vs ours, on the 300-slice scan")
    parser.add_argument("--all-from-model-slices", type=int, nargs="*", default=[300],
                        help="lengths also run without the support folder (every label from the demo model)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "large_scan_memory.json")
    parser.add_argument("--_predict", nargs=3, metavar=("WHICH", "CT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._predict:
        predict_only(args._predict[0], Path(args._predict[1]), Path(args._predict[2]))
        return 0

    python = str(ROOT / ".venv" / "bin" / "python")
    rows: list[dict] = []
    comparison = None
    for n in args.slices:
        ct, support = make_long_ct(n, WORK / f"scan_{n}")
        runs = [("support given", ["--split_support_dir", str(support)])]
        if n in args.all_from_model_slices:
            runs.append(("all from the model", []))
        for label, extra in runs:
            out = WORK / f"out_{n}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [str(ROOT / ".venv" / "bin" / "TotalSegmentatorEnhanced"), "-i", str(ct), "-o", str(out),
                   "--mode", "enhanced_liver", "--split_portal_hepatic", "-m", str(MODELS), "-d", "cpu", *extra]
            row = run_case(f"enhanced, {label}, 512x512x{n}", cmd, WORK / f"enhanced_{n}_{len(extra)}.log")
            row.update(slices=n, within_budget=row["rc"] == 0 and row["peak_pss_gb"] <= BUDGET_GB,
                       liver_ml=_liver_ml(out / "qc.json"))
            rows.append(row)
            shutil.rmtree(out, ignore_errors=True)
        if args.compare_nnunet and n == 300:
            labels = {}
            for which in ("nnunet", "ours"):
                npy = WORK / f"labels_{which}_{n}.npy"
                r = run_case(f"demo model only, {which}, 512x512x{n}",
                             [python, __file__, "--_predict", which, str(ct), str(npy)],
                             WORK / f"predict_{which}_{n}.log")
                r.update(slices=n)
                rows.append(r)
                labels[which] = np.load(npy) if r["rc"] == 0 else None
            if labels["nnunet"] is not None and labels["ours"] is not None:
                comparison = {"slices": n, "labels_identical": bool(np.array_equal(labels["nnunet"], labels["ours"])),
                              "voxels_differing": int(np.count_nonzero(labels["nnunet"] != labels["ours"]))}
                print(f"labels nnunetv2 vs ours identical: {comparison['labels_identical']} "
                      f"({comparison['voxels_differing']} voxels differ)")
    result = {"budget_gb": BUDGET_GB, "rows": rows, "nnunet_comparison": comparison,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    ok = all(r["within_budget"] for r in rows if "within_budget" in r)
    return 0 if ok and (comparison is None or comparison["labels_identical"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
