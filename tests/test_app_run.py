"""app/run.py: the `python app` entry point's exit codes, error line and clean-up.

Its helpers run in-process (a stand-in application for _run_app); main() runs as a user runs it,
in its own process, for input that fails before the graph starts.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.deploy.core import parse_args

from app.run import _output_argument, _root_cause, _run_app
from livervessels.errors import InputError

from conftest import MODELS, ROOT


def _chained(inner: BaseException, how: str) -> BaseException:
    """inner wrapped twice, as a framework re-raises it: by `raise ... from` or inside `except`."""
    try:
        try:
            try:
                raise inner
            except BaseException as exc:
                if how == "cause":
                    raise RuntimeError("operator compute failed") from exc
                raise RuntimeError("operator compute failed")
        except RuntimeError as exc:
            raise RuntimeError("graph execution failed") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize("how", ["cause", "context"])
def test_root_cause_finds_the_input_error_behind_the_wrappers(how):
    inner = InputError("slice(s) missing")
    outer = _chained(inner, how)
    assert outer is not inner and _root_cause(outer) is inner
    assert _root_cause(inner) is inner


def test_root_cause_without_an_input_error_ends_even_on_a_cycle():
    assert not isinstance(_root_cause(_chained(ValueError("bug"), "cause")), InputError)
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a  # a loop: must not spin forever
    assert not isinstance(_root_cause(a), InputError)


@pytest.fixture
def no_output_env(monkeypatch):
    monkeypatch.delenv("HOLOSCAN_OUTPUT_PATH", raising=False)


@pytest.mark.parametrize("form", [
    ["-o", "{out}"],
    ["--output", "{out}"],
    ["--output={out}"],
    ["-i", "{inp}", "-o", "{out}", "-m", "{inp}"],
    ["-o", "{out}", "-i", "{inp}"],
    ["-o{out}"],
    ["--out", "{out}"],
], ids=["o", "output", "output=", "among-others", "o-before-i", "o-attached", "out-abbreviated"])
def test_output_argument_is_the_folder_the_sdk_reads(form, tmp_path, monkeypatch, no_output_env):
    monkeypatch.chdir(tmp_path)
    argv = ["app", "-i", "in"] + [a.format(out="results", inp="in") for a in form]
    (tmp_path / "in").mkdir()
    found = _output_argument(argv)
    assert found == tmp_path / "results"
    assert found == parse_args(argv).output  # what the SDK's own parser makes of the same arguments


def test_output_argument_absent_is_none_or_the_environment(tmp_path, monkeypatch, no_output_env):
    assert _output_argument(["app", "-i", "in", "-m", "models"]) is None
    assert _output_argument(["app", "-i", "in", "-o"]) is None  # no value after -o
    monkeypatch.setenv("HOLOSCAN_OUTPUT_PATH", str(tmp_path / "env-out"))
    assert _output_argument(["app", "-i", "in"]) == tmp_path / "env-out"
    assert _output_argument(["app", "-o", str(tmp_path / "arg-out")]) == tmp_path / "arg-out"  # the option wins


# ---- _run_app with a stand-in application ----------------------------------------------------------

class _Lock:
    def __init__(self):
        self.released = 0

    def release(self):
        self.released += 1


class _App:
    """What _run_app uses of LiverVesselsApp: run(), committed, staging_dir, output_lock, failure."""

    def __init__(self, staging_dir: Path, raises: BaseException | None = None, commits: bool = False,
                 failure: BaseException | None = None):
        self.staging_dir, self.output_lock, self.committed, self.failure = staging_dir, _Lock(), False, None
        self._raises, self._commits, self._failure = raises, commits, failure

    def run(self):
        if self._failure is not None:  # refusal.py kept it and stopped the graph: run() returns
            self.failure = self._failure
        if self._raises is not None:
            raise self._raises
        self.committed = self._commits


@pytest.fixture
def staged(tmp_path) -> Path:
    folder = tmp_path / ".out.partial-1"
    folder.mkdir()
    (folder / "qc.json").write_text("{}")
    return folder


@pytest.mark.parametrize("kw,code,line", [
    ({"raises": _chained(InputError("no usable CT series"), "cause")}, 2, "error: no usable CT series"),
    ({"failure": InputError("slice(s) missing at 12")}, 2, "error: slice(s) missing at 12"),
    ({"raises": RuntimeError("CUDA out of memory")}, 1, "error: internal failure: CUDA out of memory"),
    ({}, 1, "error: internal failure: the application stopped before writing its outputs (see the log above)"),
])
def test_a_failed_run_exits_with_one_error_line_and_removes_its_staging(kw, code, line, staged, capsys):
    app = _App(staged, **kw)
    assert _run_app(app) == code
    assert capsys.readouterr().err.splitlines() == [line]
    assert not staged.exists() and app.output_lock.released == 1


def test_a_committed_run_exits_0_silently_and_keeps_what_it_published(staged, capsys):
    app = _App(staged, commits=True)
    assert _run_app(app) == 0
    assert capsys.readouterr().err == ""
    assert (staged / "qc.json").is_file() and app.output_lock.released == 1


@pytest.mark.parametrize("code,expected", [(2, 2), ("usage: app -i IN", 2), (0, 0)])
def test_argument_errors_keep_argparse_exit_code(code, expected, staged, capsys):
    app = _App(staged, raises=SystemExit(code))
    assert _run_app(app) == expected
    assert capsys.readouterr().err == ""  # argparse printed its own message already
    assert not staged.exists() and app.output_lock.released == 1


# ---- main() as `python app` runs it ------------------------------------------------------------------

def _app(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    paths = {"HOLOSCAN_INPUT_PATH", "HOLOSCAN_OUTPUT_PATH", "HOLOSCAN_MODEL_PATH"}  # only what is given here
    clean = {k: v for k, v in os.environ.items() if k not in paths}
    return subprocess.run([sys.executable, str(ROOT / "app"), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**clean, **(env or {})})


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if "error:" in line]


def test_missing_input_folder_exits_2_and_removes_the_output_and_parents_the_sdk_made(tmp_path):
    missing, out = tmp_path / "no-such-study", tmp_path / "results" / "case-1" / "out"
    # -o first: the SDK's parser creates the output folder, parents included, before it rejects the input
    result = _app("-o", str(out), "-i", str(missing), "-m", str(MODELS), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = _error_lines(result)
    assert len(errors) == 1 and str(missing) in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_input_from_the_environment_gets_the_apps_own_line(tmp_path):
    missing, out = tmp_path / "no-such-study", tmp_path / "out"
    result = _app("-m", str(MODELS), cwd=tmp_path,
                  env={"HOLOSCAN_INPUT_PATH": str(missing), "HOLOSCAN_OUTPUT_PATH": str(out)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: input folder {missing} does not exist"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_input_that_is_a_file_exits_2_with_one_line_and_creates_nothing(tmp_path):
    study = tmp_path / "study.dcm"
    study.write_bytes(b"\x00" * 132 + b"DICM")
    out = tmp_path / "out"
    result = _app("-i", str(study), "-o", str(out), "-m", str(MODELS), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = _error_lines(result)
    assert len(errors) == 1 and errors[0] == (f"error: input {study} is not a folder; pass the folder that "
                                              "holds the DICOM study"), result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.dcm"]
