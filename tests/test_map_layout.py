"""The MAP as holoscan-cli's packager lays it out (scripts/map_layout.py): names, model policy, a run.

The packager puts every folder under `--add` on PYTHONPATH, so each module of the project there is
importable by its bare name and can hide a standard-library or installed module of that name
(livervessels/outputs/statistics.py once hid `statistics`). The layout is rebuilt with the
packager's own code; only the Docker build is skipped.
"""
from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEMO_STUDY, MODELS, ROOT


@pytest.fixture(scope="module")
def map_root(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("map") / "root"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "map_layout.py"), str(root),
                             "--models", str(MODELS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads((root / "map_run.json").read_text())


def _map_env(run: dict, **extra: str) -> dict[str, str]:
    """This machine's environment with the MAP's variables: its PYTHONPATH replaces ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HOLOSCAN_", "LIVERVESSELS_")) and k != "PYTHONPATH"}
    return {**env, **run["env"], **extra}


def _command(run: dict) -> list[str]:
    # the MAP's python3 has the requirements installed; here that is this environment's interpreter
    return [sys.executable if run["command"][0].startswith("python") else run["command"][0], *run["command"][1:]]


def test_the_layout_is_the_packagers(map_root):
    root, run = map_root
    assert run["command"][-1] == str(root / "opt/holoscan/app")
    assert (root / "opt/holoscan/app/__main__.py").is_file()
    assert (root / "opt/holoscan/lib/livervessels/pipeline.py").is_file()
    demo = root / "opt/holoscan/models/Dataset990_LiverVesselsDemo"
    assert (demo / "nnUNetTrainer__nnUNetPlans__3d_fullres/plans.json").is_file()
    pkg = json.loads(Path(run["env"]["HOLOSCAN_PKG_MANIFEST_PATH"]).read_text())
    assert pkg["models"] and pkg["resources"]["memory"]
    # every folder of the package is on PYTHONPATH, as the packager's Dockerfile sets it
    lib = root / "opt/holoscan/lib"
    folders = {str(p) for p in lib.rglob("*") if p.is_dir()} | {str(lib)}
    assert folders == set(run["pythonpath"])


def test_no_project_module_on_the_maps_pythonpath_shadows_another_module(map_root):
    _, run = map_root
    ours = {name for name, dists in metadata.packages_distributions().items() if "livervessels" in dists}
    others = (set(sys.stdlib_module_names)
              | {name for name, dists in metadata.packages_distributions().items() if "livervessels" not in dists}
              | {m.name for m in pkgutil.iter_modules([p for p in sys.path if p.endswith("site-packages")])}) - ours
    clashes = [f"{folder}/{m.name}" for folder in run["pythonpath"] for m in pkgutil.iter_modules([folder])
               if m.name in others]
    assert clashes == [], f"rename these: each hides a standard-library or installed module in the MAP: {clashes}"


def test_the_standard_library_and_the_project_resolve_in_the_maps_environment(map_root, tmp_path):
    root, run = map_root
    probe = ("import statistics, livervessels.pipeline, operators; statistics.mean([1, 2]);"
             "print(livervessels.pipeline.__file__); print(operators.__file__)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=run["workdir"],
                            env=_map_env(run))
    assert result.returncode == 0, result.stderr[-2000:]
    assert all(Path(f).is_relative_to(root / "opt/holoscan/lib") for f in result.stdout.split())


def test_the_map_refuses_the_demo_model(map_root, tmp_path):
    root, run = map_root
    out = tmp_path / "out"
    result = subprocess.run([*_command(run), "-i", str(DEMO_STUDY), "-o", str(out)], capture_output=True, text=True,
                            cwd=run["workdir"], env=_map_env(run), timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(errors) == 1 and "demo model may not be used here" in errors[0]
    assert "MONAI Application Package" in errors[0] and "package_map.sh --weights" in errors[0]
    assert not out.exists()


@pytest.mark.slow
def test_the_app_runs_end_to_end_in_the_map_layout(map_root):
    root, run = map_root
    input_dir, output_dir = Path(run["env"]["HOLOSCAN_INPUT_PATH"]), Path(run["env"]["HOLOSCAN_OUTPUT_PATH"])
    shutil.rmtree(input_dir)
    shutil.copytree(DEMO_STUDY, input_dir)
    shutil.rmtree(output_dir)
    # as an orchestrator runs a MAP: no arguments, paths from HOLOSCAN_*; the demo model allowed for this trial
    result = subprocess.run(_command(run), capture_output=True, text=True, cwd=run["workdir"],
                            env=_map_env(run, LIVERVESSELS_ALLOW_DEMO_MODEL="1"), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert {"segmentations.dcm", "qc.json", "statistics.json", "portal_vein_branches.nii.gz"} <= \
        {p.name for p in output_dir.iterdir()}
    qc = json.loads((output_dir / "qc.json").read_text())
    assert qc["models"]["plan"] == "demo"
    assert all(Path(f).is_relative_to(root / "opt/holoscan/models") for f in _checkpoint_folders(qc))


def _checkpoint_folders(qc: dict) -> list[str]:
    found = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("folder", "model_folder") and isinstance(v, str):
                    found.append(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(qc.get("models", {}))
    assert found, "qc.json names no model folder"
    return found
