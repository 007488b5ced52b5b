"""The pipeline's model plan and model preloading (livervessels/pipeline.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from livervessels import nnunet_runner
from livervessels.api import enhance_liver_vessels
from livervessels.errors import InputError
from livervessels.geometry import Volume
from livervessels.model_plan import choose_model_plan, preload_models
from livervessels.outputs.study_outputs import seg_series_description
from livervessels.pipeline import add_enhanced_vessels, add_portal_hepatic_split, run_liver_vessels

from conftest import MODELS


def test_preloaded_models_are_the_ones_the_run_uses(monkeypatch, small_phantom):
    nnunet_runner._CACHE.clear()
    plan = choose_model_plan([MODELS])
    preload_models(plan, [MODELS], "cpu").join()
    assert len(nnunet_runner._CACHE) == 1  # the demo model
    loads = []
    real = nnunet_runner._load
    monkeypatch.setattr(nnunet_runner, "_load", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    result = run_liver_vessels(Volume(small_phantom.ct, small_phantom.affine), model_dirs=[MODELS], device="cpu",
                               plan=plan, split=False)
    assert loads == []  # nothing loaded twice
    assert np.any(result.masks["liver"])


def test_qc_names_every_checkpoint_with_its_hash(demo_app_output):
    qc = json.loads((demo_app_output / "qc.json").read_text())
    checkpoints = qc["models"]["checkpoints"]
    assert checkpoints and all(len(c["sha256"]) == 64 for c in checkpoints)
    for c in checkpoints:
        data = Path(c["folder"]) / "fold_0" / "checkpoint_final.pth"
        assert hashlib.sha256(data.read_bytes()).hexdigest() == c["sha256"]


def test_the_same_input_gives_byte_identical_masks_and_seg_pixels(tmp_path, demo_app_output):
    # a second run, in this process and through the Python API, of what the app ran in its own
    # process for the session's demo_app_output: the same bytes (this test runs without the network memo)
    study = MODELS.parent / "demo" / "study"
    enhance_liver_vessels(str(study), tmp_path / "api", split_portal_hepatic=True, model_dirs=[MODELS], quiet=True)
    masks = sorted(p.name for p in (tmp_path / "api").glob("*.nii.gz"))
    assert {"portal_vein_branches.nii.gz", "hepatic_veins.nii.gz", "enhanced_liver_vessels.nii.gz"} <= set(masks)
    for name in masks:
        assert (tmp_path / "api" / name).read_bytes() == (demo_app_output / name).read_bytes(), name
    a, b = (pydicom.dcmread(folder / "segmentations.dcm") for folder in (tmp_path / "api", demo_app_output))
    assert a.PixelData == b.PixelData and a.SOPInstanceUID != b.SOPInstanceUID  # new UIDs, same pixels


def test_without_a_liver_no_vessel_analysis_is_made_and_the_outputs_say_so(small_phantom):
    volume = Volume(small_phantom.ct, small_phantom.affine)
    sliver = np.zeros(volume.shape, np.uint8)
    sliver[40:44, 40:44, 20:22] = 1  # 0.8 ml of "liver": a sliver at the edge of the scan
    vessels = np.zeros(volume.shape, np.uint8)
    vessels[30:60, 45, 20] = 1  # what a vessel model may still return there
    masks = {"liver": sliver, "liver_vessels": vessels}

    enhanced, meta = add_enhanced_vessels(volume, masks)
    assert not enhanced["enhanced_liver_vessels"].any() and not enhanced["liver_vessels"].any()
    assert meta["skipped"].startswith("no liver in the field of view (1 ml")
    assert meta["raw_vessel_voxels_not_written"] == 30
    split, split_qc = add_portal_hepatic_split(volume, enhanced)
    assert split_qc["flags"] == ["no_liver_in_field_of_view"] and split_qc["total_vessel_voxels"] == 0
    assert not any(split[k].any() for k in ("portal_vein_branches", "hepatic_veins", "liver_vessels_labeled"))
    assert seg_series_description(split_qc) == "Liver vessels RUO NO LIVER CHECK QC"
    assert seg_series_description({}, meta) == "Liver vessels RUO NO LIVER CHECK QC"  # without the split
    with pytest.raises(InputError, match="liver mask is empty"):
        add_enhanced_vessels(volume, {"liver": np.zeros_like(sliver)}, fallback_full_volume=False)

    liver = np.zeros(volume.shape, np.uint8)
    liver[20:70, 20:70, 10:30] = 1  # 1250 ml: analysed as usual
    assert "skipped" not in add_enhanced_vessels(volume, {"liver": liver, "liver_vessels": vessels})[1]


def test_repair_and_split_do_not_depend_on_how_the_slices_were_stored(phantom):
    """A scanner stores a supine series with IOP (1,0,0, 0,1,0): x and y run against RAS. The same
    anatomy stored either way gets the same repair and split in patient space (both run in the
    closest RAS orientation); before, the split's tie-breaking followed the voxel order and 8 % of
    the demo study's vessel voxels changed tree when its slices were stored the scanner's way."""
    from livervessels.synthetic.phantom import LABELS

    masks = {name: (phantom.labels == value).astype(np.uint8) for name, value in LABELS.items()}
    # a repair that has something to do: the raw mask loses a third of its voxels
    keep = np.random.default_rng(0).random(phantom.labels.shape) > 0.33
    masks["liver_vessels"] = (masks["liver_vessels"] & keep).astype(np.uint8)

    def flip(m):
        return np.ascontiguousarray(m[::-1, ::-1])

    n = np.array(phantom.ct.shape)
    flipped_affine = phantom.affine.copy()
    flipped_affine[:3, :2] *= -1
    flipped_affine[:3, 3] = phantom.affine[:3, :3] @ np.array([n[0] - 1, n[1] - 1, 0]) + phantom.affine[:3, 3]
    runs = []
    for volume, inputs in ((Volume(phantom.ct, phantom.affine), masks),
                           (Volume(flip(phantom.ct), flipped_affine), {k: flip(m) for k, m in masks.items()})):
        out, _ = add_enhanced_vessels(volume, inputs)
        out, qc = add_portal_hepatic_split(volume, out)
        runs.append((out, qc))
    (a, qc_a), (b, qc_b) = runs
    for name in ("enhanced_liver_vessels", "portal_vein_branches", "hepatic_veins", "liver_vessels_skeleton_labeled"):
        assert np.array_equal(a[name], b[name][::-1, ::-1]), name
    assert a["portal_vein_branches"].any() and a["hepatic_veins"].any()
    assert qc_a["confidence"] == qc_b["confidence"]


@pytest.mark.slow
def test_the_demo_study_gives_the_same_outputs_stored_either_way(tmp_path, network_memo):
    # the network sees the same canonical image both times (its own test: test_inference.py), so it
    # runs once here (conftest.network_memo); the repair and the split run twice
    """demo/study is stored as a scanner writes it (IOP 1,0,0, 0,1,0); the same CT re-stored in RAS
    order (as the demo study was before) gives the same masks, voxel for voxel in patient space."""
    from livervessels.geometry import to_canonical
    from livervessels.study import load_ct_study
    from livervessels.synthetic.write_series import write_image_series

    study = load_ct_study(MODELS.parent / "demo" / "study")
    iop = [float(v) for v in study.series_volume.sorted_datasets[0].ImageOrientationPatient]
    assert iop == [1, 0, 0, 0, 1, 0]
    ras, ras_affine, original = to_canonical(np.asarray(study.volume.array), study.volume.affine)
    assert not np.allclose(ras_affine, study.volume.affine)  # a different storage, the same patient
    write_image_series(ras.astype(np.int16), ras_affine, tmp_path / "ras" / "ct", series_description="ras")
    other = load_ct_study(tmp_path / "ras")
    a = run_liver_vessels(study.volume, model_dirs=[MODELS], device="cpu").masks
    b = run_liver_vessels(other.volume, model_dirs=[MODELS], device="cpu").masks
    assert set(a) == set(b)
    for name in a:
        back = to_canonical(np.asarray(a[name]), study.volume.affine)[0]
        assert np.array_equal(back, np.asarray(b[name])), name


def test_the_contrast_phase_is_read_from_support_masks_that_are_not_outputs(tmp_path):
    import nibabel as nib

    from livervessels.pipeline import collect_masks

    # an arterial-phase scan: bright aorta, portal vein barely filled, liver and IVC unenhanced
    ct = np.zeros((48, 48, 24), np.int16)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    blocks = {"aorta": (0, 320), "portal_vein_and_splenic_vein": (1, 75), "inferior_vena_cava": (2, 45),
              "liver": (3, 63), "spleen": (4, 100)}
    for name, (k, hu) in blocks.items():
        mask = np.zeros(ct.shape, np.uint8)
        mask[2 + 9 * k:10 + 9 * k, 4:40, 4:20] = 1
        ct[mask > 0] = hu
        nib.save(nib.Nifti1Image(mask, affine), str(tmp_path / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros(ct.shape, np.uint8), affine), str(tmp_path / "liver_vessels.nii.gz"))
    result = collect_masks(Volume(ct, affine), support_dir=tmp_path)
    assert result.contrast_phase["phase"] == "arterial_early"
    assert result.contrast_phase["structures_hu"] == {name: float(hu) for name, (_, hu) in blocks.items()}
    assert "aorta" not in result.masks and "spleen" not in result.masks  # read for the phase only
    assert {"liver", "inferior_vena_cava", "portal_vein_and_splenic_vein", "liver_vessels"} == set(result.masks)
    # without the aorta and spleen files the phase comes from what is there
    (tmp_path / "aorta.nii.gz").unlink()
    (tmp_path / "spleen.nii.gz").unlink()
    fewer = collect_masks(Volume(ct, affine), support_dir=tmp_path).contrast_phase
    assert set(fewer["structures_hu"]) == {"liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"}


def test_couinaud_segments_need_the_split_and_say_why_when_it_is_missing(small_phantom):
    from livervessels.pipeline import add_couinaud_segments

    volume = Volume(small_phantom.ct, small_phantom.affine)
    with pytest.raises(InputError, match="add --split_portal_hepatic"):
        run_liver_vessels(volume, model_dirs=[MODELS], device="cpu", split=False, couinaud=True)
    with pytest.raises(InputError, match="add --couinaud"):
        run_liver_vessels(volume, model_dirs=[MODELS], device="cpu", resect=[5, 6])
    with pytest.raises(InputError, match="numbered 1-8"):
        run_liver_vessels(volume, model_dirs=[MODELS], device="cpu", couinaud=True, resect=[9])
    masks = {"liver": np.ones(volume.shape, np.uint8)}
    out, qc = add_couinaud_segments(volume, masks, {"skipped": "no liver in the field of view"})
    assert out is masks and qc["refused"] == "no liver in the field of view"
    assert add_couinaud_segments(volume, masks, {})[1]["refused"] == "no portal/hepatic split"
    low = {"confidence": {"overall": 0.4}}
    split = {**masks, "portal_vein_branches": masks["liver"], "hepatic_veins": masks["liver"]}
    out, qc = add_couinaud_segments(volume, split, low)
    assert "liver_segments_vessel" not in out and qc["refused"].startswith("split confidence 0.40")
