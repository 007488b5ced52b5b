"""Accuracy of the bundled demo model on phantoms it was not trained on, and the app's run time.

    .venv/bin/python bench/demo_accuracy.py [--seeds 2026 2027 2028] [--json bench/results/demo_accuracy.json]

Prints a table (Dice per class per phantom, mean) and the wall time / peak memory of
`python app -i demo/study -o ... -m models`, and writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.geometry import Volume  # noqa: E402
from livervessels.inference import segment  # noqa: E402
from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * (a & b).sum() / s)


def app_run() -> dict:
    """Wall time and peak RSS of the whole app process tree on the demo study."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = psutil.Popen([sys.executable, str(ROOT / "app"), "-i", str(ROOT / "demo" / "study"), "-o",
                             str(Path(tmp) / "out"), "-m", str(ROOT / "models")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.05)
        return {"returncode": proc.returncode, "wall_s": round(time.perf_counter() - t0, 2),
                "peak_rss_gib": round(peak / 2**30, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2026, 2027, 2028])
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "demo_accuracy.json"))
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        ph = make_phantom(seed=seed)
        t0 = time.perf_counter()
        labels = segment(Volume(ph.ct, ph.affine), "demo_liver", model_dirs=[ROOT / "models"], device="cpu")
        seconds = time.perf_counter() - t0
        rows.append({"seed": seed, "seconds": round(seconds, 2),
                     **{n: round(dice(labels.mask(n), ph.labels == v), 3) for n, v in LABELS.items()}})
    names = list(LABELS)
    print(f"{'seed':>6} " + " ".join(f"{n[:22]:>22}" for n in names) + f" {'seconds':>8}")
    for r in rows:
        print(f"{r['seed']:>6} " + " ".join(f"{r[n]:>22.3f}" for n in names) + f" {r['seconds']:>8.2f}")
    mean = {n: round(float(np.mean([r[n] for r in rows])), 3) for n in names}
    print(f"{'mean':>6} " + " ".join(f"{mean[n]:>22.3f}" for n in names))
    app = app_run()
    print(f"app on demo/study: exit {app['returncode']}, {app['wall_s']} s wall, peak RSS {app['peak_rss_gib']} GiB")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"per_phantom": rows, "mean_dice": mean, "app_demo_run": app,
                               "cpu_count": psutil.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
