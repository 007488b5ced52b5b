"""Ctrl-C and SIGTERM: exit 130 / 143 within seconds, an `error:` line, nothing left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from conftest import DEMO_STUDY, MODELS, ROOT

BIN = os.path.dirname(sys.executable)


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int, float, str]:
    t = time.perf_counter()
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, time.perf_counter() - t, err


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_command_line_interrupted_mid_run_leaves_nothing(tmp_path, signum, code):
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(DEMO_STUDY.rglob("*")):
            if f.is_file():
                zf.write(f, f"study/{f.relative_to(DEMO_STUDY)}")
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    out_parent = tmp_path / "results"
    out_parent.mkdir()
    proc = subprocess.Popen([os.path.join(BIN, "TotalSegmentatorEnhanced"), "-i", str(archive),
                             "-o", str(out_parent / "out"), "--mode", "enhanced_liver", "--split_portal_hepatic",
                             "--statistics", "--preview", "-m", str(MODELS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(system_tmp)})
    deadline = time.time() + 120
    while not list(system_tmp.glob("livervessels-zip-*")) and time.time() < deadline:  # unpacked: running
        time.sleep(0.1)
    time.sleep(2.0)
    proc.send_signal(signum)
    rc, seconds, err = _wait(proc, 30)
    assert rc == code, err[-2000:]
    assert seconds < 5.0
    assert err.count("error:") == 1 and "interrupted" in err
    assert list(out_parent.iterdir()) == []  # no output, no .partial-* staging folder
    assert list(system_tmp.glob("livervessels-zip-*")) == []


def test_watchdog_ends_a_run_stuck_in_c_code_and_removes_its_temporary_folders(tmp_path):
    script = textwrap.dedent(f"""
        import sys, tempfile
        from pathlib import Path
        import numpy as np
        sys.path.insert(0, {str(ROOT)!r})
        from livervessels import interrupts
        interrupts.install()
        folder = Path(tempfile.mkdtemp(dir={str(tmp_path)!r}))
        interrupts.register(folder)
        a = np.ones((7000, 7000))  # before the print: filling it is Python-interruptible, the product is not
        print(folder, flush=True)
        for _ in range(20):
            a @ a  # seconds inside BLAS: Python's own handler cannot run until it returns
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    folder = proc.stdout.readline().strip()
    assert os.path.isdir(folder)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    rc, seconds, err = _wait(proc, 60)
    assert rc == 143 and seconds < 5.0, (rc, seconds, err[-2000:])
    assert "error: interrupted by SIGTERM" in err
    assert not os.path.exists(folder)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_app_under_holoscan_interrupted_mid_run_leaves_nothing(tmp_path, signum):
    """Holoscan takes over the signals when the graph starts and force-exits 3 s later (exit 1, the
    staging folder left behind); the app restores the default disposition and a guardian process
    cleans up."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(ROOT / "app"), "-i", str(DEMO_STUDY), "-o", str(out),
                             "-m", str(MODELS)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    deadline = time.time() + 120
    while not list(out.glob(".out.partial-*")) and time.time() < deadline:  # the graph is running
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signum)
    rc, seconds, err = _wait(proc, 30)
    assert rc in (-signum, 128 + signum), err[-2000:]  # killed by the signal: the shell's 130 / 143
    assert seconds < 5.0
    time.sleep(1.5)  # the guardian acts once the process is gone
    assert not out.exists()  # the SDK created it for this run; nothing stays
    assert "error: the run was stopped" in err or "error: interrupted" in err
