"""Outputs: DICOM SEG geometry and round trip, dciodvfy, statistics, preview, meshes."""
from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pytest

from livervessels.geometry import LPS_TO_RAS, reorient_to_grid
from livervessels.outputs.dicom_seg import read_seg_labels, write_dicom_seg
from livervessels.outputs.measurements import structure_statistics
from livervessels.outputs.meshes import export_meshes, read_stl
from livervessels.outputs.preview import render_preview
from livervessels.study import load_ct_study
from livervessels.synthetic.phantom import LABELS
from livervessels.synthetic.write_series import JPEG2000Lossless

GEOMETRIES = ["ascending", "descending", "flipped_inplane", "non_square", "jpeg2000", "shuffled"]


def _masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "liver": labels == LABELS["liver"],
        "inferior_vena_cava": labels == LABELS["inferior_vena_cava"],
        "enhanced_liver_vessels": labels == LABELS["liver_vessels"],
        "portal_vein_branches": np.zeros(labels.shape, bool),  # empty: must be left out
    }


def _written_study(tmp_path, phantom, write_series, case):
    ct, labels = phantom.ct[:, :, 8:40], phantom.labels[:, :, 8:40]
    aff = phantom.affine.copy()
    aff[:3, 3] = phantom.affine[:3, :3] @ np.array([0, 0, 8]) + phantom.affine[:3, 3]
    kw = {}
    if case == "descending":
        aff[:3, 3] += aff[:3, 2] * (ct.shape[2] - 1)
        aff[:3, 2] *= -1
        ct, labels = ct[:, :, ::-1], labels[:, :, ::-1]
    elif case == "flipped_inplane":
        aff[:3, 3] += aff[:3, 0] * (ct.shape[0] - 1) + aff[:3, 1] * (ct.shape[1] - 1)
        aff[:3, :2] *= -1
        ct, labels = ct[::-1, ::-1], labels[::-1, ::-1]
    elif case == "non_square":
        aff[:3, 0] *= 0.5
        ct, labels = np.repeat(ct, 2, axis=0), np.repeat(labels, 2, axis=0)
    elif case == "jpeg2000":
        kw["transfer_syntax"] = JPEG2000Lossless
    folder = write_series(ct, aff, **kw)
    if case == "shuffled":
        files = sorted(folder.iterdir())
        for f, i in zip(files, np.random.default_rng(1).permutation(len(files))):
            f.rename(folder / f"z{i:03d}.dcm")
    return folder, labels, aff


@pytest.mark.parametrize("case", GEOMETRIES)
def test_seg_geometry_and_round_trip(tmp_path, small_phantom, write_series, case):
    folder, labels, aff = _written_study(tmp_path, small_phantom, write_series, case)
    study = load_ct_study(folder)
    # the study's own grid may differ from how we wrote it (sorted slices): map the truth onto it
    truth = reorient_to_grid(labels, aff, study.volume.shape, study.volume.affine)
    masks = _masks(truth)
    seg_path = tmp_path / "seg.dcm"
    result = write_dicom_seg(masks, study.series_volume.sorted_datasets, seg_path, algorithm_name="test")
    assert result.segments == ["liver", "enhanced_liver_vessels", "inferior_vena_cava"]
    assert result.empty_segments == ["portal_vein_branches"]

    # 1. our reader: frames line up with the source instances, voxel for voxel
    rebuilt = read_seg_labels(seg_path, study.volume.meta["sop_instance_uids"], study.volume.shape)
    for name in result.segments:
        assert np.array_equal(rebuilt[name], masks[name]), name

    # 2. highdicom's own geometry (positions and orientation in the SEG): same voxels in patient space
    seg = hd.seg.segread(seg_path)
    hd_volume = seg.get_volume(combine_segments=False)
    array = np.asarray(hd_volume.array)  # (slices, rows, columns, segments), affine on (slice, row, column)
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1  # our (column, row, slice) -> their (slice, row, column)
    affine_ras = LPS_TO_RAS @ hd_volume.affine @ perm
    for j, name in enumerate(result.segments):
        ours = reorient_to_grid(array[..., j].transpose(2, 1, 0), affine_ras, study.volume.shape,
                                study.volume.affine, atol_mm=0.05) if array.shape[0] == study.volume.shape[2] \
            else None
        if ours is None:  # frames without any segment may be left out of the volume's extent
            pytest.fail("highdicom volume lost slices")
        assert np.array_equal(ours > 0, masks[name]), name
    # only frames holding a segment are stored
    assert seg.NumberOfFrames == sum(int(masks[n][:, :, k].any()) for n in result.segments
                                     for k in range(study.volume.shape[2]))


