"""The Python API (livervessels/api.py): label maps and masks returned in memory, every input kind,
TotalSegmentator's import path, support folders that replace the models."""
from __future__ import annotations

import json
import zipfile

import nibabel as nib
import numpy as np
import pytest

from livervessels import cli
from livervessels.api import enhance_liver_vessels, totalsegmentator
from livervessels.outputs.nifti import read_label_names

from conftest import DEMO_CLASSES, DEMO_STUDY, MODELS, nifti_voxels

# the network runs once per distinct image in this module (conftest.network_memo):
# the API, the command line, a NIfTI image and a zip of the demo study hold the same scan
pytestmark = pytest.mark.usefixtures("network_memo")


def test_api_returns_the_label_map_and_ml_file_carries_the_names(tmp_path, demo_app_output):
    image = totalsegmentator(str(DEMO_STUDY), None, task="demo_liver", model_dirs=[MODELS], quiet=True)
    assert not any(tmp_path.iterdir())
    liver = np.asanyarray(image.dataobj) == 1
    assert np.array_equal(liver, nifti_voxels(demo_app_output / "liver.nii.gz") > 0)
    rc = cli.totalsegmentator_main(["-i", str(DEMO_STUDY), "-o", str(tmp_path / "all"), "-ta", "demo_liver", "--ml",
                                    "-q", "-m", str(MODELS)])
    assert rc == 0
    ml = tmp_path / "all.nii.gz"
    assert np.array_equal(nifti_voxels(ml), np.asanyarray(image.dataobj))
    assert read_label_names(ml) == {1: "liver", 2: "inferior_vena_cava", 3: "portal_vein_and_splenic_vein",
                                    4: "liver_vessels"}
    assert json.loads((tmp_path / "all.json").read_text())["4"] == "liver_vessels"


def test_nibabel_image_and_zip_inputs(tmp_path):
    from livervessels.study import load_ct_study

    volume = load_ct_study(DEMO_STUDY).volume
    nifti = nib.Nifti1Image(volume.array, volume.affine)
    from_image = totalsegmentator(nifti, task="demo_liver", model_dirs=[MODELS], quiet=True)
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (DEMO_STUDY / "ct").iterdir():
            zf.write(f, f"study/ct/{f.name}")
    from_zip = totalsegmentator(archive, task="demo_liver", model_dirs=[MODELS], quiet=True)
    assert np.array_equal(np.asanyarray(from_image.dataobj), np.asanyarray(from_zip.dataobj))


def test_python_api_is_reachable_under_totalsegmentators_name():
    from totalsegmentator.python_api import totalsegmentator as compatible

    assert compatible is totalsegmentator


def test_support_dir_with_vessels_runs_no_model(tmp_path, demo_app_output, monkeypatch):
    support = tmp_path / "support"
    support.mkdir()
    for name in DEMO_CLASSES:
        (support / f"{name}.nii.gz").write_bytes((demo_app_output / f"{name}.nii.gz").read_bytes())

    def no_model(*args, **kwargs):
        raise AssertionError("a model ran although the support folder holds every mask")

    monkeypatch.setattr("livervessels.pipeline.segment", no_model)
    masks = enhance_liver_vessels(str(DEMO_STUDY), tmp_path / "out", split_portal_hepatic=True,
                                  split_support_dir=support, quiet=True)
    assert np.array_equal(np.asanyarray(masks["liver_vessels"].dataobj), nifti_voxels(support / "liver_vessels.nii.gz"))
    qc = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert all(v.startswith("file ") for v in qc["models"]["mask_sources"].values())
