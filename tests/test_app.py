"""The MONAI Deploy application end to end: `python app -i IN -o OUT -m MODELS`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from livervessels.outputs.dicom_seg import read_seg_labels
from livervessels.study import load_ct_study

from conftest import DEMO_STUDY, MODELS, ROOT, run_app

EXPECTED_NIFTI = {"liver", "inferior_vena_cava", "portal_vein_and_splenic_vein", "liver_vessels",
                  "enhanced_liver_vessels", "portal_vein_branches", "hepatic_veins", "liver_vessels_labeled"}


def _input_sop_uids(folder: Path) -> set[str]:
    uids = set()
    for f in folder.rglob("*"):
        if f.is_file():
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            uids.add(str(ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID))
    return uids


def _check_outputs(out: Path, input_dir: Path) -> dict:
    """Every output exists, lines up with the input series, and the SEG references only input UIDs."""
    study = load_ct_study(input_dir)
    qc = json.loads((out / "qc.json").read_text())
    written = {p.name.removesuffix(".nii.gz") for p in out.glob("*.nii.gz")}
    assert EXPECTED_NIFTI <= written <= EXPECTED_NIFTI | {"liver_vessels_skeleton_labeled"}
    for name in written:
        img = nib.load(out / f"{name}.nii.gz")
        assert img.shape == study.volume.shape and np.allclose(img.affine, study.volume.affine, atol=1e-4)
        assert img.get_data_dtype() == np.uint8
    assert (out / "enhanced_liver_vessels_metadata.json").is_file()
    stats = json.loads((out / "statistics.json").read_text())
    assert set(stats["structures"]) == {k for k in qc["structures"]}
    assert (out / "preview_liver_vessels.png").stat().st_size > 10_000
    assert {p.stem for p in (out / "meshes").glob("*.stl")} == \
        {k for k, v in qc["structures"].items() if not v["empty"] and k != "liver_vessels"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging folder left behind"

    seg_path = out / "segmentations.dcm"
    if qc["dicom_seg"]["file"] is None:
        assert not seg_path.exists() and qc["dicom_seg"]["skipped_reason"]
        return qc
    seg = hd.seg.segread(seg_path)
    referenced = {uid for _, _, uid in seg.get_source_image_uids()}
    assert referenced and referenced <= _input_sop_uids(input_dir)
    assert seg.StudyInstanceUID == study.volume.meta["study_instance_uid"]
    assert seg.FrameOfReferenceUID == study.volume.meta["frame_of_reference_uid"]
    rebuilt = read_seg_labels(seg_path, study.volume.meta["sop_instance_uids"], study.volume.shape)
    assert sorted(rebuilt) == sorted(qc["dicom_seg"]["segments"])
    for name, mask in rebuilt.items():
        assert np.array_equal(mask, nib.load(out / f"{name}.nii.gz").get_fdata() > 0), name
    for name in qc["dicom_seg"]["empty_segments_omitted"]:
        assert not nib.load(out / f"{name}.nii.gz").get_fdata().any()
    return qc


def test_demo_study_outputs(demo_app_output):
    qc = _check_outputs(demo_app_output, DEMO_STUDY)
    assert qc["models"]["plan"] == "demo"
    assert {"liver", "inferior_vena_cava", "enhanced_liver_vessels"} <= set(qc["dicom_seg"]["segments"])
    verdicts = {s["series_description"]: s for s in qc["input"]["series_found"]}
    assert verdicts["Topogram"]["accepted"] is False and "LOCALIZER" in verdicts["Topogram"]["reason"]
    assert verdicts["Abdomen portal venous 2.5 mm"]["reason"] == "selected"
    assert qc["structures"]["liver"]["volume_ml"] > 500


def test_environment_variables_work_like_the_options_and_non_dicom_files_are_ignored(tmp_path, demo_app_output):
    # one app run for both (each costs a full run of the demo study): the orchestrator's variables
    # instead of -i/-o/-m, on the demo study with a file that is not DICOM beside its slices
    import shutil
    import subprocess
    import sys

    study = tmp_path / "study"
    shutil.copytree(DEMO_STUDY, study)
    (study / "ct" / "DICOMDIR.txt").write_text("index")
    out = tmp_path / "out_env"
    env = {"HOLOSCAN_INPUT_PATH": str(study), "HOLOSCAN_OUTPUT_PATH": str(out), "HOLOSCAN_MODEL_PATH": str(MODELS),
           "LIVERVESSELS_COUINAUD": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "app")], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env={**os.environ, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "segmentations.dcm").is_file()
    for name in ("liver_vessels.nii.gz", "portal_vein_branches.nii.gz", "hepatic_veins.nii.gz"):
        assert np.array_equal(np.asanyarray(nib.load(out / name).dataobj),
                              np.asanyarray(nib.load(demo_app_output / name).dataobj)), name
    assert "DICOMDIR.txt" in result.stderr + result.stdout
    qc = json.loads((out / "qc.json").read_text())
    assert [f["file"].split("/")[-1] for f in qc["input"]["files_ignored"]] == ["DICOMDIR.txt"]
    # the Couinaud node ran: segments with their SEG codes, or a refusal that says why
    assert "couinaud" not in json.loads((demo_app_output / "qc.json").read_text())  # off by default
    couinaud = qc["couinaud"]
    if couinaud["refused"]:
        assert not (out / "liver_segments_vessel.nii.gz").exists()
        assert f"Couinaud segments not derived: {couinaud['refused']}" in qc["warnings"]
    else:
        labels = np.asanyarray(nib.load(out / "liver_segments_vessel.nii.gz").dataobj)
        assert set(np.unique(labels)) <= set(range(9)) and labels.any()
        assert any(s.startswith("couinaud_segment_") for s in qc["dicom_seg"]["segments"])


@pytest.mark.slow
def test_real_study_with_empty_uids(real_data, tmp_path):
    out = tmp_path / "out"
    result = run_app(real_data / "ct_dicom", out)
    assert result.returncode == 0, result.stderr[-3000:]
    qc = _check_outputs(out, real_data / "ct_dicom")
    repairs = qc["input"]["uid_repairs"]
    assert repairs["sop_instance_uids_taken_from_file_meta"] == 20
    assert repairs["study_instance_uids_derived"] and repairs["series_instance_uids_derived"]
    assert any("demo model" in w for w in qc["warnings"])
    assert any("lacked UIDs" in w for w in qc["warnings"])


def _bad_inputs(tmp: Path, phantom) -> dict[str, Path]:
    from livervessels.synthetic.write_series import write_image_series

    (tmp / "empty").mkdir()
    write_image_series(phantom.ct, phantom.affine, tmp / "gap")
    (tmp / "gap" / "IM0020.dcm").unlink()
    return {"empty": tmp / "empty", "gap": tmp / "gap"}


# `python app` in a process per run, once refused by the study loader and once by the volume reader;
# every other refusal goes through the app's entry point in tests/reliability (one process for all)
@pytest.mark.parametrize("case,message", [("empty", "is empty"), ("gap", "slice(s) missing")])
def test_bad_input_gives_one_clear_line_and_no_output(tmp_path, small_phantom, case, message):
    folder = _bad_inputs(tmp_path, small_phantom)[case]
    out = tmp_path / "out"
    result = run_app(folder, out)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
