"""Is this a CT volume the models can use? Checked once, on every entry point, before any inference.

Each rule either refuses the volume (InputError: one line naming the source, what is wrong and
what to do; exit 2) or adds a warning that reaches qc.json. Thresholds, and why:

- Geometry: a non-finite or singular affine, or a voxel size at or below 0.05 mm, cannot place
  the image in space (a zero PixelSpacing, an empty NIfTI affine): refused.
- Voxel size: the coarsest TotalSegmentator model works on a 6 mm grid (total_fastest) and the
  liver vessel model on about 1.5 mm. Pixels coarser than 5 mm (no CT reconstruction has them: a
  512 matrix would span 2.5 m) or slices thicker than 12 mm cannot be segmented meaningfully:
  refused. Slices thicker than 5 mm (old 7.5-10 mm protocols still run) or pixels coarser than
  2 mm: the vessels below a few millimetres are lost; warned.
- Intensities must be Hounsfield units. Not finite (NaN/Inf): more than 1 % of the voxels refused
  (a broken conversion); fewer are set to -1024 HU (air) and warned. A constant image carries no
  anatomy: refused. A CT of a body has air around it or at least fat (-100 HU). Stored values
  without their rescale are typically HU + 1024 (air near 0, fat near 900): when 99 % of the voxels
  are above +300, or nothing is below -50 while 1 % is above +900, the rescale is missing or wrong:
  refused. (A crop of soft tissue alone, 20-200 HU, passes.) When 99 % are below -800 HU there is
  no body in the image: refused.

Research use only; not a medical device.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from livervessels.errors import InputError
from livervessels.geometry import Volume, voxel_spacing

log = logging.getLogger(__name__)

WARNINGS_KEY = "input_warnings"  # Volume.meta key holding the warnings for the QC report


@dataclass(frozen=True)
class PlausibilityLimits:
    min_voxel_mm: float = 0.05  # at or below: not a real voxel size (zero or corrupt spacing)
    max_pixel_mm: float = 5.0  # coarser pixels: not a CT reconstruction (a 512 matrix would span 2.5 m)
    max_slice_mm: float = 12.0  # thicker slices: refused (old 10 mm protocols still run, warned)
    warn_slice_mm: float = 5.0  # thicker slices: small vessels are lost
    warn_pixel_mm: float = 2.0  # coarser pixels: small vessels are lost
    max_nonfinite_share: float = 0.01  # more NaN/Inf than this: refused
    nonfinite_fill_hu: float = -1024.0  # what fewer NaN/Inf voxels become (air)
    missing_rescale_p1_hu: float = 300.0  # 1st percentile above this: not HU
    missing_rescale_min_hu: float = -50.0  # nothing below this (no air, no fat) ...
    missing_rescale_p99_hu: float = 900.0  # ... yet 1 % above this: stored values, not HU
    no_body_p99_hu: float = -800.0  # 99th percentile below this: air only


def check_ct_volume(volume: Volume, source: str, limits: PlausibilityLimits | None = None) -> Volume:
    """The volume if it is a usable CT in HU (NaN/Inf replaced when few), with any warnings in
    volume.meta["input_warnings"].

    source: how to name the input in messages (a file or series).

    Raises:
        InputError: the geometry, voxel size or intensities make results meaningless (see the
            module docstring for each rule).
    """
    lim = limits or PlausibilityLimits()
    warnings = list(volume.meta.get(WARNINGS_KEY, []))
    affine = np.asarray(volume.affine, float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(f"{source}: its geometry is singular or not finite (zero or missing voxel size or "
                         "orientation); fix the header (DICOM PixelSpacing / ImageOrientationPatient, NIfTI affine)")
    spacing = voxel_spacing(affine)
    shown = " x ".join(f"{s:g}" for s in spacing)
    if min(spacing) <= lim.min_voxel_mm:
        raise InputError(f"{source}: voxel size {shown} mm is not a real CT voxel size; fix the header's spacing")
    in_plane, slices = sorted(spacing)[:2], max(spacing)
    if max(in_plane) > lim.max_pixel_mm or slices > lim.max_slice_mm:
        raise InputError(f"{source}: voxels of {shown} mm are too coarse to segment (the coarsest model works at "
                         f"6 mm; pixels over {lim.max_pixel_mm:g} mm or slices over {lim.max_slice_mm:g} mm make the "
                         "results meaningless); use a finer reconstruction")
    if slices > lim.warn_slice_mm or max(in_plane) > lim.warn_pixel_mm:
        warnings.append(f"coarse voxels ({shown} mm): vessels thinner than about {2 * slices:.0f} mm are not "
                        "resolved; prefer slices of 1-3 mm and pixels under 1 mm")

    array = volume.array
    if np.issubdtype(array.dtype, np.floating):
        finite = np.isfinite(array)
        bad = int(array.size - np.count_nonzero(finite))
        if bad:
            share = bad / array.size
            if share > lim.max_nonfinite_share:
                raise InputError(f"{source}: {share:.1%} of the voxels are NaN or infinite; the image is broken "
                                 "(re-export or reconvert it)")
            array = np.where(finite, array, np.float32(lim.nonfinite_fill_hu)).astype(array.dtype)
            warnings.append(f"{bad} NaN/infinite voxel(s) ({share:.2%}) set to {lim.nonfinite_fill_hu:g} HU")
    sample = np.asarray(array[::4, ::4, ::2] if array.size > 2_000_000 else array, np.float32)
    lo, p1, p99, hi = (float(v) for v in np.percentile(sample, [0, 1, 99, 100]))
    if hi - lo < 1.0:
        raise InputError(f"{source}: every voxel is {lo:g}; there is no image to segment")
    if p1 > lim.missing_rescale_p1_hu or (lo >= lim.missing_rescale_min_hu and p99 > lim.missing_rescale_p99_hu):
        raise InputError(f"{source}: values from {lo:.0f} to {hi:.0f} (99 % above {p1:.0f}) are not Hounsfield units "
                         "(air is -1000, fat -100); the rescale to HU is missing or wrong (check RescaleSlope / "
                         "RescaleIntercept, or the NIfTI's scaling)")
    if p99 < lim.no_body_p99_hu:
        raise InputError(f"{source}: 99 % of the voxels are below {p99:.0f} HU (air); there is no body in the "
                         "image")
    for text in warnings[len(volume.meta.get(WARNINGS_KEY, [])):]:
        log.warning("%s: %s", source, text)
    return Volume(array, volume.affine, {**volume.meta, WARNINGS_KEY: warnings})
