"""Grid geometry (livervessels/geometry.py): every reorientation keeps each voxel at its world
position, in millimetres, whatever order and direction the axes were stored in."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from livervessels.errors import InputError
from livervessels.geometry import (
    CanonicalFrame,
    from_canonical,
    nifti_image,
    reorient_to_grid,
    same_grid,
    to_canonical,
    voxel_spacing,
)

# a scanner's LPS series (x and y flipped against RAS) and a grid with its first and last axes swapped
LPS = np.array([[-0.7, 0, 0, 120.0], [0, -0.8, 0, 90.0], [0, 0, 2.5, -300.0], [0, 0, 0, 1]])
SWAPPED = np.array([[0, 0, 0.9, -50.0], [0, -0.6, 0, 40.0], [2.0, 0, 0, 10.0], [0, 0, 0, 1]])


def _world(affine: np.ndarray, index: np.ndarray) -> np.ndarray:
    return (affine @ np.append(index, 1.0))[:3]


def test_voxel_spacing_is_the_length_of_each_axis_step_also_when_rotated():
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.75, 0.8, 1.5])
    assert voxel_spacing(affine) == pytest.approx((0.75, 0.8, 1.5))
    assert voxel_spacing(SWAPPED) == pytest.approx((2.0, 0.6, 0.9))


@pytest.mark.parametrize("affine", [LPS, SWAPPED], ids=["lps", "swapped"])
def test_to_canonical_keeps_every_voxel_where_it_is_in_the_world(affine):
    array = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    canon, canon_affine, original = to_canonical(array, affine)
    # RAS: each array axis runs along +x, +y, +z in turn
    assert np.all(np.diag(canon_affine[:3, :3]) > 0) and np.count_nonzero(canon_affine[:3, :3]) == 3
    inverse = np.linalg.inv(affine)
    for index in np.ndindex(canon.shape):
        back = np.rint(inverse @ np.append(_world(canon_affine, np.array(index)), 1.0))[:3].astype(int)
        assert array[tuple(back)] == canon[index]
    assert np.array_equal(from_canonical(canon, original), array)


def test_the_canonical_frame_reorders_spacing_with_the_axes_and_copies_nothing_when_already_ras():
    array = np.random.default_rng(1).random((4, 5, 6))
    frame = CanonicalFrame(SWAPPED, array.shape)
    canon, canon_affine, _ = to_canonical(array, SWAPPED)
    assert np.array_equal(frame.to(array), canon) and np.allclose(frame.affine, canon_affine)
    assert frame.spacing == pytest.approx(voxel_spacing(canon_affine))
    assert frame.spacing == pytest.approx((0.9, 0.6, 2.0))
    assert np.array_equal(frame.back(frame.to(array)), array)
    assert frame.to(None) is None and frame.back(None) is None
    ras = CanonicalFrame(np.diag([0.8, 0.8, 1.5, 1.0]), array.shape)
    assert ras.is_identity and ras.to(array) is array and ras.back(array) is array


def test_a_mask_stored_in_another_axis_order_comes_onto_the_image_grid_and_a_moved_one_is_refused():
    shape = (4, 5, 6)
    mask = np.zeros(shape, np.uint8)
    mask[1, 2, 3] = 1
    # the same grid stored RAS (x and y flipped against LPS): the voxel keeps its world position
    canon, canon_affine, _ = to_canonical(mask, LPS)
    onto = reorient_to_grid(canon, canon_affine, shape, LPS, what="liver.nii.gz")
    assert np.array_equal(onto, mask)
    moved = canon_affine.copy()
    moved[0, 3] += 0.8  # one voxel over
    with pytest.raises(InputError, match="liver.nii.gz is not on the input image's grid"):
        reorient_to_grid(canon, moved, shape, LPS, what="liver.nii.gz")
    assert same_grid(shape, LPS, shape, LPS + 1e-5) and not same_grid(shape, LPS, shape, moved)


def test_nifti_images_carry_the_affine_in_both_qform_and_sform(tmp_path):
    nib.save(nifti_image(np.zeros((2, 3, 4), np.uint8), LPS), tmp_path / "m.nii.gz")
    img = nib.load(tmp_path / "m.nii.gz")
    assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
    assert np.allclose(img.get_qform(), LPS, atol=1e-5) and np.allclose(img.get_sform(), LPS, atol=1e-5)


def test_a_grid_within_a_hundredth_of_a_millimetre_is_the_same_grid_and_the_refusal_says_why():
    shape = (4, 5, 6)
    mask = np.zeros(shape, np.uint8)
    mask[1, 2, 3] = 1
    canon, canon_affine, _ = to_canonical(mask, LPS)
    rounded = canon_affine.copy()
    rounded[:3, 3] += 0.005  # a header written with fewer decimals: the same grid
    assert np.array_equal(reorient_to_grid(canon, rounded, shape, LPS), mask)
    with pytest.raises(InputError) as refused:
        reorient_to_grid(canon[:3], canon_affine, shape, LPS)
    assert str(refused.value) == ("image is not on the input image's grid (shape (3, 5, 6) vs (4, 5, 6), or a "
                                  "different position/spacing); it must be a segmentation of this very image")


def test_the_canonical_frame_reorders_a_spacing_it_is_given():
    # the spacing handed in (e.g. a DICOM header's, more exact than the affine's) is the one reordered
    frame = CanonicalFrame(SWAPPED, (4, 5, 6), spacing=(2.0004, 0.6002, 0.9001))
    assert frame.spacing == (0.9001, 0.6002, 2.0004)
