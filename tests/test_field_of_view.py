"""livervessels/field_of_view.py: the liver mask's volume in ml, the refusal when there is (almost) no
liver, and the warnings for too little, too much or a liver cut by the first or last slice.

Masks are small arrays on chosen spacings, so every volume and area is known by hand: at (2, 2, 2.5) mm
a voxel is 10 mm3 = 0.01 ml and a pixel of a slice is 4 mm2 = 0.04 cm2.
"""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.field_of_view import (
    CUT_LIVER_CM2,
    MAX_LIVER_ML,
    MIN_LIVER_ML,
    NO_LIVER_ML,
    field_of_view_warnings,
    liver_absent_reason,
    liver_volume_ml,
)

SPACING = (2.0, 2.0, 2.5)  # 10 mm3 per voxel, 4 mm2 per pixel
SHAPE = (100, 100, 62)  # 600 000 voxels between the first and the last slice


def _voxels(ml: float, spacing=SPACING) -> int:
    return int(round(ml * 1000.0 / float(np.prod(spacing))))


def _liver(n_voxels: int, shape=SHAPE) -> np.ndarray:
    """n_voxels of liver, none of them in the first or last slice (axis 2)."""
    inner = (shape[0], shape[1], shape[2] - 2)
    flat = np.zeros(int(np.prod(inner)), bool)
    flat[:n_voxels] = True
    liver = np.zeros(shape, bool)
    liver[:, :, 1:-1] = flat.reshape(inner)
    return liver


def test_the_thresholds_are_ordered():
    assert 0 < NO_LIVER_ML < MIN_LIVER_ML < MAX_LIVER_ML
    assert CUT_LIVER_CM2 > 0


def test_volume_is_the_voxel_count_times_the_voxel_volume():
    liver = np.zeros((30, 30, 40), np.uint8)
    liver[5:15, 5:25, 5:35] = 1  # 10 * 20 * 30 = 6000 voxels
    assert liver_volume_ml({"liver": liver}, (2.0, 2.0, 2.5)) == pytest.approx(60.0)  # 6000 * 10 mm3
    # every spacing counts: 0.5 * 0.8 * 5 = 2 mm3 per voxel
    assert liver_volume_ml({"liver": liver}, (0.5, 0.8, 5.0)) == pytest.approx(12.0)
    assert liver_volume_ml({"liver": liver.astype(bool)}, np.array([1.0, 1.0, 1.0])) == pytest.approx(6.0)


def test_volume_without_a_liver_mask_is_none_and_of_an_empty_one_zero():
    assert liver_volume_ml({}, SPACING) is None
    assert liver_volume_ml({"inferior_vena_cava": np.ones((4, 4, 4), bool)}, SPACING) is None
    assert liver_volume_ml({"liver": np.zeros((4, 4, 4), bool)}, SPACING) == 0.0


def test_under_no_liver_ml_no_vessel_analysis_is_made():
    just_under = _liver(_voxels(NO_LIVER_ML) - 1)  # 99.99 ml
    reason = liver_absent_reason({"liver": just_under}, SPACING)
    assert reason is not None and reason.startswith("no liver in the field of view (")
    assert "no vessel analysis was made" in reason
    assert liver_absent_reason({"liver": _liver(_voxels(NO_LIVER_ML))}, SPACING) is None  # 100 ml exactly
    empty = liver_absent_reason({"liver": np.zeros(SHAPE, bool)}, SPACING)
    assert empty is not None and "(0 ml of liver found" in empty


def test_without_a_liver_mask_the_absence_is_not_claimed():
    # the repair then works on the whole volume (its own fallback): neither refused nor warned
    assert liver_absent_reason({}, SPACING) is None
    assert field_of_view_warnings({}, SPACING) == []
    assert field_of_view_warnings({"portal_vein_and_splenic_vein": np.ones((8, 8, 8), bool)}, SPACING) == []


def test_an_absent_liver_is_the_only_warning_even_when_cut():
    liver = np.zeros(SHAPE, bool)
    liver[:50, :50, 0] = True  # 2500 voxels = 25 ml, 100 cm2 in the first slice
    warnings = field_of_view_warnings({"liver": liver}, SPACING)
    assert warnings == [liver_absent_reason({"liver": liver}, SPACING)]
    assert warnings[0].startswith("no liver in the field of view (25 ml")


def test_part_of_a_liver_warns_below_min_liver_ml_only():
    at_no_liver = field_of_view_warnings({"liver": _liver(_voxels(NO_LIVER_ML))}, SPACING)
    assert len(at_no_liver) == 1 and at_no_liver[0].startswith("only 100 ml of liver found")
    just_under = field_of_view_warnings({"liver": _liver(_voxels(MIN_LIVER_ML) - 1)}, SPACING)  # 299.99 ml
    assert len(just_under) == 1 and just_under[0].startswith("only ") and "covers part of it" in just_under[0]
    assert field_of_view_warnings({"liver": _liver(_voxels(MIN_LIVER_ML))}, SPACING) == []  # 300 ml exactly
    assert field_of_view_warnings({"liver": _liver(_voxels(1500.0))}, SPACING) == []


def test_an_implausibly_large_liver_warns_above_max_liver_ml_only():
    assert field_of_view_warnings({"liver": _liver(_voxels(MAX_LIVER_ML))}, SPACING) == []  # 5000 ml exactly
    just_over = field_of_view_warnings({"liver": _liver(_voxels(MAX_LIVER_ML) + 1)}, SPACING)
    assert len(just_over) == 1
    assert just_over[0].startswith("5.00001 l of liver found") and "other tissue" in just_over[0]  # not "5.0 l"


