"""Seeds of the portal/hepatic split (livervessels/split_seeds.py): vessel voxels within
seed_distance_mm of the portal vein / IVC. Checks the seed set against scipy's distance transform
in mm on an anisotropic grid, the nearer-structure rule on a hand-built line, the thickness rule
(hepatic roots must be nearly as thick as the thickest contact, portal ones may be thinner), the
dome rule without an affine (distance from the portal vein), flips, and the box and affine helpers.
(The dome rule with an affine is tests/test_portal_hepatic.py's.)"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from livervessels.masks import padded_box, reach_voxels
from livervessels.split_seeds import crop_to_box, find_seeds, superior_height
from livervessels.split_types import HEPATIC, PORTAL, SplitParams

from synthetic_ct import tube_mask

# ---- helpers ---------------------------------------------------------------------------------------


def test_superior_height_is_the_world_z_step_of_each_array_axis():
    # Hand-written: axis 0 runs feet to head at 2.5 mm, axes 1 and 2 lie in the axial plane.
    affine = np.array([[0.0, -0.8, 0.0, 10.0], [0.0, 0.0, 0.8, -5.0], [2.5, 0.0, 0.0, 30.0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(superior_height(affine), [2.5, 0.0, 0.0])
    # An oblique affine: the superior displacement between any two voxels is their index difference
    # times it.
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    oblique = np.eye(4)
    oblique[:3, :3] = rotation * [0.7, 0.9, 3.0]
    oblique[:3, 3] = rng.normal(size=3) * 50
    i, j = rng.integers(0, 200, (2, 10, 3))
    world_z = (np.c_[i, np.ones(10)] @ oblique.T)[:, 2] - (np.c_[j, np.ones(10)] @ oblique.T)[:, 2]
    np.testing.assert_allclose((i - j) @ superior_height(oblique), world_z)


@pytest.mark.parametrize("reach_mm", [0.0, 2.0, 4.5])
def test_the_seed_search_box_holds_every_voxel_within_reach_mm_and_crops_to_bool(reach_mm):
    spacing = (0.5, 1.0, 2.5)
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = np.zeros((40, 30, 12), bool)
        lo = rng.integers(0, [35, 25, 9])
        mask[tuple(slice(a, a + k) for a, k in zip(lo, rng.integers(1, 5, 3)))] = True
        box = padded_box(mask, reach_voxels(spacing, reach_mm))  # as the seed search pads it
        near = ndimage.distance_transform_edt(~mask, sampling=spacing) <= reach_mm
        inside = np.zeros(mask.shape, bool)
        inside[box] = True
        assert np.all(inside[near])  # (the mask itself included)
        for b, n, s, k in zip(box, mask.shape, spacing, np.ptp(np.argwhere(mask), axis=0) + 1):
            assert 0 <= b.start < b.stop <= n
            assert b.stop - b.start <= k + 2 * (reach_mm / s + 2)  # not much more than that
        cropped = crop_to_box(mask.astype(np.uint8) * 7, box)
        assert cropped.dtype == bool and np.array_equal(cropped, mask[box])
    assert crop_to_box(None, box) is None


# ---- which vessel voxels are seeds -----------------------------------------------------------------


def _two_vessels(spacing, support_radius=4.0):
    """A support structure (a 4 mm tube along y at x = 5 mm) touched by a thick vessel (radius 4 mm,
    at y = 15 mm) and a thinner one (2 mm, at y = 50 mm), both running away along x.
    Returns (support, vessels, thick, thin)."""
    shape = tuple(int(round(e / s)) for e, s in zip((40, 70, 30), spacing))
    support = tube_mask(shape, spacing, [((5, 5, 15), (5, 65, 15))], support_radius)
    thick = tube_mask(shape, spacing, [((9.5, 15, 15), (38, 15, 15))], 4.0) & ~support
    thin = tube_mask(shape, spacing, [((9.5, 50, 15), (38, 50, 15))], 2.0) & ~support
    return support, thick | thin, thick, thin


def test_seeds_are_the_vessel_voxels_within_the_seed_distance_in_mm():
    spacing = (0.5, 0.8, 1.0)
    support, vessels, _, _ = _two_vessels(spacing)
    d_mm = ndimage.distance_transform_edt(~support, sampling=spacing)
    for distance in (3.0, 5.0):
        p = SplitParams(seed_distance_mm=distance, emerging_root_ratio=0.0)  # every contact patch kept
        expected = vessels & (d_mm <= distance)
        # (the same distance in voxels would pick other voxels: the test can tell mm from voxels)
        assert not np.array_equal(expected, vessels & (ndimage.distance_transform_edt(~support) <= distance))
        seeds = find_seeds(vessels, spacing, portal_vein=support, params=p)
        assert np.array_equal(seeds[PORTAL], expected)
        assert not seeds[HEPATIC].any()


def test_a_vessel_voxel_near_both_structures_seeds_the_nearer_one():
    # A one-voxel vessel from the portal vein (x = 0) to the IVC (x = 6), 1 mm voxels: at x = 1..5 the
    # distances are x and 6 - x mm; both within 3 mm at x = 3, a tie, which goes to portal.
    vessels = np.zeros((7, 3, 3), bool)
    vessels[1:6, 1, 1] = True
    pv = np.zeros_like(vessels)
    pv[0, 1, 1] = True
    ivc = np.zeros_like(vessels)
    ivc[6, 1, 1] = True
    seeds = find_seeds(vessels, (1.0, 1.0, 1.0), portal_vein=pv, ivc=ivc, params=SplitParams(seed_distance_mm=3.0))
    assert np.flatnonzero(seeds[PORTAL][:, 1, 1]).tolist() == [1, 2, 3]
    assert np.flatnonzero(seeds[HEPATIC][:, 1, 1]).tolist() == [4, 5]
    assert seeds[PORTAL].sum() == 3 and seeds[HEPATIC].sum() == 2


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.5, 0.8, 1.0)])
def test_thin_vessels_touching_the_ivc_are_no_hepatic_roots_but_may_be_portal_ones(spacing):
    # The thin vessel is about half as thick as the thick one: under seed_radius_ratio (0.7, the
    # IVC's rule: a hepatic trunk drains into it) but above emerging_root_ratio (0.4, the portal
    # vein's rule: its left branch may be much thinner than its right).
    support, vessels, thick, thin = _two_vessels(spacing)
    p = SplitParams(seed_distance_mm=3.0, seed_radius_ratio=0.7, emerging_root_ratio=0.4, seed_reach_mm=6.0)
    edt = ndimage.distance_transform_edt(vessels, sampling=spacing)
    ratio = edt[thin].max() / edt[thick].max()
    assert p.emerging_root_ratio < ratio < p.seed_radius_ratio
    near = vessels & (ndimage.distance_transform_edt(~support, sampling=spacing) <= p.seed_distance_mm)
    assert (near & thick).any() and (near & thin).any()  # both touch it
    as_ivc = find_seeds(vessels, spacing, ivc=support, params=p)
    assert np.array_equal(as_ivc[HEPATIC], near & thick) and not as_ivc[PORTAL].any()
    as_pv = find_seeds(vessels, spacing, portal_vein=support, params=p)
    assert np.array_equal(as_pv[PORTAL], near) and not as_pv[HEPATIC].any()
    # mirrored along y (the thin vessel first in the array): the mirrored seeds
    mirrored = find_seeds(np.flip(vessels, 1), spacing, ivc=np.flip(support, 1), params=p)
    assert np.array_equal(mirrored[HEPATIC], np.flip(as_ivc[HEPATIC], 1))


def test_without_an_affine_the_ivc_contacts_farthest_from_the_portal_vein_stand_for_the_dome():
    # Two equally thick veins join the IVC 60 mm apart; the portal vein lies near the lower one's
    # level (but not within reach of it). Without an affine "superior" is unknown: the contacts
    # farthest from the portal vein (within dome_window_mm, 40 mm) are the hepatic roots.
    shape = (48, 48, 100)
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ivc = (x - 24) ** 2 + (y - 24) ** 2 <= 9
    vessels = np.zeros(shape, bool)
    for height in (85, 25):
        vessels |= (x >= 28) & (x <= 44) & ((y - 24) ** 2 + (z - height) ** 2 <= 4)
    pv = (x - 8) ** 2 + (y - 40) ** 2 + (z - 5) ** 2 <= 9
    p = SplitParams(seed_distance_mm=3.0, dome_window_mm=40.0)
    seeds = find_seeds(vessels, (1.0, 1.0, 1.0), portal_vein=pv, ivc=ivc, params=p)
    heights = np.unique(z[seeds[HEPATIC]])
    assert heights.size and heights.min() >= 80, heights
    assert not seeds[PORTAL].any()
    # without the portal vein nothing tells the dome: both joins are roots
    both = np.unique(z[find_seeds(vessels, (1.0, 1.0, 1.0), ivc=ivc, params=p)[HEPATIC]])
    assert both.min() < 30 and both.max() > 80


def test_without_support_structures_there_are_no_seeds():
    vessels = np.zeros((10, 10, 10), bool)
    vessels[2:8, 4:6, 4:6] = True
    for support in ({}, {"portal_vein": np.zeros_like(vessels), "ivc": np.zeros_like(vessels)}):
        seeds = find_seeds(vessels, (1.0, 1.0, 1.0), **support)
        assert set(seeds) == {PORTAL, HEPATIC}
        assert not seeds[PORTAL].any() and not seeds[HEPATIC].any()


def _ivc_with_two_joins(pv_height: int):
    """The IVC along z (1 mm voxels) joined by two equally thick veins at z = 85 and z = 25, and a
    small portal vein at height pv_height, 25 mm from the IVC's axis."""
    shape = (48, 48, 100)
    x, y, z = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ivc = (x - 24) ** 2 + (y - 24) ** 2 <= 9
    vessels = np.zeros(shape, bool)
    for height in (85, 25):
        vessels |= (x >= 28) & (x <= 44) & ((y - 24) ** 2 + (z - height) ** 2 <= 4)
    pv = (x - 8) ** 2 + (y - 40) ** 2 + (z - pv_height) ** 2 <= 9
    return vessels, pv, ivc, z


@pytest.mark.parametrize("z_step, dome", [(1.0, 85), (-1.0, 25)])
def test_with_an_affine_the_most_superior_ivc_contacts_are_the_hepatic_roots(z_step, dome):
    # The portal vein lies at the upper join's level, so "farthest from the portal vein" (the rule
    # without an affine) would pick the lower join; the affine says which way is superior, and only
    # contacts within dome_window_mm (40 mm) of the most superior one are roots.
    vessels, pv, ivc, z = _ivc_with_two_joins(pv_height=90)
    affine = np.diag([1.0, 1.0, z_step, 1.0])
    p = SplitParams(seed_distance_mm=3.0, dome_window_mm=40.0)
    seeds = find_seeds(vessels, (1.0, 1.0, 1.0), portal_vein=pv, ivc=ivc, affine=affine, params=p)
    heights = np.unique(z[seeds[HEPATIC]])
    assert heights.size and np.abs(heights - dome).max() <= 3, heights
    # without the affine the portal vein's distance decides, and names the other join
    plain = np.unique(z[find_seeds(vessels, (1.0, 1.0, 1.0), portal_vein=pv, ivc=ivc, params=p)[HEPATIC]])
    assert plain.size and plain.max() <= 30, plain
