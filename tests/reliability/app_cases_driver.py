"""Runs the app's entry point (app.run.main, what `python app` calls) on several inputs in one process.

Each run gets a fresh application and its own stderr file (captured at the file descriptor, so
Holoscan's own log lines land there too). Importing the app (MONAI, Holoscan, torch) takes about
8 s per process, which for the reliability suite's refusals cost more than the runs themselves.

    python app_cases_driver.py RUNS.json   # [[input, output, models, stderr_file], ...] -> exit codes on stdout
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, as app/__main__.py does

from app.run import main  # noqa: E402


def _run(source: str, output: str, models: str, stderr_file: str) -> int:
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(stderr_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    try:
        return main(["app", "-i", source, "-o", output, "-m", models])
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


if __name__ == "__main__":
    runs = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps([_run(*run) for run in runs]))
