"""livervessels/outputs/nifti.py: mask and label-map files, read back with nibabel.

Checks that what lands on disk is what was written: uint8 masks with the affine in the header
(voxel (i, j, k) at the same world position after the round trip), one file per structure even
when written in parallel, label maps whose type holds every label, and label names that survive
both the header extension and the sidecar.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import nibabel as nib
import numpy as np
import pytest

from livervessels.outputs.nifti import (
    LabelMasks,
    label_table_xml,
    read_label_names,
    write_mask,
    write_masks,
    write_multilabel,
)

# an oblique LPS-stored grid with non-square voxels and an offset: nothing an identity would hide
_ROT = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
    [[1.0, 0.0, 0.0], [0.0, np.cos(0.3), -np.sin(0.3)], [0.0, np.sin(0.3), np.cos(0.3)]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT @ np.diag([-0.7, -0.8, 2.5])
AFFINE[:3, 3] = [120.5, -80.25, 300.0]


def _mask(shape=(5, 6, 7), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) > 0.6


def test_a_mask_is_stored_as_uint8_with_its_affine(tmp_path):
    mask = _mask()
    path = write_mask(mask, AFFINE, tmp_path / "liver.nii.gz")
    img = nib.load(path)
    assert img.get_data_dtype() == np.uint8
    data = np.asanyarray(img.dataobj)
    assert data.dtype == np.uint8 and np.array_equal(data, mask.astype(np.uint8))
    assert set(np.unique(data)) <= {0, 1}
    # a voxel read back sits where it was: same world position through the stored affine
    for index in ([0, 0, 0], [4, 5, 6], [2, 3, 1]):
        assert np.allclose(img.affine @ [*index, 1], AFFINE @ [*index, 1], atol=1e-4)


def test_parallel_writes_give_one_file_per_mask_each_with_its_own_voxels(tmp_path):
    masks = {f"structure_{n}": _mask(seed=n) for n in range(12)}
    out = tmp_path / "new" / "folder"  # created on demand
    paths = write_masks(masks, AFFINE, out, threads=4)
    assert [p.name for p in paths] == [f"{n}.nii.gz" for n in masks]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.nii.gz" for n in masks)
    for name, mask in masks.items():  # no thread wrote another worker's mask
        assert np.array_equal(np.asanyarray(nib.load(out / f"{name}.nii.gz").dataobj), mask.astype(np.uint8))


def test_label_masks_is_a_mapping_of_one_mask_per_class():
    labels = np.zeros((3, 4, 5), np.uint8)
    labels[0, :, :] = 1
    labels[1, 1, 1] = 3  # class 2 has no voxel
    masks = LabelMasks(labels, {1: "liver", 2: "spleen", 3: "portal_vein"})
    assert len(masks) == 3 and list(masks) == ["liver", "spleen", "portal_vein"]
    assert masks["liver"].sum() == 20 and masks["portal_vein"].sum() == 1 and masks["spleen"].sum() == 0
    assert masks["liver"].dtype == np.uint8
    with pytest.raises(KeyError):
        masks["kidney"]


def test_label_masks_can_be_written_without_building_every_mask_first(tmp_path):
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[:2] = 1
    labels[2:, :2] = 2
    write_masks(LabelMasks(labels, {1: "a", 2: "b"}), np.eye(4), tmp_path, threads=2)
    assert np.array_equal(np.asanyarray(nib.load(tmp_path / "b.nii.gz").dataobj), (labels == 2).astype(np.uint8))


@pytest.mark.parametrize("top_label, dtype", [(117, np.uint8), (300, np.uint16)])
def test_a_label_map_uses_a_type_that_holds_every_label(tmp_path, top_label, dtype):
    labels = np.zeros((4, 5, 6), np.int64)
    labels[1, 2, 3] = top_label
    labels[0, 0, 0] = 1
    path = write_multilabel(labels, AFFINE, {1: "liver", top_label: "last"}, tmp_path / "all.nii.gz")
    img = nib.load(path)
    assert img.get_data_dtype() == dtype
    data = np.asanyarray(img.dataobj)
    assert data[1, 2, 3] == top_label and data[0, 0, 0] == 1  # 300 would wrap to 44 in uint8
    assert np.allclose(img.affine, AFFINE, atol=1e-4)


def test_label_names_survive_the_header_extension_and_the_sidecar(tmp_path):
    classes = {2: "hepatic_veins", 1: "liver", 10: "a <b> & \"c\""}  # XML's special characters too
    for name in ("ml.nii.gz", "plain.nii"):
        path = write_multilabel(np.zeros((2, 2, 2)), np.eye(4), classes, tmp_path / name)
        assert read_label_names(path) == classes
        sidecar = tmp_path / (name.split(".")[0] + ".json")  # <name>.json beside it, not <name>.nii.json
        assert json.loads(sidecar.read_text()) == {str(k): v for k, v in classes.items()}


def test_a_nifti_without_our_extension_has_no_label_names(tmp_path):
    path = write_mask(np.zeros((2, 2, 2)), np.eye(4), tmp_path / "m.nii.gz")
    assert read_label_names(path) == {}


def test_the_label_table_is_well_formed_xml_in_label_order():
    root = ET.fromstring(label_table_xml({3: "c & d", 1: "a"}).encode())  # a parser, not the writer's regex
    labels = root.findall(".//LabelTable/Label")
    assert [(int(e.get("Key")), e.text) for e in labels] == [(1, "a"), (3, "c & d")]
    for e in labels:
        assert all(0.0 <= float(e.get(c)) <= 1.0 for c in ("Red", "Green", "Blue", "Alpha"))


def test_masks_written_in_parallel_carry_the_affine(tmp_path):
    write_masks({"liver": _mask(), "spleen": _mask(seed=1)}, AFFINE, tmp_path, threads=2)
    for name in ("liver", "spleen"):
        img = nib.load(tmp_path / f"{name}.nii.gz")
        assert np.allclose(img.affine, AFFINE, atol=1e-4) and img.get_data_dtype() == np.uint8


@pytest.mark.parametrize("top_label, dtype", [(255, np.uint8), (256, np.uint16)])
def test_the_label_map_type_changes_exactly_above_255(tmp_path, top_label, dtype):
    path = write_multilabel(np.full((2, 2, 2), top_label), np.eye(4), {top_label: "x"}, tmp_path / "m.nii.gz")
    assert nib.load(path).get_data_dtype() == dtype


def test_a_label_map_without_classes_is_written_as_uint8(tmp_path):
    path = write_multilabel(np.zeros((2, 2, 2)), np.eye(4), {}, tmp_path / "empty.nii.gz")
    assert nib.load(path).get_data_dtype() == np.uint8 and read_label_names(path) == {}


def test_the_label_colours_are_the_same_on_every_run():
    # a label map written twice must be byte-identical (reproducible outputs, cohort resumption)
    assert label_table_xml({1: "a", 2: "b"}) == label_table_xml({1: "a", 2: "b"})