def test_seg_is_written_when_the_source_lacks_type2_patient_and_study_attributes(tmp_path, small_phantom,
                                                                                   write_series, dciodvfy):
    """Research exports and series converted from NIfTI often leave them out; DICOM allows them empty."""
    import pydicom

    from livervessels.outputs.dicom_seg import TYPE2_PATIENT_STUDY

    folder, labels, aff = _written_study(tmp_path, small_phantom, write_series, "ascending")
    for f in folder.iterdir():
        ds = pydicom.dcmread(f)
        for keyword in TYPE2_PATIENT_STUDY:
            if keyword in ds:
                delattr(ds, keyword)
        ds.save_as(f)
    study = load_ct_study(folder)
    truth = reorient_to_grid(labels, aff, study.volume.shape, study.volume.affine)
    sources = study.series_volume.sorted_datasets
    result = write_dicom_seg(_masks(truth), sources, tmp_path / "seg.dcm", algorithm_name="test")
    assert result.path is not None and result.segments
    seg = pydicom.dcmread(result.path)
    for keyword in TYPE2_PATIENT_STUDY:
        assert keyword in seg and str(seg[keyword].value or "") == "", keyword
        assert keyword not in sources[0]  # the source datasets are left as they were
    rebuilt = read_seg_labels(result.path, study.volume.meta["sop_instance_uids"], study.volume.shape)
    assert np.array_equal(rebuilt["liver"], truth == LABELS["liver"])
    report = subprocess.run([dciodvfy, str(result.path)], capture_output=True, text=True)
    assert "Error" not in report.stdout + report.stderr, (report.stdout + report.stderr)[-2000:]


def test_dciodvfy_reports_no_error_on_the_app_seg(demo_app_output, dciodvfy):
    result = subprocess.run([dciodvfy, str(demo_app_output / "segmentations.dcm")], capture_output=True, text=True)
    report = result.stdout + result.stderr
    assert "Segmentation" in report  # it recognised the IOD
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert errors == [], "\n".join(errors)


def test_seg_segments_carry_codes_colours_and_algorithm(demo_app_output):
    seg = hd.seg.segread(demo_app_output / "segmentations.dcm")
    described = {d.tracking_id: d for d in (seg.get_segment_description(n) for n in seg.get_segment_numbers())}
    # SNOMED CT concept IDs as published (DICOM PS3.16 CID 7166/4031/12114), written out here, not
    # imported; the trunk's combined concept is the one TotalSegmentator's SNOMED mapping uses
    expected = {"liver": ("10200004", "Liver"), "enhanced_liver_vessels": ("59820001", "Blood vessel"),
                "portal_vein_branches": ("32764006", "Portal vein"), "hepatic_veins": ("8993003", "Hepatic vein"),
                "inferior_vena_cava": ("64131007", "Inferior vena cava"),
                "portal_vein_and_splenic_vein": ("110765007", "Portal vein and splenic vein")}
    found = {name: (d.segmented_property_type.value, d.segmented_property_type.meaning)
             for name, d in described.items()}
    assert found == expected
    # a viewer that looks segments up by code must tell every segment apart
    assert len({d.segmented_property_type.value for d in described.values()}) == len(described)
    assert all(d.segmented_property_type.scheme_designator == "SCT" for d in described.values())
    vessels = described["enhanced_liver_vessels"]
    for name in ("enhanced_liver_vessels", "portal_vein_branches", "hepatic_veins"):
        assert described[name].anatomic_regions[0].value == "10200004"  # blood vessels, in the liver
    assert all(hasattr(d, "RecommendedDisplayCIELabValue") for d in described.values())
    algorithm = vessels.algorithm_identification[0]
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert seg.ContentCreatorName and seg.SeriesDescription and seg.SeriesNumber


