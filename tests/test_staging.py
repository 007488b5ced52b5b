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
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o644 & ~_umask()
    assert list(out.iterdir()) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_staging_folder_is_hidden_beside_a_new_output_and_inside_an_existing_one(tmp_path):
    from livervessels import interrupts

    new = staging.begin(tmp_path / "a" / "b" / "out")  # missing parents are made
    assert new.parent == tmp_path / "a" / "b" and new.name.startswith(".out.partial-") and new.is_dir()
    assert new in interrupts._temporary  # removed by the watchdog if the run is killed
    staging.abort(new)
    assert not new.exists() and new not in interrupts._temporary
    staging.abort(new)  # already gone: nothing to do, no error
    staging.abort(None)
    existing = tmp_path / "results"
    existing.mkdir()
    inside = staging.begin(existing)  # the same file system as the output, whatever its mounts
    assert inside.parent == existing and inside.name.startswith(".results.partial-")
    staging.abort(inside)


def test_committing_into_an_existing_output_replaces_what_the_run_wrote_and_keeps_the_rest(tmp_path):
    from livervessels import interrupts

    out = tmp_path / "out"
    (out / "meshes").mkdir(parents=True)
    (out / "meshes" / "old_mesh.stl").write_text("earlier run")
    (out / "qc.json").write_text("earlier run")
    (out / "notes.txt").write_text("the user's own file")
    (out / "statistics").write_text("a file where this run writes a folder")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not ours")
    (out / "preview").symlink_to(elsewhere, target_is_directory=True)  # a link to a folder: replaced, not followed
    work = staging.begin(out)
    (work / "meshes").mkdir()
    (work / "meshes" / "liver.stl").write_text("this run")
    (work / "qc.json").write_text("this run")
    (work / "preview").mkdir()
    (work / "preview" / "liver.png").write_text("this run")
    (work / "statistics").mkdir()
    moved = staging.commit(work, out)
    assert moved == [out / "meshes", out / "preview", out / "qc.json", out / "statistics"]
    assert sorted(p.name for p in out.iterdir()) == ["meshes", "notes.txt", "preview", "qc.json", "statistics"]
    assert (out / "statistics").is_dir()
    assert [p.name for p in (out / "meshes").iterdir()] == ["liver.stl"]  # the earlier folder replaced whole
    assert (out / "qc.json").read_text() == "this run" and (out / "notes.txt").read_text() == "the user's own file"
    assert not (out / "preview").is_symlink() and (out / "preview" / "liver.png").exists()
    assert (elsewhere / "keep.txt").read_text() == "not ours"
    assert not work.exists() and work not in interrupts._temporary


def test_committing_a_new_output_is_one_rename_and_lists_every_file(tmp_path):
    out = tmp_path / "out"
    work = staging.begin(out)
    (work / "meshes").mkdir()
    (work / "meshes" / "liver.stl").write_text("mesh")
    (work / "qc.json").write_text("{}")
    assert staging.commit(work, out) == [out / "meshes", out / "meshes" / "liver.stl", out / "qc.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_lock_held_before_its_holder_wrote_its_process_is_still_refused_in_one_line(tmp_path):
    import fcntl

    out = tmp_path / "out"
    lock_file = tmp_path / ".out.lock"
    fd = os.open(lock_file, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # taken, nothing written yet
    try:
        with pytest.raises(InputError) as raised:
            OutputLock(out).__enter__()
        assert str(raised.value) == (f"another run (process ?) is writing to {out}; wait for it to finish or choose "
                                     "another output")
    finally:
        os.close(fd)


def test_releasing_is_safe_twice_and_after_the_lock_file_was_removed(tmp_path):
    from livervessels import interrupts

    lock = OutputLock(tmp_path / "out").__enter__()
    assert lock.path in interrupts._temporary
    lock.path.unlink()  # someone cleaned up the hidden file while the run held it
    lock.release()
    assert lock.path not in interrupts._temporary
    lock.release()
    with OutputLock(tmp_path / "out"):  # free again
        pass
