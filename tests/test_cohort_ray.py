"""Cohorts on Ray (livervessels/cohort_ray.py): a local Ray instance with 2 CPU actors; a worker
killed in the middle of a study costs that study one more attempt, never a lost, duplicated or
half-written study."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from livervessels import cohort
from livervessels.cohort_ray import RayPool, actor_options, ray_dispatch
from livervessels.geometry import nifti_image

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEMO_STUDY = ROOT / "demo" / "study"
BATCH = ROOT / ".venv" / "bin" / "TotalSegmentatorBatch"

try:
    import ray
except ImportError:  # the setup installs it: a CI run without it is a broken setup, not a skip
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed (scripts/setup.sh installs it)", allow_module_level=True)
POOL = RayPool("auto", workers=2, cpus_per_worker=1)


def _rows(out: Path) -> dict[str, dict]:
    with open(out / cohort.COHORT_CSV, newline="") as f:
        return {r["study_id"]: r for r in csv.DictReader(f)}


def _hidden_leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if ".partial-" in p.name or ".old-" in p.name)


@pytest.fixture
def studies(tmp_path):
    src = tmp_path / "cohort"
    src.mkdir()
    for i, name in enumerate(("a", "b", "c", "d")):
        arr = np.full((12, 10, 8), i, np.int16)
        arr[2:5, 3:6, 1:4] = 200
        nib.save(nifti_image(arr, np.diag([1.5, 1.5, 2.0, 1.0])), src / f"{name}.nii.gz")
    return cohort.find_studies(src)[0]


def dying_runner(marks: Path, die: dict[str, int]):
    """A stand-in for a single run that writes two files, and on the first die[study] attempts kills
    its own worker process (SIGKILL, as the kernel's OOM killer would) between the two. Self-contained:
    Ray ships it to the workers by value."""
    def run_study(loaded, folder: Path) -> None:
        import os
        import signal
        from pathlib import Path as P

        name = folder.name
        folder.mkdir(parents=True)
        (folder / "first.txt").write_text(str(loaded.volume.shape))
        attempts = P(marks) / name
        attempts.mkdir(parents=True, exist_ok=True)
        tried = len(list(attempts.iterdir()))
        (attempts / str(os.getpid())).write_text("")
        if tried < die.get(name, 0):
            os.kill(os.getpid(), signal.SIGKILL)
        (folder / "second.txt").write_text(str(float(loaded.volume.array.mean())))
    return run_study


def test_actors_are_one_per_gpu_or_one_per_cpus_per_worker():
    node = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 4.0}}]
    assert actor_options(RayPool(), {"CPU": 16.0, "GPU": 4.0}, node) == (4, {"num_gpus": 1, "num_cpus": 4})
    assert actor_options(RayPool(cpus_per_worker=2), {"CPU": 64.0}, [{"Resources": {"CPU": 32.0}}] * 2) == \
        (32, {"num_cpus": 2})
    # a worker never asks for more CPUs than one node has (it could not be placed)
    assert actor_options(RayPool(cpus_per_worker=8), {"CPU": 2.0}, [{"Resources": {"CPU": 2.0}}]) == \
        (1, {"num_cpus": 2})
    assert actor_options(RayPool(workers=3), {"CPU": 2.0}, [{"Resources": {"CPU": 2.0}}])[0] == 3


@pytest.mark.slow
def test_a_killed_worker_costs_its_study_one_more_attempt_and_nothing_else(studies, tmp_path):
    out, marks = tmp_path / "out", tmp_path / "marks"
    run = dying_runner(marks, {"b": 1, "d": 5})  # b's first worker dies; d kills every worker it gets
    result = cohort.run_cohort(studies, out, run, {}, dispatch=ray_dispatch(POOL, run))
    rows = {r["study_id"]: r for r in result.rows}
    assert [rows[s]["status"] for s in "abcd"] == ["ok", "ok", "ok", "failed"]
    assert rows["b"]["attempts"] == 2 and rows["a"]["attempts"] == rows["c"]["attempts"] == 1
    assert rows["d"]["attempts"] == POOL.max_attempts and "died 3 times" in rows["d"]["error"]
    assert len(list((marks / "b").iterdir())) == 2  # two different worker processes ran it
    for sid in "abc":  # complete, exactly once
        assert sorted(p.name for p in (out / sid).iterdir()) == ["first.txt", "second.txt"]
    assert not (out / "d").exists()
    assert _hidden_leftovers(out) == []
    assert not ray.is_initialized()  # the local instance it started is stopped
    # the table and the state are the driver's: a re-run reuses a, b, c and tries d again
    assert {sid: r["status"] for sid, r in _rows(out).items()} == {"a": "ok", "b": "ok", "c": "ok", "d": "failed"}
    again = cohort.run_cohort(studies, out, run, {}, dispatch=ray_dispatch(POOL, run))
    assert [r.get("reused") for r in again.rows] == [True, True, True, False]


@pytest.mark.slow
def test_batch_on_ray_survives_a_worker_killed_mid_study(tmp_path):
    # Two copies of the demo study on 2 actors; while a study is being written its worker is killed
    # from outside. Both studies end complete, with a single run's files and masks.
    psutil = pytest.importorskip("psutil")
    src = tmp_path / "src"
    for sid in ("s1", "s2"):
        shutil.copytree(DEMO_STUDY, src / sid)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_worker_mid_study():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            partial = [p for p in out.glob(".*.partial-*") if any(p.rglob("*.nii.gz"))] if out.exists() else []
            workers = [p for p in psutil.process_iter(["pid", "cmdline"])
                       if "ray::StudyWorker.run" in " ".join(p.info["cmdline"] or [])]
            if partial and workers:
                os.kill(workers[0].info["pid"], signal.SIGKILL)
                killed.append(workers[0].info["pid"])
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker_mid_study, daemon=True)
    killer.start()
    args = ["--mode", "enhanced_liver", "--split_portal_hepatic", "-m", str(MODELS)]
    result = subprocess.run([str(BATCH), "-i", str(src), "-o", str(out), *args, "--no_progress", "--ray", "auto",
                             "--ray_workers", "2", "--ray_cpus_per_worker", "1"],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path,
                            # Ray's own memory monitor kills workers when the machine runs short (another
                            # job beside the suite once made a study need 3 attempts): only this test's
                            # kill should count here.
                            env={**os.environ, "RAY_memory_monitor_refresh_ms": "0"})
    killer.join(timeout=5)
    assert result.returncode == 0, result.stderr[-3000:]
    assert killed, "no worker was seen writing a study"
    rows = _rows(out)
    assert [rows[s]["status"] for s in ("s1", "s2")] == ["ok", "ok"]
    assert sorted(int(rows[s]["attempts"]) for s in rows) == [1, 2]
    single = tmp_path / "single"
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "TotalSegmentatorEnhanced"), "-i", str(DEMO_STUDY), "-o",
                           str(single), *args, "-q"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in single.iterdir())
    for sid in ("s1", "s2"):
        assert sorted(p.name for p in (out / sid).iterdir()) == names
        for mask in ("portal_vein_branches.nii.gz", "hepatic_veins.nii.gz"):
            assert np.array_equal(np.asanyarray(nib.load(out / sid / mask).dataobj),
                                  np.asanyarray(nib.load(single / mask).dataobj)), (sid, mask)
    assert _hidden_leftovers(out) == []
    assert not [p for p in psutil.process_iter(["cmdline"])
                if "ray::StudyWorker" in " ".join(p.info["cmdline"] or [])]  # no actor outlives the cohort


def test_an_unreachable_cluster_is_one_clear_error_before_anything_is_written(studies, tmp_path, capsys):
    from livervessels import cli

    out = tmp_path / "out"
    src = str(studies[0].path.parent)
    assert cli.batch_main(["-i", src, "-o", str(out), "-ta", "demo_liver", "-m", str(MODELS),
                           "--ray", "127.0.0.1:1"]) == 2
    assert cli.batch_main(["-i", src, "-o", str(out), "-ta", "demo_liver", "-m", str(MODELS),
                           "--ray", "headnode"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: cannot reach the Ray cluster at 127.0.0.1:1") and "ray start --head" in err[0]
    assert "HOST:6379" in err[1]
    assert not out.exists()


@pytest.mark.slow
def test_with_several_gpus_each_worker_has_its_own(studies, tmp_path):
    # A Ray node that says it has 2 GPUs (logical resources; no CUDA needed): one actor per GPU,
    # each seeing only its own device, so "gpu" inside a worker is that worker's GPU.
    def run_study(loaded, folder):
        import os

        folder.mkdir(parents=True)
        (folder / "gpu.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", ""))

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = cohort.run_cohort(studies, tmp_path / "out", run_study, {},
                                   dispatch=ray_dispatch(RayPool("auto", cpus_per_worker=1), run_study))
    finally:
        ray.shutdown()
    assert all(r["status"] == "ok" for r in result.rows)
    seen = {(tmp_path / "out" / r["study_id"] / "gpu.txt").read_text() for r in result.rows}
    assert seen == {"0", "1"}


def test_a_local_cohort_uses_every_gpu_only_when_the_device_allows(monkeypatch):
    import torch

    from livervessels import api

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert api._gpus_for_cohort(None) == api._gpus_for_cohort("gpu") == 4
    assert api._gpus_for_cohort("cpu") == api._gpus_for_cohort("gpu:1") == 0


@pytest.mark.slow
def test_ctrl_c_stops_every_actor_keeps_the_rows_so_far_and_leaves_nothing_half_written(studies, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"

    def slow_run(loaded, folder):
        import time as t

        folder.mkdir(parents=True)
        (folder / "first.txt").write_text("")
        t.sleep(0.5 if folder.name == "a" else 30)  # the others are mid-study when Ctrl-C comes
        (folder / "second.txt").write_text("")

    def interrupt_after_first(done, total, failed, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cohort.run_cohort(studies, out, slow_run, {}, progress=interrupt_after_first,
                          dispatch=ray_dispatch(POOL, slow_run))
    assert list(_rows(out)) == ["a"]
    assert sorted(p.name for p in (out / "a").iterdir()) == ["first.txt", "second.txt"]
    assert _hidden_leftovers(out) == [] and not (out / "b").exists()
    assert not ray.is_initialized()
    assert not [p for p in psutil.process_iter(["cmdline"])
                if "ray::StudyWorker" in " ".join(p.info["cmdline"] or [])]
