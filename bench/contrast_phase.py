"""Contrast phase estimate: phantoms rendered in each phase, and the real example CT beside
TotalSegmentator's own estimate.

    .venv/bin/python bench/contrast_phase.py                      # final seeds 3000-3009, all phases
    .venv/bin/python bench/contrast_phase.py --seeds 1000 1001    # tuning seeds (the model was checked there)
    .venv/bin/python bench/contrast_phase.py --no-totalseg        # skip TotalSegmentator's classifier

Phantoms: livervessels.synthetic.realistic, condition normal, every structure's HU drawn per phase
from PHASE_HU_RANGES (per-phase ranges, independent of the estimator's time curves), 35 mm of body
around the liver so the aorta and part of the spleen are in view; masks are the phantom's own
(liver, aorta, spleen, IVC, portal/splenic vein). Methods: livervessels.contrast_phase
(time-attenuation curves) and a naive rule on the aorta alone (< 70 HU native, >= 200 HU arterial late,
else portal venous). Metrics: share of phantoms whose phase is right (mean and standard error),
mean probability given to the true phase, confusion table, and "PV-or-not": whether the QC's
"not portal venous" warning (phase_warning) is raised exactly for the phantoms not in that phase
(naive: its phase is portal venous or not).

Real CT: ../shared/data/totalseg_example (20 slices of a contrast-enhanced abdominal CT with
TotalSegmentator's own `total` label map). Our estimate from that label map; TotalSegmentator 2.18's
(`totalseg_get_phase -s STATS`, its XGBoost classifiers on organ median HU) from the same label map's
medians, run in bench/.venv-totalseg (bash bench/totalseg_venv.sh; pip install xgboost there). No
expert phase label exists for that scan: the row shows agreement, not accuracy.
Prints tables and writes bench/results/contrast_phase.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.contrast_phase import PHASES, contrast_phase_of_scan, phase_warning  # noqa: E402

from parallel import run_cases  # noqa: E402

EXAMPLE = ROOT.parent / "shared" / "data" / "totalseg_example"
TS_VENV = ROOT / "bench" / ".venv-totalseg"
FINAL_SEEDS = list(range(3000, 3010))
# TotalSegmentator total-task label ids of the phase structures (its class map)
TOTAL_IDS = {"spleen": 1, "liver": 5, "aorta": 52, "inferior_vena_cava": 63, "portal_vein_and_splenic_vein": 64}


def naive_phase(hu: dict[str, float]) -> str | None:
    """The rule of thumb on the aorta alone."""
    a = hu.get("aorta")
    if a is None:
        return None
    return "native" if a < 70 else "arterial_late" if a >= 200 else "portal_venous"


def evaluate_seed(seed: int) -> list[dict]:
    from livervessels.synthetic.realistic import draw_phase_protocol, make_realistic_phantom

    rows = []
    for phase in PHASES:
        protocol = draw_phase_protocol(phase, seed, margin_mm=35.0)
        ph = make_realistic_phantom(seed, protocol=protocol)
        est = contrast_phase_of_scan(ph.ct.astype(np.float32), ph.phase_masks(), ph.spacing)
        rows.append({"seed": seed, "true": phase, "estimate": est.phase, "probability": est.probability,
                     "p_true": est.probabilities.get(phase, 0.0), "post_injection_s": est.post_injection_s,
                     "warned": phase_warning(est.as_qc()) is not None,
                     "naive": naive_phase(est.structures_hu), "hu": est.structures_hu})
    return rows


def mean_se(values) -> tuple[float, float]:
    v = np.asarray(values, float)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def summarise(rows: list[dict]) -> dict:
    out = {"per_phase": {}, "confusion": {t: {e: 0 for e in PHASES} for t in PHASES}}
    for r in rows:
        if r["estimate"]:
            out["confusion"][r["true"]][r["estimate"]] += 1
    for phase in PHASES + ("all",):
        sel = [r for r in rows if phase == "all" or r["true"] == phase]
        ours = [r["estimate"] == r["true"] for r in sel]
        naive = [r["naive"] == r["true"] for r in sel]
        pv_ours = [r["warned"] == (r["true"] != "portal_venous") for r in sel]
        pv_naive = [(r["naive"] == "portal_venous") == (r["true"] == "portal_venous") for r in sel]
        out["per_phase"][phase] = {"n": len(sel), "accuracy": mean_se(ours), "naive_accuracy": mean_se(naive),
                                   "p_true": mean_se([r["p_true"] for r in sel]),
                                   "portal_venous_or_not": mean_se(pv_ours),
                                   "naive_portal_venous_or_not": mean_se(pv_naive)}
    return out


def real_example(totalseg: bool) -> dict | None:
    """Our estimate and TotalSegmentator's on the real example CT, from its reference label map."""
    if not (EXAMPLE / "ct_dicom").is_dir():
        print(f"real example CT not found at {EXAMPLE}: skipped")
        return None
    import nibabel as nib

    from livervessels.geometry import reorient_to_grid
    from livervessels.study import load_ct_study

    volume = load_ct_study(EXAMPLE / "ct_dicom").volume
    img = nib.load(str(EXAMPLE / "reference_total_multilabel.nii.gz"))
    labels = reorient_to_grid(np.asanyarray(img.dataobj), img.affine, volume.shape, volume.affine)
    ours = contrast_phase_of_scan(volume.array, {k: labels == i for k, i in TOTAL_IDS.items()}, volume.spacing)
    out = {"ours": ours.as_qc(), "totalsegmentator": None}
    ts_python = TS_VENV / "bin" / "python"
    if not totalseg:
        return out
    if not ts_python.is_file():
        out["totalsegmentator"] = "not run: bench/.venv-totalseg missing (bash bench/totalseg_venv.sh)"
        return out
    # TotalSegmentator's statistics format (median HU and ml per class of its class map), so its
    # classifier sees the same label map's medians as ours
    names = json.loads(subprocess.run(
        [str(ts_python), "-c", "import json; from totalsegmentator.map_to_binary import class_map; "
                               "print(json.dumps(class_map['total']))"],
        check=True, capture_output=True, text=True, cwd=tempfile.gettempdir()).stdout)
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    stats = {}
    for idx, name in names.items():
        m = labels == int(idx)
        stats[name] = {"volume": float(m.sum() * voxel_ml),
                       "intensity": float(np.median(volume.array[m])) if m.any() else 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stats.json").write_text(json.dumps(stats))
        nib.save(nib.Nifti1Image(volume.array.astype(np.int16), volume.affine), str(tmp / "ct.nii.gz"))
        (tmp / "home").mkdir()
        (tmp / "home" / "config.json").write_text(json.dumps(
            {"totalseg_id": "totalseg_offline_bench", "send_usage_stats": False, "prediction_counter": 0,
             "statistics_disclaimer_shown": True}))
        cmd = [str(TS_VENV / "bin" / "totalseg_get_phase"), "-i", str(tmp / "ct.nii.gz"), "-o",
               str(tmp / "phase.json"), "-s", str(tmp / "stats.json"), "-q", "-d", "cpu"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp,
                              env={"PATH": "/usr/bin:/bin", "TOTALSEG_HOME_DIR": str(tmp / "home"), "HOME": str(tmp)})
        if proc.returncode != 0:
            out["totalsegmentator"] = f"failed: {proc.stderr.strip().splitlines()[-1:]}"
        else:
            out["totalsegmentator"] = json.loads((tmp / "phase.json").read_text())
    out["totalsegmentator_features_hu"] = {k: stats[k]["intensity"] for k in TOTAL_IDS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=FINAL_SEEDS)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-totalseg", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "contrast_phase.json"))
    args = ap.parse_args()

    rows = [r for rs in run_cases(evaluate_seed, [(s,) for s in args.seeds], args.jobs) for r in rs]
    summary = summarise(rows)
    print(f"\nContrast phase on realistic phantoms, seeds {args.seeds[0]}..{args.seeds[-1]} "
          f"({len(args.seeds)} per phase), mean ± standard error")
    print(f"{'true phase':16s} {'ours right':>14s} {'naive right':>14s} {'p(true)':>14s} "
          f"{'PV-or-not ours':>15s} {'PV-or-not naive':>16s}")
    for phase, s in summary["per_phase"].items():
        f = lambda ms: f"{ms[0]:.2f} ± {ms[1]:.2f}"  # noqa: E731
        print(f"{phase:16s} {f(s['accuracy']):>14s} {f(s['naive_accuracy']):>14s} {f(s['p_true']):>14s} "
              f"{f(s['portal_venous_or_not']):>15s} {f(s['naive_portal_venous_or_not']):>16s}")
    print("\nconfusion (rows true, columns estimated):")
    print(" " * 16 + "".join(f"{p[:14]:>15s}" for p in PHASES))
    for t in PHASES:
        print(f"{t:16s}" + "".join(f"{summary['confusion'][t][e]:>15d}" for e in PHASES))
    real = real_example(not args.no_totalseg)
    if real:
        o = real["ours"]
        print(f"\nreal example CT: ours {o['phase']} (p {o['probability']}, ~{o['post_injection_s']} s after "
              f"injection; HU {o['structures_hu']})")
        ts = real["totalsegmentator"]
        if isinstance(ts, dict):
            print(f"TotalSegmentator 2.18 totalseg_get_phase: {ts['phase']} (probability {ts['probability']}, "
                  f"pi_time {ts['pi_time']} s, folds {ts['pi_time_min']}-{ts['pi_time_max']} s)")
        elif ts:
            print(f"TotalSegmentator: {ts}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": args.seeds, "rows": rows, "summary": summary, "real_example": real},
                                         indent=1, default=str))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
