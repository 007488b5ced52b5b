"""Choose the CT series to segment.

Rules: Modality CT; ImageType ORIGINAL and PRIMARY and, where the scanner states a plane, AXIAL;
no localizers, secondary captures or derived series; at least two slices. Among several matches
prefer the thinnest slices, then the most instances (a 1 mm reconstruction over a 5 mm one).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livervessels.dicom.scan import DicomScan, DicomSeries, header_floats
from livervessels.errors import InputError

CT_IMAGE_STORAGE = {"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1"}  # CT, Enhanced CT
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
EXCLUDED_IMAGE_TYPES = {"LOCALIZER", "DERIVED", "SECONDARY", "SCOUT", "PROJECTION IMAGE", "REFORMATTED", "MPR"}


@dataclass
class SeriesVerdict:
    series: DicomSeries
    accepted: bool
    reason: str
    slice_thickness_mm: float | None

    def as_dict(self) -> dict:
        return {
            "study_instance_uid": self.series.study_uid,
            "series_instance_uid": self.series.series_uid,
            "series_description": self.series.description,
            "modality": self.series.modality,
            "instances": len(self.series),
            "slice_thickness_mm": self.slice_thickness_mm,
            "accepted": self.accepted,
            "reason": self.reason,
        }


@dataclass
class SeriesSelection:
    selected: DicomSeries
    verdicts: list[SeriesVerdict]


def _is_axial(series: DicomSeries) -> bool:
    iop = header_floats(series.first.get("ImageOrientationPatient"), 6)
    if iop is None:
        return False
    normal = np.cross(iop[:3], iop[3:])
    return abs(normal[2]) >= 0.8 * np.linalg.norm(normal)


def slice_thickness_mm(series: DicomSeries) -> float | None:
    """SliceThickness when stated, else the median distance between slice positions."""
    value = series.first.get("SliceThickness")
    try:
        if value not in (None, "") and float(value) > 0:
            return float(value)
    except (TypeError, ValueError):
        pass
    positions = [header_floats(ds.get("ImagePositionPatient"), 3) for ds in series.datasets]
    iop = header_floats(series.first.get("ImageOrientationPatient"), 6)
    if iop is None or any(p is None for p in positions) or len(positions) < 2:
        return None
    normal = np.cross(iop[:3], iop[3:])
    z = np.sort([float(np.dot(normal, p)) for p in positions])
    steps = np.diff(z)
    steps = steps[steps > 1e-3]
    return float(np.median(steps)) if steps.size else None


def judge_series(series: DicomSeries) -> SeriesVerdict:
    """Whether a series qualifies as the CT volume to segment, and why not."""
    thickness = slice_thickness_mm(series)

    def no(reason: str) -> SeriesVerdict:
        return SeriesVerdict(series, False, reason, thickness)

    if series.modality.upper() != "CT":
        return no(f"modality {series.modality or 'missing'}, not CT")
    sop_class = series.sop_class_uid
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        return no("secondary capture")
    if sop_class and sop_class not in CT_IMAGE_STORAGE:
        return no(f"SOP class {sop_class} is not a CT image")
    image_type = set(series.image_type)
    excluded = image_type & EXCLUDED_IMAGE_TYPES
    if excluded:
        return no(f"ImageType {'/'.join(series.image_type)} ({', '.join(sorted(excluded))})")
    if image_type and not {"ORIGINAL", "PRIMARY"} <= image_type:
        return no(f"ImageType {'/'.join(series.image_type)} is not ORIGINAL/PRIMARY")
    stated_plane = len(series.image_type) >= 3
    if (stated_plane and "AXIAL" not in image_type) or (not stated_plane and not _is_axial(series)):
        return no("not an axial series")
    if len(series) < 2:
        return no("a single slice, not a volume")
    return SeriesVerdict(series, True, "candidate", thickness)


def select_ct_series(scan: DicomScan) -> SeriesSelection:
    """The best CT series in the scan, or InputError saying why there is none.

    Raises:
        InputError: no series in the scan is a usable CT (each series' reason is in the message).
    """
    verdicts = [judge_series(s) for s in scan.series]
    candidates = [v for v in verdicts if v.accepted]
    if not candidates:
        found = "; ".join(
            f"series {v.series.description or v.series.series_uid} ({len(v.series)} files): {v.reason}"
            for v in verdicts
        )
        raise InputError(f"no usable CT series in the input: {found}. Provide an axial CT series (ORIGINAL/PRIMARY)")
    candidates.sort(key=lambda v: (v.slice_thickness_mm if v.slice_thickness_mm else np.inf, -len(v.series)))
    best = candidates[0]
    best.reason = "selected"
    for v in candidates[1:]:
        v.reason = "CT candidate, not chosen (thicker slices or fewer instances)"
    return SeriesSelection(selected=best.series, verdicts=verdicts)