def test_statistics_in_mm_and_hu(small_phantom):
    from livervessels.geometry import Volume

    volume = Volume(small_phantom.ct, small_phantom.affine)
    masks = {"liver": small_phantom.labels == LABELS["liver"]}
    stats = structure_statistics(masks, volume)["structures"]["liver"]
    expected_ml = masks["liver"].sum() * np.prod(small_phantom.spacing) / 1000
    assert stats["volume_ml"] == pytest.approx(expected_ml, rel=1e-3)
    assert stats["mean_hu"] == pytest.approx(small_phantom.ct[masks["liver"]].mean(), abs=0.1)


def test_preview_is_a_picture(tmp_path, small_phantom, artifacts):
    from PIL import Image

    from livervessels.geometry import Volume

    masks = {"liver": small_phantom.labels == 1, "portal_vein_branches": small_phantom.vessel_tree == 1,
             "hepatic_veins": small_phantom.vessel_tree == 2}
    path = render_preview(Volume(small_phantom.ct, small_phantom.affine), masks, tmp_path / "p.png", title="t",
                          split_qc={"portal_fraction": 0.4, "hepatic_fraction": 0.6})
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert img.shape[0] > 300 and img.shape[1] > 600
    portal = np.all(np.abs(img - np.array([170, 60, 200])) < 40, axis=-1)
    hepatic = np.all(np.abs(img - np.array([30, 144, 255])) < 40, axis=-1)
    assert portal.sum() > 200 and hepatic.sum() > 200  # both trees drawn in their colours
    shutil.copy(path, artifacts / "preview_phantom.png")


def test_meshes_are_in_patient_lps_millimetres(tmp_path, small_phantom):
    liver = small_phantom.labels == LABELS["liver"]
    affine = small_phantom.affine.copy()
    affine[:3, 0] *= -1  # a mirrored grid: faces must still point outwards
    affine[:3, 3] += small_phantom.affine[:3, 0] * (liver.shape[0] - 1)
    flipped = liver[::-1]
    (path,) = export_meshes({"liver": flipped}, affine, tmp_path)
    tri = read_stl(path)
    verts = tri.reshape(-1, 3)
    idx = np.argwhere(flipped)
    world = (LPS_TO_RAS @ affine @ np.c_[idx, np.ones(len(idx))].T).T[:, :3]
    assert np.allclose(verts.min(0), world.min(0), atol=3) and np.allclose(verts.max(0), world.max(0), atol=3)
    # closed surface, outward normals: the signed volume is positive and near the mask's volume
    signed = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert signed == pytest.approx(liver.sum() * np.prod(small_phantom.spacing), rel=0.1)


def test_vessel_tree_statistics_measure_the_phantom_trees(phantom):
    from livervessels.geometry import Volume

    masks = {"portal_vein_branches": phantom.vessel_tree == 1, "hepatic_veins": phantom.vessel_tree == 2}
    trees = structure_statistics(masks, Volume(phantom.ct, phantom.affine))["vessel_trees"]
    for name, tree in (("portal_vein_branches", 1), ("hepatic_veins", 2)):
        segments = [s for s in phantom.segments if s.tree == tree]
        true_length = sum(np.linalg.norm(s.end_mm - s.start_mm) for s in segments)
        stats = trees[name]
        assert 0.75 * true_length < stats["total_length_mm"] < 1.15 * true_length, (name, stats, true_length)
        assert stats["max_radius_mm"] == pytest.approx(max(s.radius_mm for s in segments), rel=0.35)
        assert 0 < stats["terminal_branches"] < stats["branches"]