def test_the_same_mask_is_small_plausible_or_too_large_by_its_spacing():
    liver = {"liver": _liver(20000)}
    assert "only 200 ml" in field_of_view_warnings(liver, (2.0, 2.0, 2.5))[0]  # 10 mm3 per voxel
    assert field_of_view_warnings(liver, (2.0, 2.0, 5.0)) == []  # 20 mm3: 400 ml
    assert field_of_view_warnings(liver, (4.0, 4.0, 20.0))[0].startswith("6.4 l of liver found")  # 320 mm3


@pytest.mark.parametrize("index, name", [(0, "first"), (-1, "last")])
def test_a_liver_cut_by_the_first_or_last_slice_warns_over_cut_liver_cm2(index, name):
    base = _liver(_voxels(800.0))
    at = base.copy()
    at[:25, :5, index] = True  # 125 pixels of 4 mm2 = 5 cm2 = CUT_LIVER_CM2: not over it
    assert field_of_view_warnings({"liver": at}, SPACING) == []
    over = base.copy()
    over[:25, :6, index] = True  # 150 pixels = 6 cm2
    warnings = field_of_view_warnings({"liver": over}, SPACING)
    assert warnings == [f"the liver is cut by the scan's {name} slice (6 cm2 of liver there): it continues beyond "
                        "the scanned range, and so do its vessels"]


def test_the_cut_area_uses_the_in_plane_spacing_only():
    liver = _liver(80000)  # 800 ml at 10 mm3, 3.2 l at 40 mm3, 1.2 l at 15 mm3 per voxel
    liver[:10, :10, 0] = True  # 100 pixels
    assert field_of_view_warnings({"liver": liver}, (2.0, 2.0, 2.5)) == []  # 4 cm2
    assert field_of_view_warnings({"liver": liver}, (2.0, 2.0, 10.0)) == []  # slice spacing: no matter
    warnings = field_of_view_warnings({"liver": liver}, (3.0, 2.0, 2.5))  # 6 mm2 per pixel: 6 cm2
    assert len(warnings) == 1 and "first slice (6 cm2" in warnings[0]


def test_only_slices_along_axis_2_count_as_the_scans_ends():
    liver = _liver(_voxels(800.0))
    liver[0, :, 1:-1] = True  # a whole plane of axis 0 (300 cm2): not a slice of the scan
    liver[:, -1, 1:-1] = True
    assert field_of_view_warnings({"liver": liver}, SPACING) == []


def test_a_liver_cut_at_both_ends_and_too_large_gets_every_warning():
    liver = np.ones((100, 100, 60), np.uint8)  # 600 000 voxels = 6 l; 400 cm2 in every slice
    warnings = field_of_view_warnings({"liver": liver}, SPACING)
    assert len(warnings) == 3
    assert warnings[0].startswith("6.0 l of liver found")
    assert "first slice (400 cm2" in warnings[1] and "last slice (400 cm2" in warnings[2]


def test_field_of_view_warnings_for_a_missing_small_implausible_or_cut_liver():
    spacing = (1.0, 1.0, 2.0)
    liver = np.zeros((120, 120, 100), np.uint8)
    liver[20:100, 20:100, 20:80] = 1  # 768 ml, inside the scan
    assert field_of_view_warnings({"liver": liver}, spacing) == []
    cut = liver.copy()
    cut[20:100, 20:100, 0:20] = 1  # reaches the first slice with 64 cm2
    assert any("cut by the scan's first slice (64 cm2" in w for w in field_of_view_warnings({"liver": cut}, spacing))
    small = np.zeros_like(liver)
    small[40:80, 40:80, 30:80] = 1  # 160 ml: part of a liver
    assert any("only 160 ml of liver found" in w for w in field_of_view_warnings({"liver": small}, spacing))
    sliver = np.zeros_like(liver)
    sliver[50:60, 50:60, 40:50] = 1  # 2 ml: a sliver, no vessel analysis
    assert field_of_view_warnings({"liver": sliver}, spacing)[0].startswith("no liver in the field of view (2 ml")
    assert "no liver in the field of view (0 ml" in field_of_view_warnings({"liver": np.zeros_like(liver)}, spacing)[0]
    huge = np.zeros_like(liver)
    huge[5:115, 5:115, 10:90] = 1  # 1.9 l at this spacing: plausible
    assert field_of_view_warnings({"liver": huge}, spacing) == []
    assert any(w.startswith("5.8 l of liver found") and "other tissue" in w
               for w in field_of_view_warnings({"liver": huge}, (1.0, 1.0, 6.0)))  # 5.8 l: not a liver alone


@pytest.mark.parametrize("volume_ml, expected", [
    (NO_LIVER_ML - 0.004, "(99.996 ml of liver found, under 100 ml)"),  # not "100 ml ... under 100 ml"
    (NO_LIVER_ML - 10.4, "(90 ml of liver found, under 100 ml)"),
])
def test_a_volume_just_under_a_limit_is_not_rounded_onto_it(volume_ml, expected):
    spacing = (1.0, 1.0, volume_ml)  # one voxel of volume_ml: 1 mm x 1 mm x volume_ml mm = volume_ml / 1000 ml
    liver = np.zeros((3, 3, 3), np.uint8)
    liver[1, 1, 1] = 1
    assert expected in liver_absent_reason({"liver": liver}, (spacing[0], spacing[1], spacing[2] * 1000.0))


def test_a_volume_just_over_the_maximum_is_not_rounded_onto_it():
    liver = np.zeros((3, 3, 3), np.uint8)
    liver[1, 1, 1] = 1
    warnings = field_of_view_warnings({"liver": liver}, (1.0, 1.0, (MAX_LIVER_ML + 0.4) * 1000.0))
    assert warnings[0].startswith("5.0004 l of liver found (a whole liver is 1-2 l, rarely over 5 l)")
