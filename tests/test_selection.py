"""livervessels/dicom/selection.py: which series qualifies as the CT volume and which one wins.

The module's rules: Modality CT; ImageType ORIGINAL and PRIMARY and, where the scanner states a
plane, AXIAL (else the orientation decides); no localizers, secondary captures or derived series;
at least two slices; among candidates the thinnest slices, then the most instances. Series are
built in memory from pydicom datasets, so each case states its own attributes.
"""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from livervessels.dicom.scan import DicomScan, DicomSeries, UidRepairs
from livervessels.dicom.selection import judge_series, select_ct_series, slice_thickness_mm
from livervessels.errors import InputError

# SOP classes from PS3.4 Annex B.5
CT = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
MR = "1.2.840.10008.5.1.4.1.1.4"
MULTIFRAME_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _iop_tilted_about_x(degrees: float) -> tuple[float, ...]:
    a = np.radians(degrees)
    return (1.0, 0.0, 0.0, 0.0, float(np.cos(a)), float(np.sin(a)))


def _series(n: int = 3, *, description: str = "", image_type=("ORIGINAL", "PRIMARY", "AXIAL"), modality="CT",
            sop_class=CT, iop=AXIAL_IOP, thickness=2.0, positions=None) -> DicomSeries:
    study, series = generate_uid(), generate_uid()
    out = DicomSeries(study, series)
    for k in range(n):
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        if modality is not None:
            ds.Modality = modality
        if image_type is not None:
            ds.ImageType = list(image_type)
        ds.SeriesDescription = description
        if iop is not None:
            ds.ImageOrientationPatient = list(iop)
            ds.ImagePositionPatient = list(positions[k]) if positions is not None else [0.0, 0.0, 2.0 * k]
        if thickness is not None:
            ds.SliceThickness = thickness
        out.datasets.append(ds)
    return out


def _scan(*series: DicomSeries) -> DicomScan:
    return DicomScan(series=list(series), ignored_files=[], repairs=UidRepairs())


def test_a_stated_slice_thickness_is_taken_as_it_is():
    # thickness and spacing differ in overlapping reconstructions (1.25 mm slices every 2 mm)
    assert slice_thickness_mm(_series(thickness=1.25)) == 1.25


@pytest.mark.parametrize("stated", [None, "0", ""])
def test_without_a_thickness_the_distance_between_slice_planes_is_measured(stated):
    # oblique slices (30 degrees about x), each also shifted 0.7 mm within its plane: the planes are
    # 2.5 mm apart along their normal, while the positions are 2.6 mm apart and 2.17 mm apart in z
    iop = _iop_tilted_about_x(30.0)
    normal = np.cross(iop[:3], iop[3:])
    positions = [k * 2.5 * normal + k * 0.7 * np.array(iop[:3]) + [10.0, -20.0, 30.0] for k in (2, 0, 3, 1, 1)]
    # (slice 1 twice: a second acquisition at the same position does not count as a 0 mm step)
    series = _series(5, iop=iop, thickness=stated, positions=positions)
    assert slice_thickness_mm(series) == pytest.approx(2.5)


def test_a_single_slice_without_a_thickness_has_none():
    assert slice_thickness_mm(_series(1, thickness=None)) is None


@pytest.mark.parametrize("iop, accepted", [
    (AXIAL_IOP, True),
    ((-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), True),  # axial, rows and columns running the other way
    (_iop_tilted_about_x(20.0), True),  # a gantry-tilted or slightly oblique axial series
    ((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), False),  # sagittal: normal along x
    ((1.0, 0.0, 0.0, 0.0, 0.0, -1.0), False),  # coronal: normal along y
    (_iop_tilted_about_x(60.0), False),  # closer to coronal than to axial
    (_iop_tilted_about_x(36.0), True),  # the limit: the normal's z component at least 0.8 (36.9 degrees)
    (_iop_tilted_about_x(38.0), False),
    (None, False),  # no orientation: not known to be axial
    ((1.0, 0.0, 0.0, 0.0, 1.0), False),  # five values: not an orientation
])
def test_without_a_stated_plane_the_orientation_decides_whether_a_series_is_axial(iop, accepted):
    verdict = judge_series(_series(image_type=("ORIGINAL", "PRIMARY"), iop=iop))
    assert verdict.accepted is accepted
    if not accepted:
        assert verdict.reason == "not an axial series"


