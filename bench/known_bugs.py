"""Put known bugs back, one at a time, and check that the suite catches each (a hand-written
mutation test of bugs the suite once missed).

    .venv/bin/python bench/known_bugs.py            # every bug, its tests; prints a table, writes JSON
    .venv/bin/python bench/known_bugs.py --only 1 4

Each bug is applied to a temporary copy of the tracked files (the working tree is never touched)
and the test files named for it run there, with the copy first on PYTHONPATH. A bug is "caught"
when those tests fail. Writes bench/results/known_bugs.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    what: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = [
    Bug("HU rescale intercept dropped when reading DICOM", "livervessels/dicom/volume.py",
        "* slope + intercept", "* slope", ("tests/test_dicom_input.py",)),
    Bug("portal output mask holds the hepatic veins", "livervessels/pipeline.py",
        '"portal_vein_branches": (split.labels == PORTAL)', '"portal_vein_branches": (split.labels == HEPATIC)',
        ("tests/test_cli.py",)),
    Bug("hepatic output mask holds the portal branches", "livervessels/pipeline.py",
        '"hepatic_veins": (split.labels == HEPATIC)', '"hepatic_veins": (split.labels == PORTAL)',
        ("tests/test_cli.py",)),
    Bug("hole filling in the repair switched off", "livervessels/enhancement.py",
        "    if p.fill_holes:", "    if False:", ("tests/test_enhancement.py",)),
    Bug("hepatic vein SNOMED code changed", "livervessels/outputs/structures.py",
        '("8993003", "SCT", "Hepatic vein")', '("8993004", "SCT", "Hepatic vein")', ("tests/test_outputs.py",)),
    Bug("padded box (the official tasks' crop) one voxel short", "livervessels/masks.py",
        "min(b.stop + q, int(n))", "min(b.stop + q - 1, int(n))", ("tests/test_masks.py",)),
    Bug("resampled shape rounded down", "livervessels/resample.py",
        "int(round(n * z))", "int(n * z)", ("tests/test_resample.py",)),
    Bug("superior flipped when choosing hepatic seeds at the dome", "livervessels/split_seeds.py",
        "height = idx @ superior", "height = -(idx @ superior)", ("tests/test_portal_hepatic.py",)),
]


def _copy_tree(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            (target / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name.decode())


def check(bug: Bug, timeout_s: int) -> dict:
    """Apply bug in a fresh copy, run its tests there; returns the outcome.

    Raises:
        ValueError: the code the bug replaces is no longer there (update BUGS).
    """
    with tempfile.TemporaryDirectory(prefix="known-bug-") as tmp:
        copy = Path(tmp)
        _copy_tree(copy)
        path = copy / bug.file
        text = path.read_text()
        if bug.old not in text:
            raise ValueError(f"{bug.file} no longer contains {bug.old!r}; update bench/known_bugs.py")
        path.write_text(text.replace(bug.old, bug.new, 1))
        env = {**os.environ, "PYTHONPATH": f"{copy}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        t = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *bug.tests],
                                cwd=copy, env=env, capture_output=True, text=True, timeout=timeout_s)
        summary = (result.stdout.strip().splitlines() or [""])[-1]
        return {"bug": bug.what, "file": bug.file, "caught": result.returncode != 0, "tests": list(bug.tests),
                "pytest": summary, "seconds": round(time.perf_counter() - t, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", type=int, help="bug numbers (1-based) to check")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per bug")
    args = parser.parse_args(argv)
    chosen = [(i, b) for i, b in enumerate(BUGS, 1) if not args.only or i in args.only]
    rows = []
    print("| # | bug | caught | tests | pytest |\n|---|---|---|---|---|")
    for i, bug in chosen:
        row = {"number": i, **check(bug, args.timeout)}
        rows.append(row)
        print(f"| {i} | {bug.what} | {'yes' if row['caught'] else '**no**'} | {', '.join(bug.tests)} | "
              f"{row['pytest']} |", flush=True)
    out = ROOT / "bench" / "results" / "known_bugs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["caught"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
