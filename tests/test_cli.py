"""The TotalSegmentator-compatible command lines (livervessels/cli.py): the same files as the app,
errors with their exit codes, quiet runs, help text."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from livervessels import cli

from conftest import DEMO_CLASSES, DEMO_STUDY, MODELS, ROOT, nifti_voxels

# the network runs once per distinct image in this module (conftest.network_memo):
# the in-process runs read the same demo study
pytestmark = pytest.mark.usefixtures("network_memo")

BIN = Path(sys.executable).parent


def run(cmd: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def enhanced_cli_output(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("enhanced") / "out"
    result = run("TotalSegmentatorEnhanced", "-i", str(DEMO_STUDY), "-o", str(out), "--mode", "enhanced_liver",
                 "--split_portal_hepatic", "--statistics", "--preview", "--export_meshes", "-m", str(MODELS))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_enhanced_cli_writes_the_same_files_as_the_app(enhanced_cli_output, demo_app_output):
    app_files = sorted(str(p.relative_to(demo_app_output)) for p in demo_app_output.rglob("*"))
    assert sorted(str(p.relative_to(enhanced_cli_output)) for p in enhanced_cli_output.rglob("*")) == app_files
    assert {"statistics.json", "preview_liver_vessels.png", "meshes/liver.stl"} <= set(app_files)
    for name in app_files:
        if name.endswith(".nii.gz"):
            assert np.array_equal(nifti_voxels(enhanced_cli_output / name), nifti_voxels(demo_app_output / name)), name
            assert np.allclose(nib.load(enhanced_cli_output / name).affine, nib.load(demo_app_output / name).affine)
    ours, app = (json.loads((d / "qc.json").read_text()) for d in (enhanced_cli_output, demo_app_output))
    assert ours["dicom_seg"]["segments"] == app["dicom_seg"]["segments"]
    assert ours["structures"] == app["structures"]
    ours, app = (json.loads((d / "statistics.json").read_text()) for d in (enhanced_cli_output, demo_app_output))
    for stats in (ours, app):  # each run writes its own DICOM objects: their UIDs differ, the source does not
        for kind in ("seg", "sr", "key_sr", "sc"):
            assert stats["provenance"].pop(f"{kind}_sop_instance_uid")
    assert ours == app


def test_totalsegmentator_cli_writes_one_mask_per_class_like_the_app(tmp_path, demo_app_output):
    result = run("TotalSegmentator", "-i", str(DEMO_STUDY), "-o", str(tmp_path / "seg"), "-ta", "demo_liver",
                 "-m", str(MODELS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == sorted(f"{c}.nii.gz" for c in DEMO_CLASSES)
    for c in DEMO_CLASSES:
        assert np.array_equal(nifti_voxels(tmp_path / "seg" / f"{c}.nii.gz"),
                              nifti_voxels(demo_app_output / f"{c}.nii.gz"))
    # non-interactive: plain progress lines per stage, no bars
    assert "[livervessels] segment (demo_liver) done" in result.stderr


def test_support_mask_on_another_grid_is_refused(tmp_path):
    support = tmp_path / "support"
    support.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.uint8), np.eye(4)), support / "liver_vessels.nii.gz")
    rc = cli.enhanced_main(["-i", str(DEMO_STUDY), "-o", str(tmp_path / "out"), "--mode", "enhanced_liver",
                            "--split_support_dir", str(support), "-q"])
    assert rc == 2 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["-ta", "livr_vessels"], "valid tasks: body, body_fast, demo_liver"),
    (["-ta", "demo_liver", "-rs", "livr"], "valid: liver, inferior_vena_cava"),
    (["-ta", "liver_vessels", "-m", "{empty}"], "Dataset008_HepaticVessel/nnUNetTrainer__nnUNetPlans__3d_fullres"),
    (["-ta", "demo_liver", "-i", "{readme}"], "expected a NIfTI file (.nii or .nii.gz), a folder of DICOM slices"),
    (["-ta", "demo_liver", "-ot", "dicom_seg", "-i", "{nifti}"], "needs DICOM input"),
])
def test_errors_say_what_is_wrong_with_exit_code_2(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), tmp_path / "x.nii.gz")
    subs = {"{empty}": str(tmp_path / "empty"), "{readme}": str(ROOT / "README.md"),
            "{nifti}": str(tmp_path / "x.nii.gz")}
    args = [subs.get(a, a) for a in args]
    if "-i" not in args:
        args = ["-i", str(DEMO_STUDY)] + args
    env_before = os.environ.get("TOTALSEG_HOME_DIR")
    os.environ["TOTALSEG_HOME_DIR"] = str(tmp_path / "home")  # no weights there either
    try:
        rc = cli.totalsegmentator_main(args + ["-o", str(tmp_path / "out"), "-q"])
    finally:
        os.environ.pop("TOTALSEG_HOME_DIR") if env_before is None else os.environ.update(TOTALSEG_HOME_DIR=env_before)
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("error:") == 1
    if "Dataset008" in message:
        assert "holds no nnU-Net model" in err and "TotalSegmentator weights --task liver_vessels" in err
    assert not (tmp_path / "out").exists()


def test_internal_failure_exits_1_and_leaves_no_output(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr("livervessels.api.write_masks", broken)
    rc = cli.totalsegmentator_main(["-i", str(DEMO_STUDY), "-o", str(tmp_path / "out"), "-ta", "demo_liver", "-q",
                                    "-m", str(MODELS)])
    assert rc == 1 and "internal failure" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_quiet_prints_nothing_and_no_network_is_used(tmp_path, monkeypatch, capfd):
    def refuse(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address}")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)
    rc = cli.enhanced_main(["-i", str(DEMO_STUDY), "-o", str(tmp_path / "out"), "--mode", "enhanced_liver",
                            "--split_portal_hepatic", "-q", "-m", str(MODELS)])
    captured = capfd.readouterr()
    assert rc == 0 and captured.out == "" and captured.err == ""


def test_couinaud_without_the_split_is_refused_in_one_line_before_any_work(tmp_path, capfd):
    rc = cli.enhanced_main(["-i", str(DEMO_STUDY), "-o", str(tmp_path / "out"), "--mode", "enhanced_liver",
                            "--couinaud", "-q", "-m", str(MODELS)])
    err = capfd.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "add --split_portal_hepatic" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_help_documents_every_option():
    for parser in (cli.totalsegmentator_parser(), cli.enhanced_parser(), cli.weights_parser()):
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings} has no help"
        text = parser.format_help()
        assert all(opt in text for a in parser._actions for opt in a.option_strings)


def test_the_split_of_the_demo_study_agrees_with_its_ground_truth(enhanced_cli_output):
    # demo/ground_truth/vessel_tree.nii.gz: the phantom's own trees (1 portal, 2 hepatic), written
    # when the demo study was made; independent of any model or of the split.
    def canonical(path: Path) -> np.ndarray:
        return np.asanyarray(nib.as_closest_canonical(nib.load(path)).dataobj)

    truth = canonical(ROOT / "demo" / "ground_truth" / "vessel_tree.nii.gz")
    for name, label in (("portal_vein_branches", 1), ("hepatic_veins", 2)):
        found = canonical(enhanced_cli_output / f"{name}.nii.gz") > 0
        on_tree = found & (truth > 0)
        assert on_tree.sum() > 100, name
        assert (truth[on_tree] == label).mean() > 0.8, name  # of what it found on the true trees, mostly right
