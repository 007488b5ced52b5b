"""Inference speed and memory: this project's engine vs TotalSegmentator 2.18, same input, same weights.

A 512x512x300 CT at 0.8x0.8x1.5 mm (livervessels.synthetic.phantom.make_phantom, cached under build/speed/)
through the random-weight stand-ins of bench/standin_weights.py --random (nnU-Net-sized networks in
the official layout; the results are noise, the work is real). For every run:

  ours (engine)  this script in a fresh subprocess: read, load models, [crop model], resample,
                 predict, merge, resample back, write, each timed (LabelMap.timings), with peak
                 memory of its process tree (PSS: shared pages counted once) and peak VRAM on CUDA.
                 Writing: one uint8 .nii.gz per class (or the label map with --ml) in threads, each
                 mask made inside its thread, and classes absent from the label map written from one
                 gzip of an all-zero volume (the same NIfTI as writing that empty mask).
  ours (CLI)     `.venv/bin/TotalSegmentator ... -m WEIGHTS`, the product as shipped (wall, memory).
  TotalSegmentator  `bench/.venv-totalseg/bin/TotalSegmentator ... -d cpu` (wall, memory, and the
                 stage times it prints), offline: TOTALSEG_HOME_DIR with usage statistics off.

    .venv/bin/python bench/inference_speed.py                       # runs fast, fast_ml (~15 min on 2 cores)
    .venv/bin/python bench/inference_speed.py --runs fast fast_ml liver_vessels total_ml --bf16
    .venv/bin/python bench/inference_speed.py --runs fast --skip-ts --engines engine   # ours only

Runs: fast (-ta total --fast, 117 masks), fast_ml (--fast --ml), liver_vessels (crop model: the
demo-derived 298, which finds the phantom's liver, so 008 (random, 1.5 mm) runs on a realistic
liver box; --random-crop-model: the random 298, whose "liver" covers the whole CT), total (5 parts
at 1.5 mm, 117 masks; ~15 min per engine on 2 cores), total_ml. --bf16 adds our engine with bfloat16 autocast on the CPU
(segment(precision="bf16"); not parity-exact for thin vessels, see bench/parity_totalseg.py --bf16).
The CPU may be shared with other work: timings are noisy; rerun on a quiet machine with the
command stored in the JSON. Writes bench/results/inference_speed.json (or --json).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from parity_totalseg import OUR_BIN, TS_BIN, offline_env, run_measured, totalseg_home  # noqa: E402

OUR_ENHANCED_BIN = OUR_BIN.parent / "TotalSegmentatorEnhanced"

WEIGHTS = ROOT / "build" / "standin_weights" / "random" / "nnunet" / "results"
DEMO_WEIGHTS = ROOT / "build" / "standin_weights" / "demo" / "nnunet" / "results"
WORK = ROOT / "build" / "speed"
RESULTS = ROOT / "bench" / "results"

# name -> (TotalSegmentator options, our task, multilabel, dataset ids needed)
RUNS: dict[str, tuple[list[str], str, bool, list[int]]] = {
    "fast": (["-ta", "total", "--fast"], "total_fast", False, [297]),
    "fast_ml": (["-ta", "total", "--fast", "--ml"], "total_fast", True, [297]),
    "liver_vessels": (["-ta", "liver_vessels"], "liver_vessels", False, [298, 8]),
    "total": (["-ta", "total"], "total", False, [291, 292, 293, 294, 295]),
    "total_ml": (["-ta", "total", "--ml"], "total", True, [291, 292, 293, 294, 295]),
    # the product's full run: DICOM series -> support labels (total, roi_subset) + liver_vessels ->
    # repair -> split -> DICOM SEG, NIfTI, QC; TotalSegmentator has no equivalent (its parts are the
    # total and liver_vessels rows). Demo-derived stand-ins, so the masks the repair and split work on
    # are anatomical; their networks are small, so network time is in the other rows.
    "enhanced": ([], "enhanced", False, []),
}
DEFAULT_RUNS = ["fast", "fast_ml"]


# ------------------------------------------------------------------ worker (runs in its own process)

def empty_mask_bytes(shape, affine) -> bytes:
    """The .nii.gz bytes of an all-zero uint8 mask on this grid (written once, reused)."""
    from livervessels.geometry import nifti_image

    img = nifti_image(np.zeros(shape, np.uint8), affine)
    img.header.set_data_dtype(np.uint8)
    return gzip.compress(img.to_bytes(), compresslevel=1, mtime=0)


def write_masks_lazily(labels: np.ndarray, affine: np.ndarray, classes: dict[int, str], out_dir: Path,
                       threads: int) -> dict:
    """One mask per class, each made inside its writer thread (no dict of full-size masks)."""
    from livervessels.outputs.nifti import write_mask

    out_dir.mkdir(parents=True, exist_ok=True)
    counts = np.bincount(labels.ravel(), minlength=max(classes) + 1)
    empty = None

    def one(label: int, name: str) -> None:
        path = out_dir / f"{name}.nii.gz"
        if counts[label] == 0:
            path.write_bytes(empty)
        else:
            write_mask(labels == label, affine, path)

    if any(counts[k] == 0 for k in classes):
        empty = empty_mask_bytes(labels.shape, affine)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(lambda kv: one(*kv), classes.items()))
    return {"masks": len(classes), "empty_masks": int(sum(counts[k] == 0 for k in classes))}


def crop_weights(random: Path, target: Path) -> Path:
    """Random stand-ins, but the crop models (297, 298) demo-derived: they find the phantom's
    liver, so liver_vessels runs 008 on a realistic liver box (a random 298 sees "liver" all over
    the image, and 008 then runs on the whole CT, which no real CT does)."""
    import shutil

    if not (DEMO_WEIGHTS / "Dataset298_TotalSegmentator_total_6mm_1559subj").is_dir():
        subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py")], check=True)
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in random.iterdir():
        source = DEMO_WEIGHTS / folder.name if folder.name.startswith(("Dataset297", "Dataset298")) else folder
        (target / folder.name).symlink_to(source.resolve(), target_is_directory=True)
    return target


def worker(args) -> None:
    import torch

    from livervessels.inference import segment
    from livervessels.inputs import load_input
    from livervessels.outputs.nifti import write_multilabel

    if args.threads:
        torch.set_num_threads(args.threads)
    _, task, ml, _ = RUNS[args.run]
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    t = time.perf_counter()
    volume = load_input(args.input).volume
    stages["read"] = time.perf_counter() - t
    labels = segment(volume, task, model_dirs=[args.weights], device=args.device,
                     precision="bf16" if args.bf16 else "fp32")
    for key in ("load", "crop_model", "resample", "predict", "merge", "resample_back"):
        if key in labels.timings:
            stages[key if key != "load" else "load_models"] = labels.timings[key]
    t = time.perf_counter()
    out = Path(args.output)
    if ml:
        write_multilabel(labels.array, volume.affine, labels.classes, out)
        info = {"masks": 1}
    else:
        info = write_masks_lazily(labels.array, volume.affine, labels.classes, out, args.write_threads)
    stages["write"] = time.perf_counter() - t
    result = {"stages_s": {k: round(v, 2) for k, v in stages.items()},
              "total_s": round(time.perf_counter() - t0, 2), "write": info,
              "torch_threads": torch.get_num_threads(), "device": str(args.device or ("cuda" if cuda else "cpu"))}
    if cuda:
        result["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(args.result).write_text(json.dumps(result))


# ------------------------------------------------------------------ driver

def make_input(path: Path, shape, spacing, seed: int) -> dict:
    import nibabel as nib

    from livervessels.synthetic.phantom import make_phantom

    info = {"shape": list(shape), "spacing_mm": list(spacing), "seed": seed, "path": str(path)}
    if path.exists():
        return info
    path.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ph = make_phantom(seed=seed, shape=tuple(shape), spacing=tuple(spacing))
    img = nib.Nifti1Image(np.asarray(ph.ct, np.int16), ph.affine)
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm")
    img.set_qform(ph.affine, code=1)
    img.set_sform(ph.affine, code=1)
    nib.save(img, str(path))
    print(f"input {path} written in {time.perf_counter() - t:.1f} s", flush=True)
    return info


def dicom_input(image: Path) -> Path:
    """The NIfTI input written once as a DICOM CT series (one file per slice), beside it."""
    import nibabel as nib

    from livervessels.synthetic.write_series import write_image_series

    folder = image.with_name(image.name.replace(".nii.gz", "_dicom"))
    if not (folder / "done").exists():
        img = nib.load(str(image))
        write_image_series(np.asanyarray(img.dataobj), img.affine, folder, series_description="speed benchmark CT")
        (folder / "done").write_text("")
    return folder


def run_enhanced(image: Path, device: str, env: dict, folder: Path, timeout: float) -> dict:
    """The full liver-vessel run as shipped (TotalSegmentatorEnhanced on the DICOM series), with the
    stage times it records in qc.json."""
    import shutil

    if not (DEMO_WEIGHTS / "Dataset008_HepaticVessel").is_dir():
        subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py")], check=True)
    series = dicom_input(image)
    out = folder / "enhanced_out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(OUR_ENHANCED_BIN), "-i", str(series), "-o", str(out), "--mode", "enhanced_liver",
           "--split_portal_hepatic", "-d", device, "-m", str(DEMO_WEIGHTS)]
    print("[enhanced] ours CLI, DICOM -> SEG ...", flush=True)
    row = {"run": "enhanced", "engine": "ours CLI (DICOM->SEG)", **run_measured(cmd, env, folder,
                                                                                 folder / "enhanced.log", timeout),
           "cmd": " ".join(cmd), "weights": str(DEMO_WEIGHTS)}
    if row["rc"] == 0:
        qc = json.loads((out / "qc.json").read_text())
        row["stages_s"] = {"predict": qc["timings_s"].get("segment"), "enhance": qc["timings_s"].get("enhance"),
                           "split": qc["timings_s"].get("split")}
        row["compute"] = qc["models"].get("compute")
        row["seg_written"] = (out / "segmentations.dcm").exists() or any(out.glob("*.dcm"))
    return row


def ts_stages(log: Path) -> dict:
    """The stage times TotalSegmentator prints (Resampled/Predicted/Saved in N s)."""
    text = log.read_text(errors="replace")
    found: dict[str, float] = {}
    resampled = [float(x) for x in re.findall(r"Resampled in ([\d.]+)s", text)]
    if resampled:
        found["resample"] = resampled[0]
        if len(resampled) > 1:
            found["resample_back"] = sum(resampled[1:])
    for key, pattern in (("predict", r"Predicted in ([\d.]+)s"), ("write", r"Saved in ([\d.]+)s")):
        values = [float(x) for x in re.findall(pattern, text)]
        if values:
            found[key] = sum(values)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS))
    ap.add_argument("--engines", nargs="+", default=["engine", "cli", "ts"], choices=["engine", "cli", "ts"],
                    help="engine: ours stage by stage; cli: our TotalSegmentator command; ts: TotalSegmentator 2.18")
    ap.add_argument("--skip-ts", action="store_true", help="same as leaving ts out of --engines")
    ap.add_argument("--bf16", action="store_true", help="also our engine with bf16 autocast on the CPU")
    ap.add_argument("--shape", nargs=3, type=int, default=[512, 512, 300])
    ap.add_argument("--spacing", nargs=3, type=float, default=[0.8, 0.8, 1.5])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--weights", type=Path, default=WEIGHTS)
    ap.add_argument("--device", default="cpu", help="our engine's device (cpu, gpu); TotalSegmentator gets the same")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for our engine (default: all cores)")
    ap.add_argument("--write-threads", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--random-crop-model", action="store_true",
                    help="liver_vessels: crop with the random 298 too (its 'liver' covers the whole CT)")
    ap.add_argument("--json", type=Path, default=RESULTS / "inference_speed.json")
    ap.add_argument("--prepare-only", action="store_true",
                    help="write the input (NIfTI, and DICOM for the enhanced run) and the weights, time nothing")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    engines = [e for e in args.engines if not (args.skip_ts and e == "ts")]
    if "ts" in engines and not TS_BIN.exists():
        print(f"TotalSegmentator venv missing ({TS_BIN}): run bash bench/totalseg_venv.sh; skipping it",
              file=sys.stderr)
        engines.remove("ts")
    needed = sorted({i for r in args.runs for i in RUNS[r][3]})
    missing = [i for i in needed if not list(args.weights.glob(f"Dataset{i:03d}_*"))]
    if missing:
        if args.weights != WEIGHTS:
            print(f"stand-ins {missing} missing in {args.weights}", file=sys.stderr)
            return 2
        subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py"), "--random", "--only",
                        *map(str, missing)], check=True)

    t_all = time.perf_counter()
    image = WORK / f"ct_{'x'.join(map(str, args.shape))}.nii.gz"
    info = make_input(image, args.shape, args.spacing, args.seed)
    if args.prepare_only:
        if "enhanced" in args.runs:
            dicom_input(image)
            if not (DEMO_WEIGHTS / "Dataset008_HepaticVessel").is_dir():
                subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py")], check=True)
        print(f"prepared {image}")
        return 0
    homes = {}
    device_ts = "cpu" if args.device == "cpu" else "gpu"
    variants = [("engine", False)] + ([("engine", True)] if args.bf16 else []) if "engine" in engines else []
    rows = []
    try:
        for run in args.runs:
            ts_args, task, ml, _ = RUNS[run]
            if run == "enhanced":
                folder = WORK / run
                folder.mkdir(parents=True, exist_ok=True)
                if DEMO_WEIGHTS not in homes:
                    homes[DEMO_WEIGHTS] = totalseg_home(DEMO_WEIGHTS)
                rows.append(run_enhanced(image, args.device, offline_env(homes[DEMO_WEIGHTS], args.threads), folder,
                                         args.timeout))
                continue
            weights = args.weights
            if task == "liver_vessels" and not args.random_crop_model:
                weights = crop_weights(args.weights, WORK / "weights_demo_crop")
            if weights not in homes:
                homes[weights] = totalseg_home(weights)
            env = offline_env(homes[weights], args.threads)
            folder = WORK / run
            folder.mkdir(parents=True, exist_ok=True)
            for engine, bf16 in variants:
                name = "ours engine" + (" bf16" if bf16 else "")
                tag = "engine_bf16" if bf16 else "engine"
                out = folder / (f"{tag}.nii.gz" if ml else tag)
                result = folder / f"{tag}.json"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--run", run, "--input", str(image),
                       "--output", str(out), "--result", str(result), "--weights", str(weights),
                       "--device", args.device, "--write-threads", str(args.write_threads)]
                cmd += ["--bf16"] if bf16 else []
                cmd += ["--threads", str(args.threads)] if args.threads else []
                print(f"[{run}] {name} ...", flush=True)
                measured = run_measured(cmd, env, folder, folder / f"{tag}.log", args.timeout)
                row = {"run": run, "engine": name, **measured, "cmd": " ".join(cmd)}
                if measured["rc"] == 0:
                    row.update(json.loads(result.read_text()))
                rows.append(row)
            if "cli" in engines:
                out = folder / ("cli.nii.gz" if ml else "cli")
                cmd = [str(OUR_BIN), "-i", str(image), "-o", str(out), *ts_args, "-d", args.device, "-m", str(weights)]
                print(f"[{run}] ours CLI ...", flush=True)
                rows.append({"run": run, "engine": "ours CLI", **run_measured(cmd, env, folder, folder / "cli.log",
                                                                                 args.timeout), "cmd": " ".join(cmd)})
            if "ts" in engines:
                out = folder / ("ts.nii.gz" if ml else "ts")
                cmd = [str(TS_BIN), "-i", str(image), "-o", str(out), *ts_args, "-d", device_ts]
                print(f"[{run}] TotalSegmentator 2.18 ...", flush=True)
                measured = run_measured(cmd, env, folder, folder / "ts.log", args.timeout)
                rows.append({"run": run, "engine": "TotalSegmentator 2.18", **measured, "cmd": " ".join(cmd),
                             "stages_s": ts_stages(folder / "ts.log")})
    finally:
        import shutil

        for home in homes.values():
            shutil.rmtree(home, ignore_errors=True)

    print_table(rows)
    report = {
        "what": "inference speed, ours vs TotalSegmentator 2.18, random-weight stand-ins "
                "(bench/standin_weights.py --random)",
        "command": ".venv/bin/python bench/inference_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "CPU possibly shared with other work while measured: timings are noisy",
        "input": info,
        "weights": str(args.weights),
        "liver_vessels_crop_model": ("random 298" if args.random_crop_model
                                     else "demo-derived 298 (finds the phantom liver)"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "cuda": _cuda_name()},
        "load_avg_at_end": os.getloadavg(),
        "total_wall_s": round(time.perf_counter() - t_all, 1),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json} ({report['total_wall_s']:.0f} s)")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


def _cuda_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def print_table(rows: list[dict]) -> None:
    stages = ["read", "load_models", "crop_model", "resample", "predict", "merge", "resample_back", "write",
              "enhance", "split"]
    head = f"{'run':<14} {'engine':<22} {'wall s':>7} " + " ".join(f"{s[:9]:>9}" for s in stages)
    head += f" {'peak PSS MB':>11} {'VRAM MB':>8}"
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        st = r.get("stages_s", {})
        cells = " ".join(f"{st[s]:>9.1f}" if st.get(s) is not None else f"{'-':>9}" for s in stages)
        vram = f"{r['peak_vram_mb']:>8.0f}" if "peak_vram_mb" in r else f"{'-':>8}"
        status = "" if r["rc"] == 0 else f"  (exit {r['rc']}: {r['log']})"
        print(f"{r['run']:<14} {r['engine']:<22} {r['wall_s']:>7.1f} {cells} {r['peak_pss_mb']:>11.0f} {vram}{status}")
    print("(TotalSegmentator's stages are what it prints: its predict includes its nnU-Net start-up and file I/O;"
          " ours engine 'wall s' includes Python start-up and imports)")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
