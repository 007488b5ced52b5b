"""Cohorts: study discovery, resumable runs, one row per study, atomic per-study outputs, exit codes."""
from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from livervessels import cli, cohort
from livervessels.errors import InputError
from livervessels.geometry import nifti_image

# the network runs once per distinct image in this module (conftest.network_memo):
# the studies are copies of one scan; what is tested is the batch around the network
pytestmark = pytest.mark.usefixtures("network_memo")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DEMO_STUDY = ROOT / "demo" / "study"


def _nifti(path: Path, value: int = 0, shape=(12, 10, 8)) -> Path:
    arr = np.full(shape, value, np.int16)
    arr[2:5, 3:6, 1:4] = 200
    nib.save(nifti_image(arr, np.diag([1.5, 1.5, 2.0, 1.0])), path)
    return path


def _rows(out: Path) -> list[dict]:
    with open(out / cohort.COHORT_CSV, newline="") as f:
        return list(csv.DictReader(f))


class Recorder:
    """A stand-in for a single run: writes the volume's shape and counts its calls; fails on request."""

    def __init__(self, fail: dict | None = None):
        self.calls: list[str] = []
        self.fail = fail or {}

    def __call__(self, loaded, folder: Path) -> None:
        name = folder.name
        self.calls.append(name)
        folder.mkdir(parents=True)
        (folder / "shape.txt").write_text(str(loaded.volume.shape))
        if name in self.fail:
            raise self.fail[name]


@pytest.fixture
def studies(tmp_path):
    src = tmp_path / "cohort"
    src.mkdir()
    _nifti(src / "a.nii.gz", 1)
    _nifti(src / "b.nii", 2)
    with zipfile.ZipFile(src / "c.zip", "w") as z:
        z.write(_nifti(tmp_path / "c_inner.nii.gz", 3), "c.nii.gz")
    (src / ".hidden").write_text("ignored")
    return src


def test_a_folder_of_studies_gives_one_study_per_entry_and_names_what_is_not_a_study(studies):
    (studies / "notes.txt").write_text("a README is not a study")
    found, problems = cohort.find_studies(studies)
    assert [(s.study_id, s.path.name) for s in found] == [("a", "a.nii.gz"), ("b", "b.nii"), ("c", "c.zip")]
    assert [p.study_id for p in problems] == ["notes.txt"]
    assert "not a study" in problems[0].error


