"""livervessels.errors and how the command lines (livervessels.cli) turn each error into its exit code:
0 success, 2 bad input (InputError, ModelNotFoundError), 4 PACS (PacsError), 1 anything else, each failure
with one `error:` line on stderr."""
from __future__ import annotations

import argparse

import pytest

from livervessels import cli, interrupts
from livervessels.errors import InputError, ModelNotFoundError, PacsError

from conftest import MODELS


@pytest.fixture(autouse=True)
def no_signal_handlers(monkeypatch):
    """_run installs Ctrl-C / SIGTERM handlers and a watchdog thread; not inside the test process."""
    monkeypatch.setattr(interrupts, "install", lambda: False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="test")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _raising(exc: BaseException):
    def fn(args) -> None:
        raise exc

    return fn


def _one_error_line(err: str) -> str:
    """The single line on stderr (it must be exactly one, starting with 'error: ')."""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------- the error types


def test_exit_codes_of_the_error_types():
    assert InputError.exit_code == 2
    assert issubclass(ModelNotFoundError, InputError)
    assert ModelNotFoundError.exit_code == 2
    assert ModelNotFoundError("x").exit_code == 2
    assert PacsError.exit_code == 4
    assert PacsError("x").exit_code == 4


def test_pacs_error_is_not_an_input_error():
    # _run catches InputError first: a PacsError that were one would exit 2, not 4
    assert not issubclass(PacsError, InputError)
    assert not issubclass(InputError, PacsError)
    assert issubclass(InputError, Exception) and issubclass(PacsError, Exception)


# ---------------------------------------------------------------- cli._run


def test_success_exits_0_and_prints_nothing(capsys):
    seen = []
    assert cli._run(seen.append, [], _parser()) == 0
    assert len(seen) == 1 and seen[0].verbose is False  # the function gets the parsed arguments
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("exc,code", [
    (InputError("input /nowhere.nii.gz does not exist; give a NIfTI file"), 2),
    (ModelNotFoundError("weights for demo_liver not found: expected Dataset990"), 2),
    (PacsError("http://pacs/dicom-web refused seg.dcm (HTTP 404 Not Found); the outputs stay in /out"), 4),
])
@pytest.mark.parametrize("verbose", [False, True])
def test_known_errors_exit_with_their_code_and_one_error_line(capsys, exc, code, verbose):
    rc = cli._run(_raising(exc), ["-v"] if verbose else [], _parser())
    assert rc == code
    captured = capsys.readouterr()
    assert _one_error_line(captured.err) == f"error: {exc}"  # no traceback, even with --verbose
    assert captured.out == ""


def test_input_error_subclasses_exit_2():
    class SpecificInputError(InputError):
        pass

    assert cli._run(_raising(SpecificInputError("bad")), [], _parser()) == 2


def test_unexpected_exception_is_an_internal_failure_exit_1(capsys):
    rc = cli._run(_raising(ZeroDivisionError("division by zero")), [], _parser())
    assert rc == 1
    captured = capsys.readouterr()
    assert _one_error_line(captured.err) == "error: internal failure: ZeroDivisionError: division by zero"
    assert "Traceback" not in captured.err and captured.out == ""


def test_internal_failure_shows_the_traceback_only_with_verbose(capsys):
    rc = cli._run(_raising(KeyError("plans")), ["--verbose"], _parser())
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == "error: internal failure: KeyError: 'plans'"
    assert err.count("error:") == 1


def test_run_works_with_a_parser_that_has_no_verbose_option(capsys):
    # TotalSegmentator weights has -v; a parser without it must not break the failure path
    rc = cli._run(_raising(RuntimeError("boom")), [], argparse.ArgumentParser(prog="bare"))
    assert rc == 1
    assert _one_error_line(capsys.readouterr().err) == "error: internal failure: RuntimeError: boom"


# ---------------------------------------------------------------- the public entry points


@pytest.mark.parametrize("entry, missing_name, args", [
    ("totalsegmentator_main", "nowhere.nii.gz", ["-ta", "demo_liver", "-m", str(MODELS)]),
    ("enhanced_main", "no_study", ["--mode", "enhanced_liver", "-m", str(MODELS)]),
])
def test_a_missing_input_exits_2_with_one_line_and_no_output(tmp_path, capsys, entry, missing_name, args):
    missing = tmp_path / missing_name
    rc = getattr(cli, entry)(["-i", str(missing), "-o", str(tmp_path / "out"), *args, "-q"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "does not exist" in line
    assert not (tmp_path / "out").exists()


def test_batch_missing_cohort_exits_2(tmp_path, capsys):
    missing = tmp_path / "no_cohort"
    rc = cli.batch_main(["-i", str(missing), "-o", str(tmp_path / "out"), "-ta", "demo_liver", "-q",
                         "--no_progress"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"cohort input {missing} does not exist" in line


def test_weights_missing_zip_exits_2(tmp_path, capsys):
    missing = tmp_path / "Dataset008_HepaticVessel.zip"
    rc = cli.totalsegmentator_main(["weights", "--zip", str(missing), "--dest", str(tmp_path / "results"), "-q"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(missing) in line and "does not exist" in line


def test_enhanced_pacs_failure_exits_4(tmp_path, monkeypatch, capsys):
    message = "http://pacs:8042/dicom-web could not be reached to send segmentations.dcm; the outputs stay on disk"

    def unreachable(*args, **kwargs):
        raise PacsError(message)

    monkeypatch.setattr("livervessels.api.enhance_liver_vessels", unreachable)
    rc = cli.enhanced_main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "--mode", "enhanced_liver",
                            "--send_to", "http://pacs:8042/dicom-web", "-q"])
    assert rc == 4
    assert _one_error_line(capsys.readouterr().err) == f"error: {message}"


def test_batch_internal_failure_exits_1(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr("livervessels.api.run_cohort", broken)
    rc = cli.batch_main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-q", "--no_progress"])
    assert rc == 1
    assert _one_error_line(capsys.readouterr().err) == "error: internal failure: RuntimeError: simulated crash"


def test_batch_with_failed_studies_exits_3_without_an_error_line(tmp_path, monkeypatch, capsys):
    class Result:
        rows = [{"study_id": "a"}, {"study_id": "b"}]
        failed = 1
        files = [tmp_path / "out" / "cohort.csv"]

    monkeypatch.setattr("livervessels.api.run_cohort", lambda *a, **k: Result())
    rc = cli.batch_main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-q", "--no_progress"])
    assert rc == 3
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("1 of 2 studies succeeded")
