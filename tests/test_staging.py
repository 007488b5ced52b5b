"""Staging (livervessels/outputs/staging.py): outputs appear whole or not at all; one run per output."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from livervessels import cli
from livervessels.errors import InputError
from livervessels.outputs import staging
from livervessels.outputs.staging import OutputLock, staged_output

from conftest import DEMO_STUDY, MODELS, run_app


def test_staged_output_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_output(out) as staging:
            (staging / "a.nii.gz").write_text("half")
            raise RuntimeError("failed while writing")
    assert list(tmp_path.iterdir()) == []
    with staged_output(out) as staging:
        (staging / "a.nii.gz").write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (out / "a.nii.gz").read_text() == "whole"


def test_a_second_run_into_the_same_output_is_refused_and_the_lock_goes_with_the_first(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out) as first:
        with pytest.raises(InputError, match=r"another run \(process \d+\) is writing to .*out; wait for it"):
            OutputLock(out).__enter__()
        assert first.path.exists()
    assert not first.path.exists()
    with OutputLock(out):  # free again
        pass


def test_command_line_refuses_an_output_another_run_is_writing(tmp_path, capsys):
    out = tmp_path / "out"
    with OutputLock(out):
        rc = cli.totalsegmentator_main(["-i", str(DEMO_STUDY), "-o", str(out), "-ta", "demo_liver", "-m", str(MODELS),
                                        "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "another run" in err and err.count("error:") == 1
    assert not out.exists()


def test_app_refuses_an_output_another_run_is_writing(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):
        result = run_app(DEMO_STUDY, out, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: another run" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_an_output_without_free_space_is_refused_before_any_work(tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(staging.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=(staging.MIN_FREE_MB - 1) * 2**20))
    with pytest.raises(InputError, match=r"only \d+ MB free at .*: free some space or choose another output path$"):
        staging.check_output_folder(tmp_path / "out")
    monkeypatch.setattr(staging.shutil, "disk_usage", lambda p: real(p)._replace(free=staging.MIN_FREE_MB * 2**20))
    assert staging.check_output_folder(tmp_path / "out") == (tmp_path / "out").absolute()


def test_an_output_that_is_a_file_or_lies_under_one_is_refused_with_what_to_do(tmp_path):
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    with pytest.raises(InputError, match=r"results exists and is not a folder; give a folder path"):
        staging.check_output_folder(a_file)
    with pytest.raises(InputError, match=r"out cannot be created: .*results is a file, not a folder"):
        staging.check_output_folder(a_file / "sub" / "out")


def test_an_output_needs_a_folder_it_may_write_and_enter(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(staging.os, "access", lambda path, mode: asked.append((Path(path), mode)) or False)
    with pytest.raises(InputError, match=r"output folder .* is not writable; choose another output path or fix"):
        staging.check_output_folder(tmp_path / "new" / "out")  # the nearest existing folder is checked
    assert asked == [(tmp_path, os.W_OK | os.X_OK)]


def test_the_lock_is_a_readable_file_beside_the_output_created_with_missing_parents(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with OutputLock(out) as lock:
        assert lock.path == tmp_path / "a" / "b" / ".out.lock"
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o644 & ~_umask()
        assert lock.path.read_text() == str(os.getpid())
    assert not lock.path.exists()
    OutputLock(out).release()  # never entered: nothing to release, no error


def test_beside_a_read_only_parent_the_lock_goes_inside_an_existing_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_open = os.open

    def no_write_beside(path, flags, mode=0o777):
        if Path(path).parent == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(staging.os, "open", no_write_beside)
    with pytest.raises(InputError, match=r"cannot write beside .*out \(.* is not writable\); choose another output"):
        OutputLock(out).__enter__()
    out.mkdir()
    with OutputLock(out) as lock:
        assert lock.path == out / ".out.lock" and lock.path.read_text() == str(os.getpid())
    assert list(out.iterdir()) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
