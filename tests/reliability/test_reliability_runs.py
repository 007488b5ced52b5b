"""Awkward but usable inputs run to the end: exit 0, the warning a reader of qc.json needs, and where
only the encoding or the file layout differs, masks byte-identical to the plain series' run.

Each case runs the enhanced pipeline in-process (the models stay loaded between cases), and the
network runs once per distinct image (conftest's network_memo): nine of the cases store the plain
series' image another way, and what they test is the reading, the checks and the outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from livervessels import cli

from conftest import MODELS
from reliability_cases import RUNS, TYPE2_ATTRIBUTES, Case

MASKS = ("liver", "liver_vessels", "enhanced_liver_vessels", "portal_vein_and_splenic_vein", "inferior_vena_cava")


def _run(case: Case, folder: Path, phantom) -> tuple[Path, dict]:
    source, extra = case.build(folder, phantom)
    out = folder / "out"
    rc = cli.enhanced_main(["-i", str(source), "-o", str(out), "--mode", "enhanced_liver", "-q", "-m", str(MODELS),
                            *extra])
    assert rc == 0, case.name
    return out, json.loads((out / "qc.json").read_text())


def _voxels(path: Path) -> bytes:
    return np.asarray(nib.load(path).dataobj).tobytes()


pytestmark = pytest.mark.usefixtures("network_memo")


@pytest.fixture
def plain_run(small_phantom, tmp_path_factory, network_memo) -> Path:
    return _plain_run(small_phantom, tmp_path_factory)


_PLAIN: list[Path] = []


def _plain_run(small_phantom, tmp_path_factory) -> Path:
    if not _PLAIN:  # once per module, with the memo in place (a module fixture cannot use it)
        _PLAIN.append(_run(RUNS[0], tmp_path_factory.mktemp("plain"), small_phantom)[0])
    return _PLAIN[0]


@pytest.mark.slow
@pytest.mark.parametrize("case", RUNS[1:], ids=lambda c: c.name)
def test_input_runs_to_the_end_with_its_warning(case, small_phantom, tmp_path, plain_run, network_memo):
    reused = network_memo["reused"]
    out, qc = _run(case, tmp_path, small_phantom)
    if case.same_as_plain:  # stored another way, read as the same image: the network is handed the same voxels
        assert network_memo["reused"] > reused
    if case.message:
        assert any(case.message in w for w in qc["warnings"]), qc["warnings"]
    if case.same_as_plain:
        for name in MASKS:
            assert _voxels(out / f"{name}.nii.gz") == _voxels(plain_run / f"{name}.nii.gz"), name
    if case.kind == "dicom":
        assert (out / "segmentations.dcm").is_file()


@pytest.mark.slow
def test_seg_is_written_with_empty_type2_attributes(small_phantom, tmp_path):
    out, _ = _run(next(c for c in RUNS if c.name == "without_type2_attributes"), tmp_path, small_phantom)
    seg = pydicom.dcmread(out / "segmentations.dcm")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber"):
        assert keyword in TYPE2_ATTRIBUTES and keyword in seg and not str(seg.data_element(keyword).value or "")


@pytest.mark.slow
def test_no_liver_in_view_writes_empty_vessel_outputs_and_says_so(small_phantom, tmp_path):
    out, qc = _run(next(c for c in RUNS if c.name == "no_liver"), tmp_path, small_phantom)
    for name in ("liver_vessels", "enhanced_liver_vessels"):
        assert not np.any(np.asarray(nib.load(out / f"{name}.nii.gz").dataobj)), name
    assert qc["enhancement"]["skipped"].startswith("no liver in the field of view")
    assert qc["enhancement"]["raw_vessel_voxels_not_written"] > 0  # the vessel model did answer; not shown
    assert pydicom.dcmread(out / "segmentations.dcm").SeriesDescription == "Liver vessels RUO NO LIVER CHECK QC"
