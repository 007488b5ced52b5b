"""livervessels/outputs/measurements.py: statistics.json's volumes, Hounsfield units and tree measures.

A mask's volume is its voxel count times the volume of one voxel, and one voxel of a grid is the
parallelepiped spanned by the affine's three columns: |det| of its 3 x 3 part (the product of the
spacings only when the axes are orthogonal). HU statistics are checked on hand-picked values.
"""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.geometry import Volume
from livervessels.outputs.measurements import structure_statistics, vessel_tree_statistics
from livervessels.vessel_graph import build_vessel_graph, summarize_tree


def _rotation_z(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def _affine(matrix: np.ndarray) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = [-120.0, 80.0, 35.0]
    return affine


@pytest.mark.parametrize("rotated", [False, True])
def test_volume_in_ml_is_the_voxel_count_times_the_voxel_volume(rotated):
    # 10 x 5 x 4 = 200 voxels of 0.8 x 0.7 x 2.5 mm = 1.4 mm3: 280 mm3 = 0.28 ml, however the grid is turned
    matrix = np.diag([0.8, 0.7, 2.5])
    affine = _affine(_rotation_z(35.0) @ matrix if rotated else matrix)
    mask = np.zeros((16, 9, 7), bool)
    mask[3:13, 2:7, 1:5] = True
    stats = structure_statistics({"liver": mask}, Volume(np.zeros(mask.shape, np.int16), affine))
    assert stats["structures"]["liver"]["voxels"] == 200
    assert stats["structures"]["liver"]["volume_ml"] == pytest.approx(0.28, abs=1e-9)


def test_volume_of_a_sheared_gantry_tilt_grid_is_not_inflated():
    # dicom/volume.py keeps a gantry-tilted series sheared: each slice shifted along y by 2.5 mm * tan(20 deg).
    # The slices are still 2.5 mm apart and each pixel 0.8 x 0.7 mm, so one voxel is 1.4 mm3 (|det|);
    # 1000 voxels are 1.4 ml. The step's length, 2.5 / cos(20 deg) = 2.66 mm, is not the slice spacing.
    matrix = np.diag([0.8, 0.7, 2.5])
    matrix[1, 2] = 2.5 * np.tan(np.radians(20.0))
    assert abs(np.linalg.det(matrix)) == pytest.approx(1.4)
    mask = np.zeros((12, 12, 12), bool)
    mask[1:11, 1:11, 1:11] = True
    stats = structure_statistics({"liver": mask}, Volume(np.zeros(mask.shape, np.int16), _affine(matrix)))
    # the product of the column lengths gave 1.49
    assert stats["structures"]["liver"]["volume_ml"] == pytest.approx(1.4, abs=1e-3)


def test_hounsfield_statistics_are_those_of_the_masked_voxels_only():
    ct = np.full((4, 4, 4), 1000, np.int16)  # bone outside the mask must not count
    mask = np.zeros(ct.shape, bool)
    for index, hu in zip([(0, 0, 0), (1, 2, 3), (3, 3, 3), (2, 0, 1)], [-10, 0, 10, 100]):
        ct[index], mask[index] = hu, True
    stats = structure_statistics({"liver": mask}, Volume(ct, np.eye(4)))["structures"]["liver"]
    assert stats == {"voxels": 4, "volume_ml": 0.004, "mean_hu": 25.0, "median_hu": 5.0}


def test_an_empty_mask_has_zero_volume_and_no_hounsfield_values():
    empty = np.zeros((5, 5, 5), bool)
    stats = structure_statistics({"liver": empty, "hepatic_veins": empty}, Volume(np.zeros((5, 5, 5)), np.eye(4)))
    assert stats["structures"]["hepatic_veins"] == {"voxels": 0, "volume_ml": 0.0, "mean_hu": None, "median_hu": None}
    assert stats["vessel_trees"] == {}  # an empty tree has nothing to measure


def _tube(shape, start, length: int, radius: float = 2.0) -> np.ndarray:
    """A straight tube along array axis 0."""
    i, j, k = np.mgrid[:shape[0], :shape[1], :shape[2]]
    return ((j - start[1]) ** 2 + (k - start[2]) ** 2 <= radius ** 2) & (i >= start[0]) & (i < start[0] + length)


def test_only_non_empty_vessel_trees_are_measured_and_a_straight_tube_is_one_branch_of_its_length():
    shape, spacing = (60, 24, 24), (0.5, 0.6, 0.6)
    tube = _tube(shape, (10, 11, 12), 40)  # 40 voxels of 0.5 mm: 20 mm long
    masks = {"liver": np.ones(shape, bool), "hepatic_veins": tube, "portal_vein_branches": np.zeros(shape, bool)}
    trees = structure_statistics(masks, Volume(np.full(shape, 150, np.int16), np.diag([*spacing, 1.0])))["vessel_trees"]
    assert set(trees) == {"hepatic_veins"}  # the liver is no tree; the empty portal tree is left out
    veins = trees["hepatic_veins"]
    assert veins["branches"] == 1
    assert veins["total_length_mm"] == pytest.approx(20.0, rel=0.1)
    assert 0.6 <= veins["max_radius_mm"] <= 1.5  # 2 voxels of 0.6 mm, give or take the voxel edge


def test_cropping_to_the_tree_does_not_change_its_measures():
    # the tree is measured on a crop around it; the full grid must give the same graph
    shape, spacing = (50, 30, 26), (0.7, 0.7, 1.2)
    tree = _tube(shape, (8, 12, 13), 30) | _tube(shape, (20, 20, 13), 20, radius=1.5)
    tree[20, 12:21, 12:15] = True  # a bridge: one connected tree with a side branch
    ct = np.random.default_rng(0).normal(150, 20, shape).astype(np.float32)
    volume = Volume(ct, np.diag([*spacing, 1.0]))
    full = summarize_tree(build_vessel_graph(tree, spacing, ct=ct))
    assert vessel_tree_statistics(tree, volume) == full
