"""Future liver remnant (livervessels/resection.py and `TotalSegmentatorResection`): volumes of
Couinaud segments in ml from hand-built label maps, the remnant after resecting segments, both
input forms (a label map and TotalSegmentator's folder of masks), and each refusal."""
from __future__ import annotations

import json
import subprocess

import nibabel as nib
import numpy as np
import pytest

from livervessels.cli import resection_main
from livervessels.errors import InputError
from livervessels.resection import couinaud_volumes, format_report, future_liver_remnant, read_couinaud_labels

from conftest import ROOT

SPACING = (0.8, 0.8, 2.0)  # 1.28 mm^3 = 0.00128 ml per voxel


def _liver() -> np.ndarray:
    """Segment n holds 1000 * n voxels (n ml x 1.28), plus a label 9 and background that do not count."""
    labels = np.zeros((100, 100, 40), np.uint8)
    flat = labels.reshape(-1)
    start = 0
    for n in range(1, 9):
        flat[start:start + 1000 * n] = n
        start += 1000 * n
    flat[start:start + 500] = 9
    return labels


def test_segment_volumes_are_voxel_counts_times_the_voxel_volume():
    volumes = couinaud_volumes(_liver(), SPACING)
    assert list(volumes) == list(range(1, 9))
    for n, ml in volumes.items():
        assert ml == pytest.approx(1000 * n * 0.8 * 0.8 * 2.0 / 1000)


def test_a_right_hepatectomy_leaves_segments_1_to_4():
    volumes = couinaud_volumes(_liver(), SPACING)
    report = future_liver_remnant(volumes, [8, 5, 6, 7, 5])
    total = 36 * 1.28  # 1 + ... + 8 = 36 thousand voxels
    assert report["removed_segments"] == [5, 6, 7, 8] and report["remaining_segments"] == [1, 2, 3, 4]
    assert report["total_ml"] == pytest.approx(round(total, 1))
    assert report["resected_ml"] == pytest.approx(round(26 * 1.28, 1))
    assert report["remnant_ml"] == pytest.approx(round(10 * 1.28, 1))
    assert report["remnant_percent"] == pytest.approx(round(100 * 10 / 36, 1))  # 27.8 %
    assert report["segments"][8] == {"ml": round(8 * 1.28, 1), "percent": round(800 / 36, 1)}
    assert report["absent_segments"] == []
    text = format_report(report)
    assert "27.8 %" in text and text.count("resected") == 5  # four segment rows and the summary


def test_a_segment_the_map_lacks_counts_zero_and_is_named():
    labels = _liver()
    labels[labels == 4] = 0
    report = future_liver_remnant(couinaud_volumes(labels, SPACING), [2, 3])
    assert report["absent_segments"] == [4] and report["segments"][4]["ml"] == 0.0
    assert report["remnant_percent"] == pytest.approx(round(100 * (36 - 4 - 5) / 32, 1))
    assert "segments with no voxels: IV" in format_report(report)


@pytest.mark.parametrize("remove, message", [([], "name the segments"), ([0, 5], "numbered 1-8"),
                                             ([9], "numbered 1-8"), (list(range(1, 9)), "no remnant")])
def test_impossible_resections_are_refused(remove, message):
    with pytest.raises(InputError, match=message):
        future_liver_remnant(couinaud_volumes(_liver(), SPACING), remove)


def test_a_map_without_segments_or_with_a_bad_grid_is_refused():
    with pytest.raises(InputError, match="no Couinaud segment"):
        couinaud_volumes(np.full((4, 4, 4), 9, np.uint8), SPACING)
    with pytest.raises(InputError, match="3D"):
        couinaud_volumes(np.ones((4, 4), np.uint8), SPACING)
    with pytest.raises(InputError, match="positive"):
        couinaud_volumes(np.ones((4, 4, 4), np.uint8), (0.8, 0.0, 2.0))
    # only segments 2 and 3 in the map: removing both leaves nothing
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0], labels[1] = 2, 3
    with pytest.raises(InputError, match="no remnant"):
        future_liver_remnant(couinaud_volumes(labels, SPACING), [2, 3])


def _affine() -> np.ndarray:
    return np.diag([-0.8, -0.8, 2.0, 1.0])  # LPS-stored voxels: the spacing is the column norms


def test_the_label_map_and_the_folder_of_masks_give_the_same_volumes(tmp_path):
    labels = _liver()
    nib.save(nib.Nifti1Image(labels, _affine()), tmp_path / "segments.nii.gz")
    folder = tmp_path / "out"
    folder.mkdir()
    for n in range(1, 9):
        nib.save(nib.Nifti1Image((labels == n).astype(np.uint8), _affine()), folder / f"liver_segment_{n}.nii.gz")
    a, sp_a = read_couinaud_labels(tmp_path / "segments.nii.gz")
    b, sp_b = read_couinaud_labels(folder)
    assert sp_a == sp_b == pytest.approx(SPACING)
    assert couinaud_volumes(a, sp_a) == couinaud_volumes(b, sp_b)
    # the header's float32 spacing: the same volumes to a millionth
    assert couinaud_volumes(a, sp_a) == pytest.approx(couinaud_volumes(labels, SPACING), rel=1e-6)
    # a mask on another grid does not join the others
    nib.save(nib.Nifti1Image((labels == 3).astype(np.uint8), np.diag([1.0, 1.0, 1.0, 1.0])),
             folder / "liver_segment_3.nii.gz")
    with pytest.raises(InputError, match="liver_segment_3.nii.gz is not on the grid"):
        read_couinaud_labels(folder)
    with pytest.raises(InputError, match="holds no liver_segment"):
        read_couinaud_labels(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_couinaud_labels(tmp_path / "missing.nii.gz")
    (tmp_path / "bad.nii.gz").write_bytes(b"not nifti")
    with pytest.raises(InputError, match="cannot read"):
        read_couinaud_labels(tmp_path / "bad.nii.gz")


def test_the_command_prints_the_table_writes_json_and_refuses_bad_input(tmp_path, capsys):
    nib.save(nib.Nifti1Image(_liver(), _affine()), tmp_path / "segments.nii.gz")
    report = tmp_path / "flr.json"
    assert resection_main(["-i", str(tmp_path / "segments.nii.gz"), "-r", "2", "3", "-o", str(report)]) == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["removed_segments"] == [2, 3] and data["remnant_percent"] == round(100 * 31 / 36, 1)
    assert f"{data['remnant_ml']:.1f} ml ({data['remnant_percent']:.1f} % of the liver)" in out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert resection_main(["-i", str(tmp_path / "segments.nii.gz"), "-r", "9"]) == 2
    assert "error: Couinaud segments are numbered 1-8" in capsys.readouterr().err
    assert resection_main(["-i", str(tmp_path / "segments.nii.gz"), "-r", "2", "-o",
                           str(tmp_path / "nowhere" / "flr.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_console_script_is_installed():
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "TotalSegmentatorResection"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "future liver remnant" in run.stdout.lower()


def test_the_segments_to_resect_are_checked_before_any_work():
    from livervessels.resection import check_segments_to_remove

    assert check_segments_to_remove([8, 5, 5, 6]) == [5, 6, 8]
    for bad, message in (([], "name the segments"), ([0, 5], r"numbered 1-8 \(got 0\)"),
                         (list(range(1, 9)), "every Couinaud segment would be resected")):
        with pytest.raises(InputError, match=message):
            check_segments_to_remove(bad)