@pytest.mark.parametrize("image_type, accepted", [
    (("ORIGINAL", "PRIMARY", "AXIAL"), True),
    (("ORIGINAL", "PRIMARY", "AXIAL", "CT_SOM5 SPI"), True),  # Siemens adds scanner-specific values
    (("ORIGINAL", "SECONDARY", "AXIAL"), False),
    (("ORIGINAL", "PRIMARY", "SCOUT"), False),
    (("ORIGINAL", "PRIMARY", "AXIAL", "MPR"), False),
    (("ORIGINAL", "OTHER", "AXIAL"), False),  # not PRIMARY
])
def test_image_type_rules(image_type, accepted):
    assert judge_series(_series(image_type=image_type)).accepted is accepted


@pytest.mark.parametrize("sop_class, modality, reason", [
    (ENHANCED_CT, "CT", None),
    (MR, "CT", "is not a CT image"),  # the SOP class, not the Modality value, says what the pixels are
    (MULTIFRAME_WORD_SC, "CT", "secondary capture"),  # every SC class shares the 1.2.840.10008.5.1.4.1.1.7 root
    (CT, None, "modality missing, not CT"),
])
def test_sop_class_and_modality_rules(sop_class, modality, reason):
    verdict = judge_series(_series(sop_class=sop_class, modality=modality))
    assert verdict.accepted is (reason is None)
    if reason:
        assert reason in verdict.reason


def test_a_thickness_measured_from_positions_competes_with_stated_ones():
    stated_3mm = _series(40, description="3 mm", thickness=3.0)
    measured_1mm = _series(3, description="1 mm, no SliceThickness", thickness=None,
                           positions=[[0.0, 0.0, 1.0 * k] for k in range(3)])
    selection = select_ct_series(_scan(stated_3mm, measured_1mm))
    assert selection.selected is measured_1mm


def test_an_unknown_thickness_ranks_after_every_known_one():
    # AXIAL stated, but no orientation, positions or thickness: nothing to measure the slices by
    unknown = _series(300, description="unknown", iop=None, thickness=None)
    five_mm = _series(10, description="5 mm", thickness=5.0)
    selection = select_ct_series(_scan(unknown, five_mm))
    assert slice_thickness_mm(unknown) is None
    assert selection.selected is five_mm