def test_a_manifest_resolves_relative_paths_and_reports_missing_duplicate_and_unsafe_ids(studies, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("study_id,path\n"
                        "p1,cohort/a.nii.gz\n"
                        f"p2,{studies / 'b.nii'}\n"
                        "gone,cohort/nothing.nii.gz\n"
                        "dup,cohort/a.nii.gz\n"
                        "dup,cohort/b.nii\n"
                        "../escape,cohort/a.nii.gz\n")
    found, problems = cohort.find_studies(manifest)
    assert [(s.study_id, s.path.resolve()) for s in found] == [("p1", (studies / "a.nii.gz").resolve()),
                                                               ("p2", (studies / "b.nii").resolve())]
    errors = {p.study_id: p.error for p in problems}
    assert "does not exist" in errors["gone"] and "line 4" in errors["gone"]
    assert sum(p.study_id == "dup" for p in problems) == 2
    assert "line 5, line 6" in errors["dup"]
    assert "cannot be a folder name" in errors["../escape"]


@pytest.mark.parametrize("text, message", [("id,file\nx,y\n", "needs the columns study_id,path"),
                                           ("study_id,path\n", "no studies")])
def test_a_manifest_without_its_columns_or_studies_is_refused(tmp_path, text, message):
    manifest = tmp_path / "m.csv"
    manifest.write_text(text)
    with pytest.raises(InputError, match=message):
        cohort.find_studies(manifest)


def test_a_rerun_skips_what_is_done_and_redoes_what_changed(studies, tmp_path):
    out = tmp_path / "out"
    run = Recorder()
    found, _ = cohort.find_studies(studies)
    first = cohort.run_cohort(found, out, run, {"task": "x"}, prefetch=True)
    assert run.calls == ["a", "b", "c"] and first.failed == 0
    assert (out / "a" / "shape.txt").read_text() == "(12, 10, 8)"
    assert [r["reused"] for r in _rows(out)] == ["False"] * 3
    # the same again: nothing runs
    run.calls.clear()
    cohort.run_cohort(found, out, run, {"task": "x"})
    assert run.calls == []
    assert [r["reused"] for r in _rows(out)] == ["True"] * 3
    # a changed input is redone, and its old outputs go
    (out / "b" / "stale.txt").write_text("from an earlier run")
    _nifti(studies / "b.nii", 2, shape=(12, 10, 9))
    cohort.run_cohort(found, out, run, {"task": "x"})
    assert run.calls == ["b"]
    assert not (out / "b" / "stale.txt").exists() and (out / "b" / "shape.txt").read_text() == "(12, 10, 9)"
    # a study whose output folder was removed is redone; changed options redo everything
    run.calls.clear()
    shutil.rmtree(out / "a")
    cohort.run_cohort(found, out, run, {"task": "x"})
    assert run.calls == ["a"]
    run.calls.clear()
    cohort.run_cohort(found, out, run, {"task": "y"})
    assert run.calls == ["a", "b", "c"]
    assert sorted(p.name for p in out.iterdir()) == [".cohort", "a", "b", "c", "cohort.csv", "cohort.parquet"]


def test_a_failing_study_is_a_row_and_leaves_nothing_behind(studies, tmp_path):
    out = tmp_path / "out"
    run = Recorder(fail={"a": InputError("the scan is not a CT"), "b": RuntimeError("boom")})
    found, _ = cohort.find_studies(studies)
    result = cohort.run_cohort(found, out, run, {}, problems=[cohort.StudyProblem("gone", "x.nii", "input x.nii does "
                                                                                 "not exist")])
    rows = {r["study_id"]: r for r in _rows(out)}
    assert result.failed == 3 and len(rows) == 4
    assert rows["a"]["status"] == "failed" and rows["a"]["error"] == "the scan is not a CT"
    assert rows["b"]["error"] == "internal failure: RuntimeError: boom"
    assert rows["gone"]["error"] == "input x.nii does not exist"
    assert rows["c"]["status"] == "ok"
    # the failed studies wrote a file before failing: none of it is published, no partial folder stays
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("cohort")) == [".cohort", "c"]
    # the next run retries the failures only
    run.fail.clear()
    run.calls.clear()
    assert cohort.run_cohort(found, out, run, {}).failed == 0
    assert run.calls == ["a", "b"]


def test_a_full_disk_fails_the_study_with_what_to_do_and_the_cohort_goes_on(studies, tmp_path):
    import errno

    out = tmp_path / "out"
    full = OSError(errno.ENOSPC, "No space left on device", str(out / "b" / "liver.nii.gz"))
    found, _ = cohort.find_studies(studies)
    result = cohort.run_cohort(found, out, Recorder(fail={"b": full}), {})
    rows = {r["study_id"]: r for r in _rows(out)}
    assert result.failed == 1 and rows["c"]["status"] == "ok"
    assert rows["b"]["error"].startswith("No space left on device (")
    assert "free some space and run again" in rows["b"]["error"]
    assert not (out / "b").exists()


def test_ctrl_c_keeps_the_rows_so_far_and_the_next_run_resumes(studies, tmp_path):
    out = tmp_path / "out"
    run = Recorder(fail={"b": KeyboardInterrupt()})
    found, _ = cohort.find_studies(studies)
    with pytest.raises(KeyboardInterrupt):
        cohort.run_cohort(found, out, run, {})
    assert [r["study_id"] for r in _rows(out)] == ["a"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("cohort")) == [".cohort", "a"]
    run.fail.clear()
    run.calls.clear()
    cohort.run_cohort(found, out, run, {})
    assert run.calls == ["b", "c"]


