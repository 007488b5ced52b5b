"""The split's voxel fallback (livervessels/split_geodesic.py): each vessel voxel takes the seed nearer
along a geodesic inside the mask costing length / radius. Checks a hand-computed one-voxel vessel
(labels, confidence, QC counts), the boundary between a thick and a thin vessel against the
integral of 1 / radius, its position in mm on isotropic and anisotropic grids, invariance under
scaling the spacing and flipping the volume, and unreached components."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.split_geodesic import split_geodesic
from livervessels.split_types import HEPATIC, PORTAL, SplitParams

from synthetic_ct import tube_mask


def _seeds(shape, portal=(), hepatic=()) -> dict[int, np.ndarray]:
    out = {PORTAL: np.zeros(shape, bool), HEPATIC: np.zeros(shape, bool)}
    for tree, points in ((PORTAL, portal), (HEPATIC, hepatic)):
        for point in points:
            out[tree][point] = True
    return out


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 1.0)])
def test_a_one_voxel_vessel_is_split_at_its_middle_with_the_hand_computed_confidence(spacing):
    # Nine voxels in a row, portal seed at one end, hepatic at the other. Every voxel's radius (the
    # distance to the nearest background voxel) is the same, min(spacing[1:]), so every step costs
    # the same and voxel x (0..8) lies x steps from the portal seed and 8 - x from the hepatic one.
    vessels = np.zeros((11, 3, 3), bool)
    vessels[1:10, 1, 1] = True
    timings = {}
    out = split_geodesic(vessels, spacing, _seeds(vessels.shape, [(1, 1, 1)], [(9, 1, 1)]),
                         SplitParams(low_confidence=0.6), timings)
    # the middle voxel is a tie, which goes to portal
    assert out.labels[1:10, 1, 1].tolist() == [PORTAL] * 5 + [HEPATIC] * 4
    assert not out.labels[~vessels].any() and not out.unreached.any()
    # confidence 0.5 + 0.5 |(8 - x) - x| / 8: mean 0.5 + 0.5 * 40 / 72; below 0.6 only at x = 4
    x = np.arange(9)
    conf = 0.5 + 0.5 * np.abs(8 - 2 * x) / 8
    assert out.qc["confidence"] == pytest.approx(round(conf.mean(), 3))
    assert out.qc["low_confidence_voxels"] == int((conf < 0.6).sum()) == 1
    assert "geodesic" in timings


def _l_vessel(spacing, r_thin=1.5):
    """A thick tube (radius 3 mm) along x from the portal seed at (5, 15, 5) mm to a corner at
    (35, 15, 5), then a thinner one (r_thin) up along z to the hepatic seed at (35, 15, 35)."""
    shape = tuple(int(round(e / s)) for e, s in zip((42, 30, 44), spacing))
    vessels = (tube_mask(shape, spacing, [((5, 15, 5), (35, 15, 5))], 3.0)
               | tube_mask(shape, spacing, [((35, 15, 5), (35, 15, 35))], r_thin))

    def at(mm):
        return tuple(int(round(c / s)) for c, s in zip(mm, spacing))

    return vessels, _seeds(shape, [at((5, 15, 5))], [at((35, 15, 35))])


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.5, 0.5, 1.0), (1.0, 0.5, 0.5)])
def test_a_thick_vessel_carries_its_tree_farther_than_a_thin_one(spacing):
    # Cost per mm = 1 / radius: the thick arm costs 30 / 3 = 10, the thin one 30 / 1.5 = 20, so the
    # trees meet where both have spent 15: 7.5 mm up the thin arm (z = 12.5 mm), not at the corner
    # (the middle of the 60 mm path). The same in mm on every grid, whichever axis is coarse.
    vessels, seeds = _l_vessel(spacing)
    labels = split_geodesic(vessels, spacing, seeds, SplitParams(), {}).labels
    z = np.argwhere(vessels)[:, 2] * spacing[2]
    x = np.argwhere(vessels)[:, 0] * spacing[0]
    thin_arm = x > 35 - 1.5 + 1e-6
    lab = labels[vessels]
    assert np.all(lab[thin_arm & (z <= 10.5)] == PORTAL)
    assert np.all(lab[thin_arm & (z >= 14.5)] == HEPATIC)
    assert np.all(lab[x < 30] == PORTAL)


def test_scaling_the_spacing_with_the_geometry_changes_nothing():
    # Lengths and radii both double: every step's length / radius, hence every label and the
    # confidence, stays the same (a power of two: the same floats).
    spacing = (0.5, 0.5, 1.0)
    vessels, seeds = _l_vessel(spacing)
    one = split_geodesic(vessels, spacing, seeds, SplitParams(), {})
    two = split_geodesic(vessels, tuple(2 * s for s in spacing), seeds, SplitParams(), {})
    assert np.array_equal(one.labels, two.labels) and one.qc == two.qc


def test_flipping_the_volume_flips_the_labels():
    spacing = (0.6, 0.6, 0.9)
    shape = (50, 40, 30)
    fork = (12.0, 12.0, 13.0)
    vessels = tube_mask(shape, spacing, [((2, 12, 13), fork), (fork, (27, 20, 13)), (fork, (25, 2, 20))], 2.0)
    seeds = _seeds(shape, [(4, 20, 14)], [(44, 33, 14), (41, 4, 22)])
    assert all(vessels[tuple(np.argwhere(m)[0])] for m in seeds.values())
    out = split_geodesic(vessels, spacing, seeds, SplitParams(), {})
    assert {PORTAL, HEPATIC} <= set(np.unique(out.labels[vessels]))
    for axis in range(3):
        flipped = split_geodesic(np.flip(vessels, axis), spacing, {k: np.flip(m, axis) for k, m in seeds.items()},
                                 SplitParams(), {})
        assert np.array_equal(np.flip(flipped.labels, axis), out.labels)


def test_one_seed_labels_its_component_and_leaves_the_others_unreached():
    vessels = np.zeros((20, 8, 8), bool)
    vessels[1:9, 2:5, 2:5] = True  # the seeded component
    vessels[12:19, 2:5, 2:5] = True  # a separate one, no seed
    out = split_geodesic(vessels, (1.0, 1.0, 1.0), _seeds(vessels.shape, hepatic=[(3, 3, 3)]), SplitParams(), {})
    assert np.all(out.labels[1:9, 2:5, 2:5] == HEPATIC)
    assert not out.labels[12:19].any() and not out.labels[~vessels].any()
    assert np.array_equal(out.unreached, vessels & (np.arange(20) >= 12)[:, None, None])
    # reached by one tree only: no doubt
    assert out.qc["confidence"] == 1.0 and out.qc["low_confidence_voxels"] == 0


_DIRECTIONS = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) > (0, 0, 0)]


@pytest.mark.parametrize("step", _DIRECTIONS, ids=str)
def test_a_one_voxel_vessel_in_any_of_the_13_directions_is_reached_to_its_end(step):
    # each voxel's only vessel neighbours lie along `step`: the path exists only if that direction
    # (or its opposite) is one of the graph's edges; the line starts at the volume's corner or edge,
    # where a neighbour's index is 0 on some axis
    vessels = np.zeros((6, 6, 6), bool)
    start = np.array([0 if s >= 0 else 5 for s in step])
    line = [tuple(start + i * np.asarray(step)) for i in range(6)]
    for voxel in line:
        vessels[voxel] = True
    out = split_geodesic(vessels, (1.0, 1.0, 1.0), _seeds(vessels.shape, [line[0]], []), SplitParams(), {})
    assert all(out.labels[voxel] == PORTAL for voxel in line)
    assert not out.unreached.any()


def test_a_vessel_along_the_far_edges_of_the_volume_is_traced_without_leaving_it():
    # voxels at the last index on every axis: neighbours past the end must be skipped, not wrapped
    vessels = np.zeros((5, 5, 5), bool)
    vessels[:, 4, 4] = vessels[4, :, 4] = True
    out = split_geodesic(vessels, (1.0, 1.0, 1.0), _seeds(vessels.shape, [(0, 4, 4)], [(4, 0, 4)]),
                         SplitParams(), {})
    assert set(out.labels[vessels].tolist()) == {PORTAL, HEPATIC} and not out.unreached.any()


def test_a_component_without_a_seed_stays_unreached_however_it_touches_the_border():
    # two separate lines, both along the volume's border; only the first holds a seed
    vessels = np.zeros((6, 6, 6), bool)
    vessels[0:6, 0, 0] = True  # seeded; holds voxel index 0 and 1 of the graph
    vessels[0:6, 5, 5] = True
    out = split_geodesic(vessels, (1.0, 1.0, 1.0), _seeds(vessels.shape, [(0, 0, 0)], []), SplitParams(), {})
    assert (out.labels[0:6, 0, 0] == PORTAL).all()
    assert not out.labels[0:6, 5, 5].any() and out.unreached[0:6, 5, 5].all()


def test_without_any_seed_nothing_is_labelled_and_the_confidence_is_zero():
    vessels = np.zeros((5, 3, 3), bool)
    vessels[:, 1, 1] = True
    out = split_geodesic(vessels, (1.0, 1.0, 1.0), _seeds(vessels.shape), SplitParams(), {})
    assert not out.labels.any() and out.unreached.sum() == 5
    # the same QC keys as the graph split's, which the reports read
    assert out.qc == {"confidence": 0.0, "low_confidence_voxels": 0, "low_confidence_branches": None,
                      "least_confident_branches": []}
