"""Turn the slices of one series into a volume with its exact patient geometry.

The array is indexed [column, row, slice] so that NIfTI outputs keep DICOM's in-plane order and
slice k of every output is source instance k of `sorted_datasets`: the DICOM SEG frames then
line up with the source slices without resampling. The affine follows the first and last slice
positions (as dicom2nifti does), which also keeps gantry-tilted series right.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from livervessels.dicom.pixel_checks import pixel_warnings
from livervessels.dicom.scan import DicomSeries, header_floats
from livervessels.errors import InputError
from livervessels.geometry import LPS_TO_RAS, Volume
from livervessels.plausibility import WARNINGS_KEY, check_ct_volume

log = logging.getLogger(__name__)

_GAP_FACTOR = 1.5  # a step this much larger than the usual one means a slice is missing
_IRREGULAR_TOLERANCE = 0.05  # relative spread of slice steps we still call regular
_MULTIPLE_TOLERANCE = 0.2  # a gap within this of a whole number of usual steps: slices are missing
_STACK_FACTOR, _STACK_MM = 10.0, 50.0  # a gap above both: two separate stacks, not missing slices
_TILT_WARN_DEG = 0.5  # slice positions off the slice normal by more than this: gantry tilt


class MissingSlicesError(InputError):
    """The series has a gap of whole slices."""


@dataclass
class SeriesVolume:
    volume: Volume  # int16 or float32 HU; meta carries UIDs and the source description
    sorted_datasets: list[Dataset]  # source instance k is slice k of the volume


def _floats(value, n: int, what: str, ds: Dataset) -> np.ndarray:
    floats = header_floats(value, n)
    if floats is None:
        raise InputError(
            f"instance {ds.get('SOPInstanceUID', '?')} has no valid {what}; the series cannot be placed in space"
        )
    return floats


def series_geometry(datasets: list[Dataset]) -> tuple[list[Dataset], np.ndarray, list[str]]:
    """Sort the slices along their normal, check they form a complete volume; returns the slices,
    the LPS affine and warnings for the QC report (dropped duplicate positions, gantry tilt).

    Raises:
        InputError: a single slice, inconsistent slices, missing slices, separate stacks or
            irregular spacing.
    """
    warnings: list[str] = []
    if len(datasets) < 2:
        raise InputError("the selected series has a single slice; a 3D CT series with many slices is needed")
    first = datasets[0]
    iop = _floats(first.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", first)
    spacing = _floats(first.get("PixelSpacing"), 2, "PixelSpacing", first)
    rows, cols = int(first.Rows), int(first.Columns)
    for ds in datasets[1:]:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise InputError("slices of the selected series differ in size; re-export the series unchanged")
        slice_iop = _floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", ds)
        if not np.allclose(slice_iop, iop, atol=1e-4):
            raise InputError("slices of the selected series differ in orientation; re-export the series unchanged")
        if not np.allclose(_floats(ds.get("PixelSpacing"), 2, "PixelSpacing", ds), spacing, atol=1e-4):
            raise InputError("slices of the selected series differ in pixel spacing; re-export the series unchanged")

    row_cos, col_cos = iop[:3], iop[3:]
    normal = np.cross(row_cos, col_cos)
    positions = [_floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", ds) for ds in datasets]
    order = np.argsort([float(np.dot(normal, p)) for p in positions], kind="stable")
    datasets = [datasets[i] for i in order]
    positions = [positions[i] for i in order]
    along = np.array([float(np.dot(normal, p)) for p in positions])

    # Duplicate positions: several acquisitions in one series; keep the latest, as the SDK does.
    keep = [0]
    for i in range(1, len(along)):
        if abs(along[i] - along[keep[-1]]) < 1e-3:
            prev = keep[-1]
            if int(datasets[i].get("AcquisitionNumber", 0) or 0) > int(datasets[prev].get("AcquisitionNumber", 0) or 0):
                keep[-1] = i
            log.warning("two slices at position %.3f mm; kept the later acquisition", along[i])
        else:
            keep.append(i)
    if len(keep) != len(datasets):
        warnings.append(f"{len(datasets) - len(keep)} slice(s) at an already occupied position dropped (several "
                        "acquisitions in one series; the later acquisition kept)")
        datasets = [datasets[i] for i in keep]
        positions = [positions[i] for i in keep]
        along = along[keep]
    if len(datasets) < 2:
        raise InputError("the selected series has a single distinct slice position; a 3D CT series is needed")

    steps = np.diff(along)
    usual = float(np.median(steps))
    gaps = np.nonzero(steps > _GAP_FACTOR * usual)[0]
    if gaps.size:
        g = int(gaps[np.argmax(steps[gaps])])
        multiples = steps[gaps] / usual
        if steps[g] > max(_STACK_FACTOR * usual, _STACK_MM):
            raise InputError(
                f"the selected series holds separate stacks of slices, {steps[g]:.0f} mm apart (between positions "
                f"{along[g]:.2f} and {along[g + 1]:.2f} mm); export or select one stack as its own series")
        if np.all(np.abs(multiples - np.round(multiples)) < _MULTIPLE_TOLERANCE):
            missing = int(np.sum(np.round(multiples) - 1))
            g = int(gaps[0])
            raise MissingSlicesError(
                f"the selected series has a gap between slice positions {along[g]:.2f} and {along[g + 1]:.2f} mm "
                f"(usual spacing {usual:.2f} mm): {missing} slice(s) missing; re-send the complete series")
    if (steps.max() - steps.min()) > _IRREGULAR_TOLERANCE * usual:
        raise InputError(
            f"the selected series has irregular slice spacing ({steps.min():.2f} to {steps.max():.2f} mm); "
            "re-export it with uniform spacing"
        )

    affine = np.eye(4)
    affine[:3, 0] = row_cos * spacing[1]  # array axis 0 walks along a row: column spacing
    affine[:3, 1] = col_cos * spacing[0]  # array axis 1 walks down a column: row spacing
    affine[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    affine[:3, 3] = positions[0]
    step = affine[:3, 2] / np.linalg.norm(affine[:3, 2])
    tilt = float(np.degrees(np.arccos(np.clip(abs(np.dot(step, normal)), 0.0, 1.0))))
    if tilt > _TILT_WARN_DEG:
        # the affine keeps the shear (voxels sit where the scanner put them); models trained on
        # untilted CT see a sheared anatomy, so results may differ
        warnings.append(f"gantry tilt of {tilt:.1f} degrees (slices shifted sideways along the series); the volume "
                        "is sheared, not resampled: check the segmentation, or reconstruct without tilt")
    return datasets, affine, warnings


def _hounsfield(ds: Dataset) -> np.ndarray:
    pixels = ds.pixel_array
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return pixels.astype(np.float32) * slope + intercept


_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def _decode_failure(ds: Dataset, exc: Exception) -> str:
    """Why a slice's pixel data cannot be decoded, naming its file: truncated, needs a decoder, or corrupt."""
    name = getattr(ds, "filename", None) or f"instance {ds.get('SOPInstanceUID', '?')}"
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if syntax in _UNCOMPRESSED or not syntax:
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * (int(ds.BitsAllocated) // 8)
        found = len(ds.get("PixelData", b"") or b"")
        if found < expected:
            return f"slice {name} is truncated: its pixel data holds {found} of {expected} bytes; re-send the file"
        return f"cannot read the pixel data of slice {name} ({exc}); re-send the file"
    text = str(exc).lower()
    if "no pixel data handler" in text or "plugin" in text or "decoder" in text or "missing required" in text:
        return (f"slice {name} is compressed ({syntax}) and no installed decoder reads it ({exc}); install the "
                "pylibjpeg decoders or send an uncompressed copy")
    return f"slice {name} ({syntax}) cannot be decoded, the compressed data looks damaged ({exc}); re-send the file"


def build_volume(series: DicomSeries, unreadable_files: Sequence[tuple[str, str]] = ()) -> SeriesVolume:
    """Decode a series into a volume in patient space (RAS affine), slices in source order.

    unreadable_files: (path, reason) of damaged DICOM files found beside the series
    (DicomScan.unreadable_files); when slices are missing they are named as the likely cause.

    Raises:
        InputError: the slices do not form a volume (see series_geometry), a slice cannot be
            decoded, or the volume is not a usable CT (plausibility.check_ct_volume).
    """
    try:
        datasets, affine_lps, warnings = series_geometry(series.datasets)
    except MissingSlicesError as exc:
        if not unreadable_files:
            raise
        path, reason = unreadable_files[0]
        more = f" and {len(unreadable_files) - 1} more" if len(unreadable_files) > 1 else ""
        raise InputError(f"{path}{more} could not be read ({reason}) and is probably what is missing: {exc}") from exc
    slices = []
    for ds in datasets:
        try:
            slices.append(_hounsfield(ds).T)
        except Exception as exc:  # truncated pixel data, missing decoder, corrupt stream
            raise InputError(_decode_failure(ds, exc)) from exc
    array = np.stack(slices, axis=-1)
    warnings += pixel_warnings(array, datasets)  # decoded without error, yet maybe corrupt
    if np.all(np.mod(array, 1) == 0) and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
    first = datasets[0]
    meta = {
        "study_instance_uid": series.study_uid,
        "series_instance_uid": series.series_uid,
        "sop_instance_uids": [str(ds.SOPInstanceUID) for ds in datasets],
        "frame_of_reference_uid": str(first.get("FrameOfReferenceUID", "") or ""),
        "series_description": series.description,
        "modality": series.modality,
        "slice_thickness_mm": float(first.get("SliceThickness", 0) or 0) or None,
        "transfer_syntax_uid": str(getattr(getattr(first, "file_meta", None), "TransferSyntaxUID", "")),
        WARNINGS_KEY: warnings,
    }
    name = f"series {series.series_uid}" + (f" ({series.description})" if series.description else "")
    volume = check_ct_volume(Volume(array, LPS_TO_RAS @ affine_lps, meta), name)
    return SeriesVolume(volume, datasets)
