"""livervessels/synthetic/metrics.py: Dice, centerline Dice and component counts, the figures every
benchmark reports, on masks whose answers are known by hand."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.synthetic.metrics import cldice, dice, n_components


def _tube(radius: float, shape=(21, 21, 40), z=(2, 38)) -> np.ndarray:
    """A cylinder along axis 2. (skimage's thinning erases square bars of even width altogether, so
    the test shapes are round, as vessels are.)"""
    x, y, k = np.mgrid[:shape[0], :shape[1], :shape[2]]
    return ((x - 10) ** 2 + (y - 10) ** 2 <= radius ** 2) & (k >= z[0]) & (k < z[1])


def test_dice_by_hand():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :4] = True  # 4 voxels
    b[0, 0, 2:4] = True  # 2 voxels, both in a
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert dice(a, a) == 1.0 and dice(a, ~a) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0  # both empty: agreement


def test_cldice_ignores_thickness_but_not_a_cut():
    thin, thick = _tube(1.0), _tube(5.0)
    assert dice(thin, thick) < 0.2
    assert cldice(thin, thick) > 0.95  # the same centerline, at another radius
    cut = thick.copy()
    cut[:, :, 18:22] = False  # a 4-voxel gap in a 36-voxel tube
    assert cldice(cut, thick) < cldice(thick, thick) == 1.0
    assert 0.8 < cldice(cut, thick) < 1.0


def test_cldice_of_empty_masks():
    tube = _tube(3.0)
    empty = np.zeros_like(tube)
    assert cldice(empty, empty) == 1.0
    assert cldice(tube, empty) == 0.0 and cldice(empty, tube) == 0.0


def test_cldice_does_not_depend_on_where_the_masks_lie_in_the_array():
    tube, other = _tube(3.0), _tube(2.0, z=(10, 30))
    big_tube, big_other = (np.pad(m, ((30, 5), (0, 40), (7, 0))) for m in (tube, other))
    assert cldice(tube, other) == cldice(big_tube, big_other)
    edge = _tube(3.0, z=(0, 40))  # touching the array's first and last slice: still thinned
    assert cldice(edge, edge) == 1.0


def test_components_are_26_connected():
    m = np.zeros((6, 6, 6), bool)
    assert n_components(m) == 0
    m[0, 0, 0] = m[1, 1, 1] = True  # corner neighbours: one component
    assert n_components(m) == 1
    m[4, 4, 4] = True
    assert n_components(m) == 2
