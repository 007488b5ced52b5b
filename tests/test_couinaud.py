"""Couinaud segments from the veins (livervessels.couinaud): the plane model, the landmark search on
hand-built vessel masks, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.couinaud import (
    LABEL_MAP_NAME,
    CouinaudLandmarks,
    CouinaudParams,
    agreement,
    azimuth_deg,
    couinaud_segments,
    find_landmarks,
    segment_masks,
    segment_volumes,
    segments_from_landmarks,
)

SPACING = 2.0
SHAPE = (100, 100, 60)  # 200 x 200 x 120 mm
# voxel (i, j, k) -> RAS mm, centred: x = 2 i - 100 (patient left is -x), y = 2 j - 100, z = 2 k - 60
AFFINE = np.array([[SPACING, 0, 0, -100.0], [0, SPACING, 0, -100.0], [0, 0, SPACING, -60.0], [0, 0, 0, 1]])
IVC_XY = (0.0, -30.0)
HILUM = (10.0, 10.0, -10.0)
LANDMARKS = CouinaudLandmarks(IVC_XY, HILUM, 30.0, right_hv_deg=20.0, middle_hv_deg=85.0, left_hv_deg=140.0,
                              umbilical_deg=110.0)


def _index(x: float, y: float, z: float) -> tuple[int, int, int]:
    return (int(round((x + 100) / SPACING)), int(round((y + 100) / SPACING)), int(round((z + 60) / SPACING)))


def _world() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    return SPACING * i - 100.0, SPACING * j - 100.0, SPACING * k - 60.0


def test_azimuth_is_measured_from_the_patients_right_towards_the_front():
    x, y = IVC_XY
    assert azimuth_deg(x + 10, y, IVC_XY) == pytest.approx(0.0)  # RAS +x: the patient's right
    assert azimuth_deg(x, y + 10, IVC_XY) == pytest.approx(90.0)  # anterior
    assert azimuth_deg(x - 10, y, IVC_XY) == pytest.approx(180.0)  # patient left
    assert azimuth_deg(x, y - 10, IVC_XY) == pytest.approx(270.0)  # posterior: (-90, 270]
    assert azimuth_deg(x + 10, y - 10, IVC_XY) == pytest.approx(-45.0)  # right-posterior
    assert azimuth_deg(25.0, 5.0, (20.0, 10.0)) == pytest.approx(-45.0)  # about the IVC's own axis


def test_each_voxel_gets_the_segment_its_plane_sector_and_height_give():
    liver = np.ones(SHAPE, bool)
    seg = segments_from_landmarks(liver, AFFINE, LANDMARKS)
    # points (RAS mm) away from every plane, by hand: azimuth about the IVC, above or below -10 mm
    expected = {(60.0, -40.0, 20.0): 7, (60.0, -40.0, -40.0): 6,  # right, behind the RHV plane (-11 deg)
                (30.0, 20.0, 20.0): 8, (30.0, 20.0, -40.0): 5,  # 59 deg: between the RHV and MHV planes
                (-5.0, 40.0, 0.0): 4, (-5.0, 40.0, -40.0): 4,  # 94 deg; IV is not split by height here
                (-30.0, 20.0, -40.0): 3,  # 121 deg: between the umbilical and LHV planes
                (-60.0, 0.0, 0.0): 2, (-60.0, -60.0, 0.0): 2,  # 153 and 207 deg: beyond the LHV
                (5.0, -10.0, 0.0): 1}  # between the IVC and the bifurcation, below the confluence
    for point, segment in expected.items():
        assert seg[_index(*point)] == segment, (point, seg[_index(*point)])
    # the IVC -> bifurcation line runs from (0, -30) to (10, 10): the caudate reaches 30 mm to the
    # patient's left of it (-x side) and 10 mm to the right
    assert seg[_index(-15.0, -15.0, 0.0)] == 1  # 18 mm left of the line
    assert seg[_index(25.0, -20.0, 0.0)] != 1  # 18 mm right of it
    # the caudate stops at the confluence and short of the bifurcation
    assert seg[_index(5.0, -10.0, 40.0)] != 1 and seg[_index(*HILUM)] != 1
    assert not segments_from_landmarks(np.zeros(SHAPE, bool), AFFINE, LANDMARKS).any()
    half = liver.copy()
    half[:, :, :30] = False
    assert not segments_from_landmarks(half, AFFINE, LANDMARKS)[:, :, :30].any()  # only the liver is labelled
    with pytest.raises(ValueError, match="3-D"):
        segments_from_landmarks(np.ones((4, 4)), AFFINE, LANDMARKS)


def test_moving_the_landmarks_and_the_liver_together_moves_the_segments_with_them():
    from dataclasses import replace

    liver = np.zeros(SHAPE, bool)
    liver[5:90, 5:95, 5:55] = True
    seg = segments_from_landmarks(liver, AFFINE, LANDMARKS)
    moved = replace(LANDMARKS, ivc_xy_mm=(10.0, -30.0), hilum_mm=(20.0, 10.0, -10.0))  # 10 mm to the right
    shifted = np.zeros(SHAPE, bool)
    shifted[10:95] = liver[5:90]  # 5 voxels = 10 mm along +x
    seg_moved = segments_from_landmarks(shifted, AFFINE, moved)
    np.testing.assert_array_equal(seg_moved[10:95], seg[5:90])


def test_the_segments_do_not_depend_on_how_the_grid_is_stored():
    liver = np.ones(SHAPE, bool)
    seg = segments_from_landmarks(liver, AFFINE, LANDMARKS)
    flipped = AFFINE.copy()
    flipped[:3, 0] *= -1  # columns stored from the patient's left
    flipped[0, 3] = 98.0  # the same world box: x from 98 down to -100 mm
    seg_flipped = segments_from_landmarks(liver, flipped, LANDMARKS)
    np.testing.assert_array_equal(seg_flipped[::-1], seg)


def _tube(mask: np.ndarray, a, b, radius_mm: float) -> None:
    """Add a straight tube from a to b (RAS mm) to mask."""
    x, y, z = _world()
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / float(d @ d), 0, 1)
    dist = np.sqrt((x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2)
    mask |= dist <= radius_mm


def _vessels(vein_deg=(20.0, 85.0, 140.0)):
    """A liver ball, the IVC, three main hepatic veins at the given azimuths above the bifurcation,
    and a portal tree: trunk from below to the bifurcation, a right branch and a left branch."""
    x, y, z = _world()
    liver = (x - 0) ** 2 + (y - 0) ** 2 + ((z - 0) / 0.8) ** 2 <= 90.0 ** 2
    ivc = np.hypot(x - IVC_XY[0], y - IVC_XY[1]) <= 10.0
    hepatic = np.zeros(SHAPE, bool)
    for deg in vein_deg:
        r = np.radians(deg)
        start = (IVC_XY[0] + 11 * np.cos(r), IVC_XY[1] + 11 * np.sin(r), 30.0)
        end = (IVC_XY[0] + 70 * np.cos(r), IVC_XY[1] + 70 * np.sin(r), 15.0)
        _tube(hepatic, start, end, 4.0)
    trunk = np.zeros(SHAPE, bool)
    _tube(trunk, (10.0, 10.0, -60.0), (10.0, 10.0, -14.0), 6.0)
    portal = np.zeros(SHAPE, bool)
    _tube(portal, HILUM, (60.0, 15.0, -5.0), 5.0)  # right portal vein
    _tube(portal, HILUM, (-30.0, 15.0, -8.0), 5.5)  # left portal vein, transverse part
    _tube(portal, (-30.0, 15.0, -8.0), (-35.0, 50.0, -10.0), 3.0)  # umbilical part, thinner
    portal &= ~trunk
    return liver & ~ivc, portal & liver, hepatic & liver & ~ivc, ivc, trunk


def test_landmarks_are_found_in_hand_built_vessels():
    liver, portal, hepatic, ivc, trunk = _vessels()
    lm, reason = find_landmarks(liver, portal, hepatic, ivc, AFFINE, trunk)
    assert reason is None
    assert lm.ivc_xy_mm == pytest.approx(IVC_XY, abs=1.0)
    assert lm.hilum_mm == pytest.approx(HILUM, abs=2.5)  # where the trunk meets the intrahepatic tree
    assert (lm.right_hv_deg, lm.middle_hv_deg, lm.left_hv_deg) == pytest.approx((20.0, 85.0, 140.0), abs=3.0)
    # the umbilical point: the left end of the thick left portal vein (-30, 15): 124 deg about the IVC
    assert lm.umbilical_deg == pytest.approx(float(azimuth_deg(-30.0, 15.0, IVC_XY)), abs=4.0)
    assert lm.confluence_z_mm == pytest.approx(30.0, abs=5.0)


def test_without_the_trunk_the_bifurcation_is_the_thickest_portal_lumen_and_stray_thick_vessels_are_ignored():
    liver, portal, hepatic, ivc, trunk = _vessels()
    lm, _ = find_landmarks(liver, portal, hepatic, ivc, AFFINE, None)
    # the thickest lumen: the left portal vein's 5.5 mm tube (no trunk to say where the hilum is)
    assert lm.hilum_mm[0] < HILUM[0] and lm.hilum_mm[2] == pytest.approx(-9.0, abs=3.0)
    with_trunk, _ = find_landmarks(liver, portal, hepatic, ivc, AFFINE, trunk)
    stray = portal.copy()
    _tube(stray, (-60.0, 30.0, -12.0), (-60.0, 30.0, 0.0), 5.0)  # thick, far left, joined to nothing
    lm_stray, _ = find_landmarks(liver, stray & liver, hepatic, ivc, AFFINE, trunk)
    assert lm_stray.umbilical_deg == pytest.approx(with_trunk.umbilical_deg, abs=1.0)
    # no left portal vein at all: the umbilical plane halves the middle and left veins' angle
    right_only = portal & (_world()[0] > 5.0)
    lm_right, _ = find_landmarks(liver, right_only, hepatic, ivc, AFFINE, trunk)
    assert lm_right.umbilical_deg == pytest.approx(0.5 * (lm_right.middle_hv_deg + lm_right.left_hv_deg))


def test_the_segments_follow_the_veins_of_the_patient():
    liver, portal, hepatic, ivc, trunk = _vessels((35.0, 85.0, 140.0))
    wide = couinaud_segments(liver, portal, hepatic, ivc, AFFINE, portal_trunk=trunk)
    liver2, portal2, hepatic2, ivc2, trunk2 = _vessels((5.0, 85.0, 140.0))
    narrow = couinaud_segments(liver2, portal2, hepatic2, ivc2, AFFINE, portal_trunk=trunk2)
    # the right hepatic vein turned 30 degrees towards the front: the posterior sector grows
    assert wide.volumes["7"]["ml"] > 1.3 * narrow.volumes["7"]["ml"]
    assert wide.volumes["8"]["ml"] < narrow.volumes["8"]["ml"]
    assert sum(v["percent"] for v in wide.volumes.values()) == pytest.approx(100.0, abs=0.5)
    assert set(np.unique(wide.labels[liver])) == set(range(1, 9))


@pytest.mark.parametrize("change, reason", [
    ("no_ivc", "no inferior vena cava mask"),
    ("no_portal", "no portal vein or no hepatic vein branches"),
    ("two_veins", "three main hepatic veins not found"),
    ("short_veins", "too few thick hepatic vein voxels"),
])
def test_refusals_say_why_and_label_nothing(change, reason):
    liver, portal, hepatic, ivc, trunk = _vessels((20.0, 85.0) if change == "two_veins" else (20.0, 85.0, 140.0))
    if change == "no_ivc":
        ivc = None
    if change == "no_portal":
        portal = np.zeros(SHAPE, bool)
    if change == "short_veins":  # only their ostia: nothing 25-60 mm from the IVC axis
        x, y, _ = np.meshgrid(*(SPACING * np.arange(n) - o for n, o in zip(SHAPE, (100.0, 100.0, 60.0))), indexing="ij")
        hepatic &= np.hypot(x - IVC_XY[0], y - IVC_XY[1]) < 20.0
    result = couinaud_segments(liver, portal, hepatic, ivc, AFFINE, portal_trunk=trunk)
    assert result.labels is None and result.refused.startswith(reason)
    assert result.as_qc()["refused"] == result.refused and result.as_qc()["landmarks"] is None


def test_a_low_split_confidence_is_refused_before_looking_at_the_veins():
    liver, portal, hepatic, ivc, trunk = _vessels()
    low = couinaud_segments(liver, portal, hepatic, ivc, AFFINE, portal_trunk=trunk, split_confidence=0.55)
    assert low.labels is None and low.refused.startswith("split confidence 0.55 below 0.60")
    ok = couinaud_segments(liver, portal, hepatic, ivc, AFFINE, portal_trunk=trunk, split_confidence=0.6)
    assert ok.labels is not None
    assert couinaud_segments(liver, portal, hepatic, ivc, AFFINE, portal_trunk=trunk, split_confidence=0.3,
                             params=CouinaudParams(min_split_confidence=0.2)).labels is not None
    with pytest.raises(ValueError, match="one grid"):
        couinaud_segments(liver, portal[:10], hepatic, ivc, AFFINE)


def test_volumes_are_voxels_times_the_voxel_volume_and_masks_one_per_segment():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[:5] = 2
    labels[5:, :2] = 8
    vols = segment_volumes(labels, (1.0, 2.0, 0.5))  # 1 mm^3 per voxel
    assert vols["2"] == {"ml": 0.5, "percent": 83.3} and vols["8"] == {"ml": 0.1, "percent": 16.7}
    assert vols["1"] == {"ml": 0.0, "percent": 0.0}
    masks = segment_masks(labels)
    assert list(masks) == [f"couinaud_segment_{s}" for s in range(1, 9)]
    assert masks["couinaud_segment_2"].sum() == 500 and masks["couinaud_segment_2"].dtype == np.uint8
    assert masks["couinaud_segment_8"].sum() == 100 and not masks["couinaud_segment_1"].any()
    assert LABEL_MAP_NAME == "liver_segments_vessel"
    big = np.full((50, 50, 40), 3, np.uint8)  # 100,000 voxels of 1 mm^3: 100 ml exactly
    assert segment_volumes(big, (1.0, 1.0, 1.0))["3"] == {"ml": 100.0, "percent": 100.0}


def test_agreement_is_dice_per_segment_where_both_label_and_flags_the_low_ones():
    a = np.zeros((4, 4, 4), np.uint8)
    b = np.zeros_like(a)
    a[:2], b[:2] = 2, 2  # segment II: the same 32 voxels
    a[2:], b[2:3] = 5, 5  # V: 32 against 16 voxels, of which the model labels 16 as V and 16 not at all
    b[3:] = 0
    a[0, 0, 0] = 8  # one voxel: VIII against the model's II
    a[0, 0, 1], b[0, 0, 1] = 1, 1  # one voxel of I in both
    out = agreement(a, b)
    # only voxels both label count: V 16 vs 16; II 30 vs 31 -> 60 / 61; VIII 1 vs 0 -> 0; I 1 vs 1
    assert out["dice"]["5"] == 1.0 and out["dice"]["2"] == round(60 / 61, 3) and out["dice"]["8"] == 0.0
    assert out["dice"]["1"] == 1.0 and out["dice"]["3"] is None and out["segments_below"] == ["8"]
    assert out["mean_dice"] == round((1.0 + 1.0 + 60 / 61 + 0.0) / 4, 3) and out["min_dice"] == 0.5
