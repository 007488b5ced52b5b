"""Parity of this project's engine with TotalSegmentator 2.18 on the same input and the same weights.

Runs TotalSegmentator (its own venv, bench/.venv-totalseg, as a subprocess, `-d cpu`) and our
`TotalSegmentator` command (the project's .venv, `-m` the same weights) with identical options,
then compares what each wrote: per-class Dice on every class non-empty in either output, voxel
agreement over the whole grid and over the union of foreground, and that both wrote the same
files on the same grid (shape and affine). Target: Dice >= 0.99 on every non-empty class.

    bash bench/totalseg_venv.sh                          # once: TotalSegmentator's venv
    .venv/bin/python bench/parity_totalseg.py            # every case and run below (~15 min on 2 busy cores)
    .venv/bin/python bench/parity_totalseg.py --cases phantom --runs liver_vessels --bf16
    .venv/bin/python bench/parity_totalseg.py --runs liver_segments --json bench/results/parity_liver_segments.json

Weights: the demo-derived stand-ins of bench/standin_weights.py (written if missing) in the
official layout, so both engines load identical models. TotalSegmentator never reaches the
internet: TOTALSEG_HOME_DIR is a temporary folder holding config.json with "send_usage_stats":
false and nnunet/results -> the stand-ins (present weights are never downloaded), and the
subprocess gets HTTP(S)_PROXY=http://127.0.0.1:9 so any request would fail at once.

Cases (default phantom, real, noliver): `phantom` is livervessels.synthetic.phantom.make_phantom on a
realistic grid (default 256x256x120 at 0.8x0.8x1.5 mm, RAS); `real` is the real example CT
(/work/shared/data/totalseg_example/ct_dicom,
512x512x20 at 0.98x0.98x2 mm, LPS voxel order) converted to NIfTI by this project's DICOM reader;
`noliver` is the phantom with crop models that never find the liver/IVC/portal vein (only the
cropping runs liver_vessels, liver_vessels_robust, fast_ml_rs and liver_segments): both must give an empty
segmentation.
--bf16 also runs our engine in-process with bfloat16 autocast on the CPU (segment(precision="bf16"))
for the label-map runs and reports its parity separately.

Writes bench/results/parity_totalseg.json (and the outputs under build/parity/, git-ignored).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.tasks import get_task  # noqa: E402

TS_VENV = ROOT / "bench" / ".venv-totalseg"
TS_BIN = TS_VENV / "bin" / "TotalSegmentator"
OUR_BIN = ROOT / ".venv" / "bin" / "TotalSegmentator"
DEFAULT_WEIGHTS = ROOT / "build" / "standin_weights" / "demo" / "nnunet" / "results"
REAL_DICOM = Path("/work/shared/data/totalseg_example/ct_dicom")
RESULTS = ROOT / "bench" / "results"
DICE_TARGET = 0.99
SUPPORT = ["liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"]

# name -> (TotalSegmentator options, our task name, multilabel output)
RUNS: dict[str, tuple[list[str], str, bool]] = {
    "fast": (["-ta", "total", "--fast"], "total_fast", False),
    "fast_ml": (["-ta", "total", "--fast", "--ml"], "total_fast", True),
    "liver_vessels": (["-ta", "liver_vessels"], "liver_vessels", False),
    "fast_ml_rs": (["-ta", "total", "--fast", "--ml", "-rs", *SUPPORT], "total_fast", True),
    "liver_vessels_robust": (["-ta", "liver_vessels", "--robust_crop"], "liver_vessels", False),
    "total_ml": (["-ta", "total", "--ml"], "total", True),
    "liver_segments": (["-ta", "liver_segments"], "liver_segments", False),
}
CROPPING_RUNS = ("liver_vessels", "fast_ml_rs", "liver_vessels_robust", "liver_segments")  # the noliver case
DEFAULT_RUNS = ["fast", "fast_ml", "liver_vessels", "fast_ml_rs", "liver_vessels_robust", "total_ml"]


# ------------------------------------------------------------------ running and measuring

def totalseg_home(weights: Path) -> Path:
    """A TOTALSEG_HOME_DIR that never sends statistics and holds the stand-in weights."""
    home = Path(tempfile.mkdtemp(prefix="totalseg-home-"))
    config = {"totalseg_id": "totalseg_offline_bench", "send_usage_stats": False, "prediction_counter": 0,
              "statistics_disclaimer_shown": True}
    (home / "config.json").write_text(json.dumps(config, indent=4))
    (home / "nnunet").mkdir()
    (home / "nnunet" / "results").symlink_to(weights.resolve(), target_is_directory=True)
    return home


def offline_env(home: Path, threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TOTALSEG_HOME_DIR": str(home), "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""})
    env.pop("TOTALSEG_WEIGHTS_PATH", None)
    if threads:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def tree_memory(root) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes over a psutil process and all its descendants.

    RSS summed over a tree counts shared pages (torch's libraries, fork-shared arrays) once per
    process; PSS splits them between the processes sharing them, so its sum is the tree's real
    footprint. PSS falls back to RSS where /proc/PID/smaps_rollup cannot be read.
    """
    import psutil

    rss = pss = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def gpu_memory_mb(pids: set[int]) -> float | None:
    """GPU memory (MiB) that nvidia-smi reports for these processes; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    used = 0.0
    for line in out.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) in pids and parts[1].replace(".", "").isdigit():
            used += float(parts[1])
    return used


def run_measured(cmd: list[str], env: dict, cwd: Path, log: Path, timeout: float | None = None) -> dict:
    """Run cmd; wall time, exit code and the peak memory of its whole process tree (psutil, polled
    every 50 ms): peak_pss_mb (real footprint) and peak_rss_mb (RSS summed, counts shared pages
    once per process); with nvidia-smi also peak_vram_mb (polled every 0.5 s, the tree's processes)."""
    import psutil

    peak_rss = peak_pss = 0
    peak_vram: float | None = None
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def poll() -> None:
            nonlocal peak_rss, peak_pss
            try:
                root = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                return
            while not done.is_set():
                try:
                    rss, pss = tree_memory(root)
                except psutil.NoSuchProcess:
                    break
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
                done.wait(0.05)

        def poll_gpu() -> None:
            nonlocal peak_vram
            while not done.is_set():
                try:
                    root = psutil.Process(proc.pid)
                    pids = {root.pid, *(c.pid for c in root.children(recursive=True))}
                except psutil.NoSuchProcess:
                    break
                used = gpu_memory_mb(pids)
                if used is None:
                    break
                peak_vram = max(peak_vram or 0.0, used)
                done.wait(0.5)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        gpu_watcher = threading.Thread(target=poll_gpu, daemon=True)
        gpu_watcher.start()
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        done.set()
        watcher.join()
        gpu_watcher.join()
    out = {"rc": rc, "wall_s": round(time.perf_counter() - t0, 2), "peak_pss_mb": round(peak_pss / 2**20, 1),
           "peak_rss_mb": round(peak_rss / 2**20, 1), "log": str(log)}
    if peak_vram is not None:
        out["peak_vram_mb"] = round(peak_vram, 1)
    return out


# ------------------------------------------------------------------ inputs

def write_phantom(path: Path, shape, spacing, seed: int) -> dict:
    from livervessels.synthetic.phantom import make_phantom

    ph = make_phantom(seed=seed, shape=tuple(shape), spacing=tuple(spacing))
    img = nib.Nifti1Image(np.asarray(ph.ct, np.int16), ph.affine)  # as livervessels.synthetic.phantom.save_nifti
    img.header.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm")
    img.set_qform(ph.affine, code=1)
    img.set_sform(ph.affine, code=1)
    nib.save(img, str(path))
    return {"kind": "phantom", "seed": seed, "shape": list(shape), "spacing_mm": list(spacing), "orientation": "RAS"}


def write_real(path: Path) -> dict:
    from livervessels.geometry import nifti_image
    from livervessels.inputs import load_input

    volume = load_input(REAL_DICOM).volume
    img = nifti_image(np.asarray(volume.array, np.int16), volume.affine)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))
    return {"kind": "real CT (DICOM -> NIfTI by livervessels)", "source": str(REAL_DICOM),
            "shape": list(volume.shape), "spacing_mm": [round(s, 4) for s in volume.spacing],
            "orientation": "".join(nib.aff2axcodes(volume.affine))}