def test_the_parquet_table_holds_the_same_rows_as_the_csv(studies, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "out"
    found, _ = cohort.find_studies(studies)
    cohort.run_cohort(found, out, Recorder(fail={"b": InputError("bad")}), {})
    table = pd.read_parquet(out / cohort.COHORT_PARQUET)
    assert list(table["study_id"]) == [r["study_id"] for r in _rows(out)] == ["a", "b", "c"]
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert list(table.columns[:len(cohort.LEADING_COLUMNS)]) == list(cohort.LEADING_COLUMNS)


def test_bad_usage_exits_2_before_any_study(studies, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.batch_main(["-i", str(studies), "-o", str(out), "-ta", "no_such_task"]) == 2
    assert cli.batch_main(["-i", str(tmp_path / "nowhere"), "-o", str(out), "-ta", "demo_liver",
                           "-m", str(MODELS)]) == 2
    err = capsys.readouterr().err
    assert "error: unknown task 'no_such_task'" in err or "no_such_task" in err
    assert "does not exist" in err
    assert not out.exists()


@pytest.mark.slow
def test_batch_command_writes_what_single_runs_write_and_a_row_per_study(tmp_path, capsys):
    # Two copies of the demo study (one zipped) and a manifest line whose path is missing: exit 3, the
    # two studies hold the files a single TotalSegmentatorEnhanced run writes, the same masks.
    src = tmp_path / "src"
    shutil.copytree(DEMO_STUDY, src / "s1")
    shutil.make_archive(str(src / "s2"), "zip", DEMO_STUDY)
    manifest = tmp_path / "m.csv"
    manifest.write_text("study_id,path\ns1,src/s1\ns2,src/s2.zip\nmissing,src/none\n")
    out = tmp_path / "out"
    args = ["--mode", "enhanced_liver", "--split_portal_hepatic", "-m", str(MODELS), "--no_progress"]
    assert cli.batch_main(["-i", str(manifest), "-o", str(out), *args]) == 3
    single = tmp_path / "single"
    assert cli.enhanced_main(["-i", str(DEMO_STUDY), "-o", str(single), *args[:-1], "-q"]) == 0
    names = sorted(p.name for p in single.iterdir())
    for sid in ("s1", "s2"):
        assert sorted(p.name for p in (out / sid).iterdir()) == names
        for mask in ("portal_vein_branches.nii.gz", "hepatic_veins.nii.gz", "liver.nii.gz"):
            assert np.array_equal(np.asanyarray(nib.load(out / sid / mask).dataobj),
                                  np.asanyarray(nib.load(single / mask).dataobj))
    rows = {r["study_id"]: r for r in _rows(out)}
    assert [rows[s]["status"] for s in ("s1", "s2", "missing")] == ["ok", "ok", "failed"]
    assert "does not exist" in rows["missing"]["error"]
    assert float(rows["s1"]["split.portal_fraction"]) == pytest.approx(float(rows["s2"]["split.portal_fraction"]))
    assert float(rows["s1"]["volume_ml.liver"]) > 500
    assert "2 of 3 studies succeeded" in capsys.readouterr().out


def test_the_api_refuses_options_of_the_other_mode_and_unknown_modes(studies, tmp_path):
    from livervessels.api import run_cohort

    with pytest.raises(InputError, match="do not apply to cohort mode 'enhanced'"):
        run_cohort(studies, tmp_path / "o", "enhanced", task="total")
    with pytest.raises(InputError, match="unknown cohort mode"):
        run_cohort(studies, tmp_path / "o", "batch")
    assert not (tmp_path / "o").exists()


def test_partial_folders_are_removed_by_exact_study_id(tmp_path):
    for name in (".a.partial-1", ".a.b.partial-2", ".a.old-3", ".cohort", "a"):
        (tmp_path / name).mkdir()
    cohort.remove_partial_outputs(tmp_path, "a")  # not study a.b's folder, which another worker may be writing
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.b.partial-2", ".cohort", "a"]
    cohort.remove_partial_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cohort", "a"]