def test_every_series_gets_a_verdict_and_only_one_is_selected():
    thin = _series(4, description="thin", thickness=1.0)
    thick = _series(4, description="thick", thickness=5.0)
    scout = _series(1, description="scout", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    selection = select_ct_series(_scan(thick, scout, thin))
    verdicts = {v.series.description: v.as_dict() for v in selection.verdicts}
    assert selection.selected is thin
    assert verdicts["thin"]["reason"] == "selected" and verdicts["thin"]["accepted"]
    assert verdicts["thick"]["accepted"] and verdicts["thick"]["reason"].startswith("CT candidate, not chosen")
    assert not verdicts["scout"]["accepted"] and "LOCALIZER" in verdicts["scout"]["reason"]
    assert [verdicts[d]["instances"] for d in ("thin", "thick", "scout")] == [4, 4, 1]
    assert verdicts["thick"]["slice_thickness_mm"] == 5.0
    assert verdicts["thin"]["series_instance_uid"] == thin.series_uid
    assert verdicts["thin"]["study_instance_uid"] == thin.study_uid
    assert (verdicts["scout"]["series_description"], verdicts["scout"]["modality"]) == ("scout", "CT")


def test_no_candidate_is_an_input_error_naming_each_series_and_why():
    mr = _series(description="T2 axial", modality="MR", sop_class=MR)
    scout = _series(1, description="Topogram", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    with pytest.raises(InputError) as err:
        select_ct_series(_scan(mr, scout))
    message = str(err.value)
    assert "T2 axial" in message and "modality MR, not CT" in message
    assert "Topogram" in message and "LOCALIZER" in message


def test_two_slices_are_a_volume_and_one_is_not():
    assert judge_series(_series(2)).accepted
    verdict = judge_series(_series(1))
    assert (verdict.accepted, verdict.reason) == (False, "a single slice, not a volume")


def test_each_rejection_is_worded_for_the_report_and_keeps_the_measured_thickness():
    secondary = judge_series(_series(sop_class="1.2.840.10008.5.1.4.1.1.7", thickness=3.0))  # Secondary Capture
    assert (secondary.reason, secondary.slice_thickness_mm) == ("secondary capture", 3.0)
    derived = judge_series(_series(image_type=("DERIVED", "SECONDARY", "AXIAL", "MPR")))
    assert derived.reason == "ImageType DERIVED/SECONDARY/AXIAL/MPR (DERIVED, MPR, SECONDARY)"
    other = judge_series(_series(image_type=("ORIGINAL", "OTHER", "AXIAL")))
    assert other.reason == "ImageType ORIGINAL/OTHER/AXIAL is not ORIGINAL/PRIMARY"
    assert judge_series(_series()).reason == "candidate"


def test_an_image_type_of_three_values_states_the_plane():
    # ORIGINAL/PRIMARY/LOCALIZER-like third values decide, whatever the orientation says
    assert not judge_series(_series(image_type=("ORIGINAL", "PRIMARY", "OTHER"))).accepted
    assert judge_series(_series(image_type=("ORIGINAL", "PRIMARY", "AXIAL"), iop=(1.0, 0, 0, 0, 0, -1.0))).accepted


@pytest.mark.parametrize("stated, expected", [(0.6, 0.6), ("", 2.0), (0.0, 2.0)])
def test_a_thin_stated_thickness_is_kept_and_an_empty_or_zero_one_is_measured(stated, expected):
    series = _series(2, thickness=None)
    for ds in series.datasets:
        ds.SliceThickness = stated
    assert slice_thickness_mm(series) == pytest.approx(expected)


def test_slices_stacked_at_one_position_measure_no_thickness():
    series = _series(3, thickness=None, positions=[(0, 0, 5.0)] * 3)
    assert slice_thickness_mm(series) is None
    tilted = _series(3, thickness=None, iop=_iop_tilted_about_x(20.0),
                     positions=[(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 3.0)])
    assert slice_thickness_mm(tilted) == pytest.approx(3.0 * np.cos(np.radians(20.0)))  # along the slice normal


def test_of_equally_thin_series_the_one_with_more_slices_is_chosen():
    short = _series(3, description="short", thickness=1.0)
    long = _series(5, description="long", thickness=1.0)
    assert select_ct_series(_scan(short, long)).selected is long
    assert select_ct_series(_scan(long, short)).selected is long


def test_without_a_candidate_every_series_is_listed_with_its_reason():
    mr = _series(2, description="T2", modality="MR")
    single = _series(1, description="scout")
    with pytest.raises(InputError) as raised:
        select_ct_series(_scan(mr, single))
    assert str(raised.value) == ("no usable CT series in the input: series T2 (2 files): modality MR, not CT; "
                                 "series scout (1 files): a single slice, not a volume. Provide an axial CT series "
                                 "(ORIGINAL/PRIMARY)")


def test_a_single_valued_orientation_or_position_is_no_orientation_not_a_crash():
    # pydicom reads an element holding one value as a number: not an orientation, not a position
    flat = _series(3, image_type=("ORIGINAL", "PRIMARY"), thickness=None)
    for ds in flat.datasets:
        ds.ImageOrientationPatient = 1.0
    verdict = judge_series(flat)
    assert (verdict.accepted, verdict.reason, verdict.slice_thickness_mm) == (False, "not an axial series", None)
    pointless = _series(3, thickness=None)
    pointless.datasets[1].ImagePositionPatient = 2.0
    assert slice_thickness_mm(pointless) is None