def noliver_weights(weights: Path, target: Path) -> Path:
    """The stand-ins with crop models (298 at 6 mm, 297 at 3 mm for --robust_crop) that never predict
    liver, IVC or portal vein, so the crop is empty: checks what both engines do then
    (TotalSegmentator: an empty segmentation)."""
    import torch

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for folder in weights.iterdir():
        if folder.name.startswith(("Dataset297", "Dataset298")):
            shutil.copytree(folder, target / folder.name)
        else:
            (target / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    for ckpt in target.glob("Dataset29[78]*/*/fold_0/checkpoint_final.pth"):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        rows = [5, 63, 64]  # liver, inferior_vena_cava, portal_vein_and_splenic_vein
        for key, value in state["network_weights"].items():
            if key.startswith("decoder.seg_layers."):
                value[rows] = -100.0 if key.endswith(".bias") else 0.0
        torch.save(state, ckpt)
    return target


# ------------------------------------------------------------------ reading and comparing

def read_output(out: Path, ml: bool, classes: dict[int, str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(label map, affine, files written) of one engine's output."""
    if ml:
        img = nib.load(str(out))
        return np.asanyarray(img.dataobj).astype(np.uint16), img.affine, ["<one label map>"]
    inv = {v: k for k, v in classes.items()}
    files = sorted(p.name for p in out.glob("*.nii.gz"))
    labels = affine = None
    for name in files:
        img = nib.load(str(out / name))
        mask = np.asanyarray(img.dataobj) > 0
        if labels is None:
            labels, affine = np.zeros(mask.shape, np.uint16), img.affine
        key = name[: -len(".nii.gz")]
        if key in inv:
            labels[mask] = inv[key]
    return labels, affine, files


def compare(ts: np.ndarray, ours: np.ndarray, classes: dict[int, str]) -> dict:
    present = sorted(int(v) for v in set(np.unique(ts)) | set(np.unique(ours)) if v != 0)
    rows = []
    for label in present:
        a, b = ts == label, ours == label
        na, nb = int(a.sum()), int(b.sum())
        rows.append({"label": label, "name": classes.get(label, f"label_{label}"), "ts_voxels": na,
                     "ours_voxels": nb, "dice": round(2 * int((a & b).sum()) / (na + nb), 5)})
    fg = (ts > 0) | (ours > 0)
    return {
        "classes": rows,
        "voxel_agreement": float((ts == ours).mean()),
        "foreground_agreement": float((ts == ours)[fg].mean()) if fg.any() else 1.0,
        "differing_voxels": int((ts != ours).sum()),
        "min_dice": min((r["dice"] for r in rows), default=None),
    }


# ------------------------------------------------------------------ main

def run_case(case: str, image: Path, runs: list[str], weights: Path, home: Path, work: Path, bf16: bool,
             threads: int | None) -> list[dict]:
    results = []
    env = offline_env(home, threads)
    for run in runs:
        ts_args, task_name, ml = RUNS[run]
        classes = get_task(task_name).classes
        folder = work / case / run
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        ts_out = folder / ("ts.nii.gz" if ml else "ts")
        our_out = folder / ("ours.nii.gz" if ml else "ours")
        ts_cmd = [str(TS_BIN), "-i", str(image), "-o", str(ts_out), *ts_args, "-d", "cpu"]
        our_cmd = [str(OUR_BIN), "-i", str(image), "-o", str(our_out), *ts_args, "-d", "cpu", "--precision", "fp32",
                   "-m", str(weights)]
        print(f"[{case}/{run}] TotalSegmentator 2.18 ...", flush=True)
        ts_run = run_measured(ts_cmd, env, folder, folder / "ts.log")
        print(f"[{case}/{run}] ours ...", flush=True)
        our_run = run_measured(our_cmd, env, folder, folder / "ours.log")
        entry = {"case": case, "run": run, "options": " ".join(ts_args), "task": task_name,
                 "ts": {**ts_run, "cmd": " ".join(ts_cmd)}, "ours": {**our_run, "cmd": " ".join(our_cmd)}}
        if ts_run["rc"] != 0 or our_run["rc"] != 0:
            entry["error"] = "a command failed: see the logs"
            results.append(entry)
            continue
        ts_labels, ts_aff, ts_files = read_output(ts_out, ml, classes)
        our_labels, our_aff, our_files = read_output(our_out, ml, classes)
        entry["same_files"] = ts_files == our_files
        entry["files"] = len(ts_files)
        entry["same_grid"] = ts_labels.shape == our_labels.shape and bool(np.allclose(ts_aff, our_aff, atol=1e-4))
        entry.update(compare(ts_labels, our_labels, classes))
        entry["pass"] = bool(entry["same_grid"] and entry["same_files"]
                             and (entry["min_dice"] is None or entry["min_dice"] >= DICE_TARGET))
        results.append(entry)
        if bf16 and (ml or task_name == "liver_vessels"):
            results.append(bf16_entry(case, run, image, task_name, ts_args, weights, ts_labels, classes))
    return results


def bf16_entry(case, run, image, task_name, ts_args, weights, ts_labels, classes) -> dict:
    """Our engine in-process with bfloat16 autocast on the CPU, compared with TotalSegmentator's labels."""
    from livervessels.inference import segment
    from livervessels.inputs import load_input

    roi = ts_args[ts_args.index("-rs") + 1:] if "-rs" in ts_args else None
    volume = load_input(image).volume
    t = time.perf_counter()
    labels = segment(volume, task_name, model_dirs=[weights], device="cpu", roi_subset=roi, precision="bf16",
                     robust_crop="--robust_crop" in ts_args)
    wall = time.perf_counter() - t
    entry = {"case": case, "run": run + "+bf16", "options": " ".join(ts_args) + " (ours: precision=bf16)",
             "task": task_name, "ours": {"segment_s": round(wall, 2), "timings": labels.timings}}
    entry.update(compare(ts_labels, labels.array.astype(np.uint16), classes))
    entry["same_grid"] = entry["same_files"] = True
    entry["pass"] = entry["min_dice"] is None or entry["min_dice"] >= DICE_TARGET
    return entry


def print_table(results: list[dict]) -> None:
    print()
    print(f"{'case/run':<28} {'class':<30} {'TS voxels':>10} {'ours voxels':>11} {'Dice':>8}")
    print("-" * 92)
    for r in results:
        name = f"{r['case']}/{r['run']}"
        if "error" in r:
            print(f"{name:<28} ERROR: {r['error']} ({r['ts']['log']}, {r['ours']['log']})")
            continue
        for c in r["classes"]:
            print(f"{name:<28} {c['name']:<30} {c['ts_voxels']:>10} {c['ours_voxels']:>11} {c['dice']:>8.4f}")
            name = ""
        if not r["classes"]:
            print(f"{name:<28} {'(both outputs empty)':<30}")
        times = ""
        if "wall_s" in r.get("ts", {}):
            times = (f"  wall TS {r['ts']['wall_s']:.1f} s / ours {r['ours']['wall_s']:.1f} s, "
                     f"peak PSS TS {r['ts']['peak_pss_mb']:.0f} / ours {r['ours']['peak_pss_mb']:.0f} MB")
        verdict = "PASS" if r["pass"] else "FAIL"
        print(f"{'':<28} => {verdict}: min Dice {r['min_dice'] if r['min_dice'] is not None else '-'}, "
              f"voxel agreement {r['voxel_agreement']:.6f} ({r['differing_voxels']} differ), "
              f"same files {r['same_files']}, same grid {r['same_grid']}{times}")
    print()


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    for name in ("torch", "nnunetv2", "numpy", "scipy", "nibabel"):
        out[f"ours_{name}"] = md.version(name)
    probe = ("import importlib.metadata as m; import json; print(json.dumps({n: m.version(n) for n in "
             "['TotalSegmentator', 'torch', 'nnunetv2', 'numpy', 'scipy', 'nibabel']}))")
    try:
        ts = json.loads(subprocess.run([str(TS_VENV / "bin" / "python"), "-c", probe], capture_output=True,
                                       text=True, check=True, cwd=tempfile.gettempdir()).stdout)
        out.update({f"ts_{k}": v for k, v in ts.items()})
    except (subprocess.CalledProcessError, OSError, json.JSONDecodeError) as exc:
        out["ts_error"] = str(exc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["phantom", "real", "noliver"],
                    choices=["phantom", "real", "noliver"])
    ap.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, choices=list(RUNS))
    ap.add_argument("--shape", nargs=3, type=int, default=[256, 256, 120])
    ap.add_argument("--spacing", nargs=3, type=float, default=[0.8, 0.8, 1.5])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="an nnunet/results folder of stand-ins")
    ap.add_argument("--workdir", type=Path, default=ROOT / "build" / "parity")
    ap.add_argument("--bf16", action="store_true", help="also our engine with bf16 autocast on the CPU")
    ap.add_argument("--threads", type=int, default=None, help="OMP/MKL threads for both engines (default: all)")
    ap.add_argument("--json", type=Path, default=RESULTS / "parity_totalseg.json")
    args = ap.parse_args(argv)

    if not TS_BIN.exists():
        print(f"TotalSegmentator venv missing ({TS_BIN}): run bash bench/totalseg_venv.sh", file=sys.stderr)
        return 2
    # stand-ins written before liver_segments joined lack Dataset570: written again
    if not all((args.weights / d).is_dir() for d in ("Dataset297_TotalSegmentator_total_3mm_1559subj",
                                                      "Dataset570_ct_liver_segments")):
        if args.weights != DEFAULT_WEIGHTS:
            print(f"no stand-in weights in {args.weights}", file=sys.stderr)
            return 2
        subprocess.run([sys.executable, str(ROOT / "bench" / "standin_weights.py")], check=True)
    t0 = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    inputs, results, homes = {}, [], []
    try:
        for case in args.cases:
            weights, runs = args.weights, args.runs
            image = args.workdir / f"{case}_ct.nii.gz"
            if case == "phantom":
                inputs[case] = write_phantom(image, args.shape, args.spacing, args.seed)
            elif case == "noliver":
                runs = [r for r in runs if r in CROPPING_RUNS]
                image = args.workdir / "phantom_ct.nii.gz"
                if "phantom" not in inputs:
                    write_phantom(image, args.shape, args.spacing, args.seed)
                weights = noliver_weights(args.weights, args.workdir / "noliver_weights")
                inputs[case] = {"kind": "the phantom input; 298 stand-in never predicts liver/IVC/portal vein",
                                "weights": str(weights)}
            else:
                if not REAL_DICOM.is_dir():
                    print(f"skipping case real: {REAL_DICOM} not present")
                    continue
                inputs[case] = write_real(image)
            homes.append(totalseg_home(weights))
            results += run_case(case, image, runs, weights, homes[-1], args.workdir, args.bf16, args.threads)
    finally:
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
    print_table(results)
    all_pass = all(r.get("pass") for r in results if not r["run"].endswith("+bf16"))
    bf16 = [r for r in results if r["run"].endswith("+bf16")]
    report = {
        "what": "TotalSegmentator 2.18 vs livervessels engine, same input and stand-in weights, -d cpu",
        "command": ".venv/bin/python bench/parity_totalseg.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "dice_target": DICE_TARGET,
        "all_pass": all_pass,
        "bf16_all_pass": all(r["pass"] for r in bf16) if bf16 else None,
        "weights": str(args.weights),
        "inputs": inputs,
        "versions": versions(),
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    if bf16:
        print(f"bf16 autocast (informational, not in ALL PASS): {'pass' if report['bf16_all_pass'] else 'FAIL'} "
              f"(min Dice {min(r['min_dice'] for r in bf16 if r['min_dice'] is not None):.4f})")
    print(f"{'ALL PASS' if all_pass else 'SOME FAIL'} (fp32 engine, target Dice >= {DICE_TARGET}); "
          f"wrote {args.json} in {report['total_wall_s']:.0f} s")
    return 0 if all_pass else 1


if __name__ == "__main__":
    raise SystemExit(main())
