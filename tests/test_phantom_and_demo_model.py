"""The phantom generator and the reproducible demo-model training script."""
from __future__ import annotations

import subprocess
import sys

import cc3d
import numpy as np
import pydicom
from scipy import ndimage

from livervessels.synthetic.phantom import HEPATIC_TREE, LABELS, PORTAL_TREE, make_phantom

from conftest import ROOT


def test_phantom_ground_truth_is_consistent(phantom):
    vessels = phantom.labels == LABELS["liver_vessels"]
    assert np.array_equal(vessels, phantom.vessel_tree > 0)
    assert phantom.ct.dtype == np.int16 and phantom.labels.shape == phantom.ct.shape
    liver_hu = phantom.ct[phantom.labels == LABELS["liver"]].mean()
    ivc_hu = phantom.ct[phantom.labels == LABELS["inferior_vena_cava"]].mean()
    assert 60 < liver_hu < 140 and ivc_hu > liver_hu + 40  # portal venous phase contrast
    # the portal tree hangs off the trunk, the hepatic tree drains into the IVC
    trunk = phantom.labels == LABELS["portal_vein_and_splenic_vein"]
    portal = cc3d.connected_components(trunk | (phantom.vessel_tree == PORTAL_TREE), connectivity=26)
    assert np.bincount(portal[portal > 0]).max() > 0.9 * (trunk.sum() + (phantom.vessel_tree == PORTAL_TREE).sum())
    ivc = phantom.labels == LABELS["inferior_vena_cava"]
    hepatic = cc3d.connected_components(ivc | (phantom.vessel_tree == HEPATIC_TREE), connectivity=26)
    assert np.bincount(hepatic[hepatic > 0]).max() > 0.9 * (ivc.sum() + (phantom.vessel_tree == HEPATIC_TREE).sum())


def test_phantom_trees_interleave_and_touch(phantom):
    from scipy import ndimage

    portal = phantom.vessel_tree == PORTAL_TREE
    hepatic = phantom.vessel_tree == HEPATIC_TREE
    touching = portal & ndimage.binary_dilation(hepatic, np.ones((3, 3, 3), bool))
    assert touching.sum() > 20
    # the trees share the liver's extent rather than sitting in separate halves
    for axis in range(3):
        p = np.nonzero(portal.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        h = np.nonzero(hepatic.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        overlap = min(p.max(), h.max()) - max(p.min(), h.min())
        assert overlap > 0.5 * min(np.ptp(p), np.ptp(h))


def test_phantom_is_deterministic_and_physical():
    a, b = make_phantom(seed=3), make_phantom(seed=3)
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.vessel_tree, b.vessel_tree)
    assert not np.array_equal(make_phantom(seed=4).vessel_tree, a.vessel_tree)
    # the same anatomy in mm on a finer grid: liver volume within a few percent
    fine = make_phantom(seed=3, shape=(200, 200, 80), spacing=(1.2, 1.2, 2.0))
    vol = lambda p: (p.labels > 0).sum() * np.prod(p.spacing)  # noqa: E731
    assert abs(vol(fine) / vol(a) - 1) < 0.05


def _closest_approach(a0, a1, b0, b1) -> float:
    """Distance (mm) between two segments, sampled finely."""
    t = np.linspace(0.0, 1.0, 60)[:, None]
    pa, pb = a0 + t * (a1 - a0), b0 + t * (b1 - b0)
    return float(np.linalg.norm(pa[:, None] - pb[None], axis=2).min())


def _interpenetrating_pairs(ph) -> int:
    """Pairs of vessel segments (not parent/child or siblings) whose axes come closer than r1 + r2."""
    segs = ph.segments
    count = 0
    for i, a in enumerate(segs):
        for j in range(i + 1, len(segs)):
            b = segs[j]
            if b.parent == i or a.parent == j or (a.parent == b.parent and a.tree == b.tree):
                continue
            reach = a.radius_mm + b.radius_mm
            lo = np.maximum(np.minimum(a.start_mm, a.end_mm), np.minimum(b.start_mm, b.end_mm)) - reach
            hi = np.minimum(np.maximum(a.start_mm, a.end_mm), np.maximum(b.start_mm, b.end_mm)) + reach
            if np.any(lo > hi):  # bounding boxes apart
                continue
            if _closest_approach(a.start_mm, a.end_mm, b.start_mm, b.end_mm) < reach - 0.3:
                count += 1
    return count


def test_phantom_vessels_touch_but_do_not_interpenetrate_with_a_clearance():
    touching = make_phantom(seed=3, vessel_clearance_mm=0.0)
    assert _interpenetrating_pairs(touching) == 0
    trees = {s.tree for s in touching.segments}
    assert trees == {1, 2} and len(touching.segments) > 150  # the trees still fill the liver
    vt = touching.vessel_tree
    contact = ndimage.binary_dilation(vt == 1, np.ones((3, 3, 3), bool)) & (vt == 2)
    assert contact.sum() > 0  # and still touch somewhere
    # the default (the demo model's training data) lets vessels pass through each other
    assert _interpenetrating_pairs(make_phantom(seed=3)) > 5


def test_demo_study_has_real_uids():
    files = sorted((ROOT / "demo" / "study").rglob("*.dcm"))
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    for ds in datasets:
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            assert pydicom.uid.UID(str(ds[kw].value)).is_valid
    assert len({str(ds.SOPInstanceUID) for ds in datasets}) == len(files)
    assert len({str(ds.StudyInstanceUID) for ds in datasets}) == 1


def test_training_script_writes_an_official_layout_model(tmp_path, small_phantom):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "train_demo_model.py"), "--out", str(tmp_path),
                    "--iterations", "2", "--cases", "1"], check=True, capture_output=True, cwd=ROOT)
    from livervessels import nnunet_runner
    from livervessels.model_store import find_model_folder
    from livervessels.tasks import TASKS

    folder = find_model_folder(TASKS["demo_liver"].parts[0], [tmp_path])
    assert folder == tmp_path / "Dataset990_LiverVesselsDemo" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    model = nnunet_runner.load_model(folder)
    labels = nnunet_runner.predict_labels(model, small_phantom.ct.astype(np.float32), small_phantom.spacing)
    assert labels.shape == small_phantom.ct.shape


def test_algorithms_do_not_import_holoscan():
    code = ("import sys, livervessels.pipeline, livervessels.inference, livervessels.outputs.dicom_seg;"
            "print(any(m.split('.')[0] in ('holoscan', 'monai') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
