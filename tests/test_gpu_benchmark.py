"""bench/gpu_benchmark.sh cannot rot: its dry run (tiny CT, tiny stand-in networks, CPU) runs here."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import ROOT

TS_BIN = ROOT / "bench" / ".venv-totalseg" / "bin" / "TotalSegmentator"


@pytest.mark.slow
def test_gpu_benchmark_dry_run_times_every_engine_and_the_full_run():
    args = ["bash", str(ROOT / "bench" / "gpu_benchmark.sh"), "--dry-run", "--runs", "fast_ml enhanced"]
    if not TS_BIN.exists():
        args.append("--skip-ts")  # TotalSegmentator's own venv is a large install; the script says so
    result = subprocess.run(args, capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "VRAM MB" in result.stdout  # the printed table
    report = json.loads((ROOT / "build" / "gpu_benchmark_dry_run.json").read_text())
    rows = {(r["run"], r["engine"]): r for r in report["rows"]}
    expected = {("fast_ml", "ours engine"), ("fast_ml", "ours CLI"), ("enhanced", "ours CLI (DICOM->SEG)")}
    if TS_BIN.exists():
        expected.add(("fast_ml", "TotalSegmentator 2.18"))
    assert set(rows) == expected
    assert all(r["rc"] == 0 and r["wall_s"] > 0 and r["peak_pss_mb"] > 0 for r in rows.values())
    full = rows[("enhanced", "ours CLI (DICOM->SEG)")]
    assert full["seg_written"] and full["compute"].startswith("cpu")
    assert set(full["stages_s"]) == {"predict", "enhance", "split"}
    assert report["input"]["shape"] == [40, 40, 24]
