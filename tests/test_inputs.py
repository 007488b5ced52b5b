"""Input reading (livervessels/inputs.py) and the up-front output checks: clear errors, no leftovers."""
from __future__ import annotations

import tempfile
import zipfile

import numpy as np
import pytest

from livervessels import cli
from livervessels.errors import InputError
from livervessels.inputs import load_input
from livervessels.outputs.staging import check_output_folder

from conftest import DEMO_STUDY, MODELS, run_app


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's folder redirected, so leftovers of a run can be counted."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _zip_of(folder, path):
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"study/{f.relative_to(folder)}")
    return path


def test_zip_study_is_read_and_its_unpacked_copy_removed(tmp_path, private_tmp):
    archive = _zip_of(DEMO_STUDY, tmp_path / "study.zip")
    with load_input(archive) as loaded:
        assert loaded.kind == "zip" and loaded.study is not None
        assert len(list(private_tmp.glob("livervessels-zip-*"))) == 1  # the unpacked study, while in use
        direct = load_input(DEMO_STUDY)
        assert np.array_equal(loaded.volume.array, direct.volume.array)
    assert list(private_tmp.glob("livervessels-zip-*")) == []


def test_zip_run_through_the_command_line_leaves_no_temporary_folder(tmp_path, private_tmp):
    archive = _zip_of(DEMO_STUDY, tmp_path / "study.zip")
    rc = cli.totalsegmentator_main(["-i", str(archive), "-o", str(tmp_path / "out"), "-ta", "demo_liver",
                                    "-m", str(MODELS), "-q"])
    assert rc == 0 and (tmp_path / "out" / "liver.nii.gz").exists()
    assert list(private_tmp.glob("livervessels-zip-*")) == []


@pytest.mark.parametrize("defect,message", [
    ("empty", "is empty"),
    ("truncated", "is damaged"),
    ("corrupt_member", "is damaged (member study/"),
    ("no_dicom", "(unpacked)"),
])
def test_bad_zips_are_named_and_leave_nothing(tmp_path, private_tmp, defect, message):
    archive = tmp_path / "study.zip"
    if defect == "empty":
        zipfile.ZipFile(archive, "w").close()
    elif defect == "no_dicom":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("notes.txt", "not an image")
    else:
        _zip_of(DEMO_STUDY, archive)
        data = bytearray(archive.read_bytes())
        if defect == "truncated":
            data = data[: len(data) // 2]
        else:  # flip bytes inside the first member's stored data: its CRC no longer matches
            data[200:260] = bytes(b ^ 0xFF for b in data[200:260])
        archive.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_input(archive)
    assert message in str(err.value)
    assert str(private_tmp) not in str(err.value)
    assert list(private_tmp.glob("livervessels-zip-*")) == []


def test_output_that_is_an_existing_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    existing = tmp_path / "result"
    existing.write_text("keep me")

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran although the output path was unusable")

    monkeypatch.setattr("livervessels.api.segment", no_inference)
    rc = cli.totalsegmentator_main(["-i", str(DEMO_STUDY), "-o", str(existing), "-ta", "demo_liver", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "exists and is not a folder" in err and err.count("error:") == 1
    assert existing.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]  # no .partial-* folder


def test_unwritable_output_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("livervessels.outputs.staging.os.access", lambda path, mode: False)
    with pytest.raises(InputError, match="is not writable"):
        check_output_folder(tmp_path / "new" / "out")


def test_missing_output_parents_are_created_later_not_refused(tmp_path):
    assert check_output_folder(tmp_path / "a" / "b") == (tmp_path / "a" / "b").absolute()
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_a_single_dicom_file_is_named_as_such(tmp_path):
    one = next(p for p in sorted((DEMO_STUDY / "ct").iterdir()) if p.is_file())
    with pytest.raises(InputError, match="is a single DICOM file; pass the folder holding the whole series"):
        load_input(one)


def test_app_given_a_file_says_it_needs_a_folder(tmp_path):
    one = next(p for p in sorted((DEMO_STUDY / "ct").iterdir()) if p.is_file())
    result = run_app(one, tmp_path / "out", timeout=300)
    assert result.returncode == 2 and "is not a folder; pass the folder that holds the DICOM study" in result.stderr
    assert not (tmp_path / "out").exists()
