"""Bad input is refused on every entry point: one `error:` line saying what is wrong and what to do,
exit 2, and nothing written (the output folder, temporary folders and lock files as before).

The cases are built small from the test phantom (reliability_cases.py). The command lines run
in-process (one model load is reused by the cases that reach the model); the app's entry point runs
in a process of its own, for the DICOM folders it accepts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from livervessels import cli
from livervessels.api import enhance_liver_vessels, totalsegmentator
from livervessels.errors import InputError
from livervessels.outputs import staging

from conftest import MODELS
from reliability_cases import REFUSALS, Case, demo_ct

SENTINEL = "earlier-result.txt"


def _args(command: str, case: Case, source: Path, extra: list[str], out: Path) -> list[str]:
    models = [] if "-m" in extra else ["-m", str(MODELS)]
    if command == "TotalSegmentator":
        return ["-i", str(source), "-o", str(out), "-ta", "demo_liver", "-q", *models, *extra]
    return ["-i", str(source), "-o", str(out), "--mode", "enhanced_liver", "-q", *models, *extra]


def _main(command: str):
    return cli.totalsegmentator_main if command == "TotalSegmentator" else cli.enhanced_main


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """Temporary folders (zip extraction) go here, so the test sees whether any is left behind."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _earlier_output(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    (out / SENTINEL).write_text("an earlier run's result")
    return out


def _assert_untouched(out: Path, private_tmp: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == [SENTINEL]
    assert (out / SENTINEL).read_text() == "an earlier run's result"
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    assert leftovers == [], f"staging or lock files left: {leftovers}"
    # torch keeps its compile cache there on import: not ours
    assert [p.name for p in private_tmp.iterdir() if not p.name.startswith("torchinductor")] == []


COMMAND_CASES = [pytest.param(case, command, id=f"{case.name}-{command}") for case in REFUSALS
                 for command in case.commands]


@pytest.mark.parametrize("case,command", COMMAND_CASES)
def test_command_line_refuses_with_one_line_and_writes_nothing(case, command, small_phantom, tmp_path,
                                                               private_tmp, capsys):
    source, extra = case.build(tmp_path, small_phantom)
    out = _earlier_output(tmp_path)
    capsys.readouterr()
    rc = _main(command)(_args(command, case, source, extra, out))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == case.exit_code, err
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert case.message in lines[0], err
    assert "Traceback" not in err and "internal failure" not in err
    _assert_untouched(out, private_tmp)


API_CASES = [case for case in REFUSALS if "TotalSegmentator" in case.commands and not case.name.startswith("unknown")
             and case.name not in ("seg_from_nifti",)]


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.name)
def test_python_api_raises_input_error_and_writes_nothing(case, small_phantom, tmp_path, private_tmp):
    source, extra = case.build(tmp_path, small_phantom)
    out = _earlier_output(tmp_path)
    models = [extra[extra.index("-m") + 1]] if "-m" in extra else [str(MODELS)]
    with pytest.raises(InputError) as raised:
        if case.commands == ("TotalSegmentatorEnhanced",):
            enhance_liver_vessels(source, out, quiet=True, model_dirs=models)
        else:
            totalsegmentator(source, out, task="demo_liver", quiet=True, model_dirs=models)
    assert case.message in str(raised.value)
    _assert_untouched(out, private_tmp)


# the app reads DICOM folders; a single file is refused there too
APP_CASES = [case for case in REFUSALS if case.kind == "dicom" or case.name == "single_dicom_file"]


@pytest.fixture(scope="module")
def app_refusals(small_phantom, tmp_path_factory) -> dict[str, tuple[int, str, Path]]:
    """Each app case's exit code, stderr and (absent) output folder. The app's entry point runs every
    case in one process of its own (app_cases_driver.py): a fresh application per case, the import
    paid once; `python app` in a process per run is in test_app_run.py and test_app.py."""
    runs, folders = [], {}
    for case in APP_CASES:
        folder = tmp_path_factory.mktemp(case.name)
        source, extra = case.build(folder, small_phantom)
        models = extra[extra.index("-m") + 1] if "-m" in extra else str(MODELS)
        runs.append([str(source), str(folder / "app-out"), models, str(folder / "stderr.txt")])
        folders[case.name] = folder
    listing = tmp_path_factory.mktemp("app-runs") / "runs.json"
    listing.write_text(json.dumps(runs))
    driver = Path(__file__).with_name("app_cases_driver.py")
    result = subprocess.run([sys.executable, str(driver), str(listing)], capture_output=True, text=True,
                            timeout=600, cwd=listing.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    return {case.name: (code, (folders[case.name] / "stderr.txt").read_text(), folders[case.name])
            for case, code in zip(APP_CASES, codes)}


@pytest.mark.slow
@pytest.mark.parametrize("case", APP_CASES, ids=lambda c: c.name)
def test_app_refuses_with_the_same_line_and_creates_no_output(case, app_refusals):
    returncode, stderr, folder = app_refusals[case.name]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert returncode == case.exit_code, stderr[-2000:]
    assert len(errors) == 1 and (case.app_message or case.message) in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    framework_errors = [line for line in stderr.splitlines() if line.startswith("[error]")]
    assert framework_errors == [], framework_errors  # Holoscan's own report of the exception: not shown
    out = folder / "app-out"  # the orchestrator's empty output: it must stay absent
    assert not out.exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".app-out")] == []


# ---- output problems: found before any work ------------------------------------------------------

def _run_ts(source: Path, out: Path) -> int:
    return cli.totalsegmentator_main(["-i", str(source), "-o", str(out), "-ta", "demo_liver", "-q", "-m", str(MODELS)])


def _forbid_inference(monkeypatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("inference ran although the output problem was known up front")
    monkeypatch.setattr("livervessels.api.segment", refuse)


def test_output_that_is_an_existing_file_is_refused_up_front(small_phantom, tmp_path, capsys, monkeypatch):
    source, _ = demo_ct(tmp_path, small_phantom)
    target = tmp_path / "results"
    target.write_text("a file")
    _forbid_inference(monkeypatch)
    assert _run_ts(source, target) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "a file" and sorted(p.name for p in tmp_path.iterdir()) == ["ct", "results"]


def test_unwritable_output_parent_is_refused_up_front(small_phantom, tmp_path, capsys, monkeypatch):
    source, _ = demo_ct(tmp_path, small_phantom)
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    real_access = os.access
    # root ignores permission bits: make the check see what any other user sees
    monkeypatch.setattr(staging.os, "access", lambda p, m: False if Path(p) == parent else real_access(p, m))
    _forbid_inference(monkeypatch)
    try:
        assert _run_ts(source, parent / "out") == 2
        assert "is not writable" in capsys.readouterr().err
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_output_another_run_holds_is_refused(small_phantom, tmp_path, capsys, monkeypatch):
    source, _ = demo_ct(tmp_path, small_phantom)
    out = _earlier_output(tmp_path)
    _forbid_inference(monkeypatch)
    with staging.OutputLock(out):
        assert _run_ts(source, out) == 2
    assert "another run (process" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [SENTINEL]


def test_output_without_free_space_is_refused_up_front(small_phantom, tmp_path, capsys, monkeypatch):
    source, _ = demo_ct(tmp_path, small_phantom)
    out = _earlier_output(tmp_path)
    real = shutil.disk_usage
    monkeypatch.setattr(staging.shutil, "disk_usage", lambda p: real(p)._replace(free=50 * 2**20))
    _forbid_inference(monkeypatch)
    assert _run_ts(source, out) == 2
    assert "only 50 MB free" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [SENTINEL]
