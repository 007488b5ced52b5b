"""Shared fixtures: phantom studies written as DICOM, the bundled demo model, the real example CT."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from livervessels.synthetic.phantom import make_phantom
from livervessels.synthetic.write_series import write_image_series

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEMO_STUDY = ROOT / "demo" / "study"
# the demo model's classes, in label order
DEMO_CLASSES = ["liver", "inferior_vena_cava", "portal_vein_and_splenic_vein", "liver_vessels"]
REAL_DATA = (ROOT.parent / "shared" / "data" / "totalseg_example").resolve()
ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(items: list) -> None:
    """Under a mutant (scripts/mutation.sh): quick tests first. mutmut runs a mutant's tests in no
    particular order and stops at the first failure, and the recheck runs a whole test file, slow
    phantom tests first; a mutant that a quick hand-made test kills should not wait for them.
    Tests that need no module- or session-wide fixture come first (such fixtures, a dense phantom
    and its split or a served study, take 10-60 s to set up, and mutmut's time limits count test
    calls only), each group by the call durations of mutmut's last coverage pass where it left them."""
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        durations = {}

    def shared_setup(item) -> bool:
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        return any(d.scope in ("module", "session") and d.baseid.startswith("tests")
                   for fixture_defs in defs.values() for d in fixture_defs)

    items.sort(key=lambda item: (shared_setup(item), durations.get(item.nodeid, 0.0)))  # stable


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (REAL_DATA / "ct_dicom").is_dir():
        pytest.skip(f"real example CT not present at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def phantom():
    return make_phantom(seed=11)


@pytest.fixture(scope="session")
def small_phantom():
    """A coarse phantom: fast to write and to segment."""
    return make_phantom(seed=5, shape=(96, 96, 40), spacing=(2.5, 2.5, 4.0))


@pytest.fixture
def write_series(tmp_path):
    """write_series(array, affine, subdir, **kw) -> folder, under this test's tmp_path."""

    def _write(array, affine, subdir="ct", **kw) -> Path:
        folder = tmp_path / "in" / subdir
        write_image_series(array, affine, folder, **kw)
        return folder

    return _write


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def run_app(input_dir: Path, output_dir: Path, models: Path = MODELS, timeout: int = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """`python app -i IN -o OUT -m MODELS` as a user runs it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "app"), "-i", str(input_dir), "-o", str(output_dir), "-m", str(models)],
        capture_output=True, text=True, timeout=timeout, cwd=output_dir.parent, env={**os.environ, **(env or {})},
    )


def nifti_voxels(path: Path) -> np.ndarray:
    """A NIfTI file's voxels as stored (no reorientation)."""
    import nibabel as nib

    return np.asanyarray(nib.load(path).dataobj)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else float(2 * np.logical_and(a, b).sum() / s)


@pytest.fixture(scope="session")
def dciodvfy() -> str:
    """dicom3tools' DICOM validator; missing fails under CI (the setup installs it) and skips elsewhere."""
    import shutil

    tool = shutil.which("dciodvfy")
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy (Debian dicom3tools) is not installed; scripts/setup.sh installs it")
        pytest.skip("dciodvfy not installed (apt-get install dicom3tools)")
    return tool


def dciodvfy_errors(tool: str, path) -> list[str]:
    """The error lines dciodvfy reports for a file (warnings aside)."""
    result = subprocess.run([tool, str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="session")
def demo_app_output(tmp_path_factory) -> Path:
    """The app's outputs for the bundled demo study (run once per test session)."""
    out = tmp_path_factory.mktemp("demo_app") / "out"
    result = run_app(DEMO_STUDY, out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def network_memo_store() -> dict:
    """The labels conftest's network_memo keeps for one test module, and its counts."""
    return {"labels": {}, "runs": 0, "reused": 0}


@pytest.fixture
def network_memo(network_memo_store, monkeypatch):
    """Within one test module, the network runs once per distinct input: a second run of an identical
    image (same model, settings, voxels and spacing) in a test using this fixture gets the first
    run's labels back.

    For end-to-end suites whose cases differ only in how the same scan is stored (encodings, file
    names, missing attributes): what they test is reading, checks and outputs, and the network is
    deterministic (tests/test_pipeline.py checks that in a test without the memo). A case whose
    image differs at all (a bug in reading, say) misses the memo and runs the network. Returns the
    module's store with its counts ("runs", "reused").
    """
    import hashlib

    from livervessels import nnunet_runner

    real = nnunet_runner.predict_labels
    store = network_memo_store

    def predict_labels(model, image_xyz, spacing_xyz):
        image = np.ascontiguousarray(image_xyz)
        key = (str(model.folder), model.checkpoint_sha256, model.settings, str(model.device), model.precision,
               image.dtype.str, image.shape, tuple(float(s) for s in spacing_xyz),
               hashlib.sha256(image.tobytes()).hexdigest())
        if key in store["labels"]:
            store["reused"] += 1
        else:
            store["runs"] += 1
            store["labels"][key] = real(model, image_xyz, spacing_xyz)
        return store["labels"][key].copy()

    monkeypatch.setattr(nnunet_runner, "predict_labels", predict_labels)
    return store
