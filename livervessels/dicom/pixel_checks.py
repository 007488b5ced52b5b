"""Checks of pixel data that a decoder accepted without error but may still be corrupt.

What can be caught, and what cannot:
- JPEG 2000 codestreams carry their own frame size (SIZ) and end marker (EOC): a frame whose size
  differs from the header's Rows/Columns, or whose codestream does not end where the fragment
  ends, is damaged or belongs to another image. Truncated codestreams are refused earlier, by the
  decoder itself.
- A slice that disagrees grossly with both neighbours (a block of wrong values, another image,
  a wrong bit depth): the share of pixels more than 300 HU away from the mean of the two
  neighbouring slices is compared with the series' typical share. Real anatomy changes that much
  between neighbouring slices only at a few edges (bone, gas): under 0.01 % of the pixels in the
  real example CT (3 mm slices); a slice is suspect from 2 %.
- Not detectable: overwritten bytes inside JPEG 2000 entropy-coded data. DICOM and JPEG 2000 carry
  no checksum, and such a frame decodes to errors of 18-182 HU on 5-9 % of the slice's pixels (once
  60 %), inside the slice-to-slice variation of real anatomy (bench/j2k_corruption.py).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragmented_frames

JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                     "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
_SOC, _SIZ, _EOC = b"\xff\x4f", b"\xff\x51", b"\xff\xd9"

NEIGHBOUR_HU = 300.0  # a pixel this far from the mean of the two neighbouring slices disagrees
MIN_DISAGREEING_SHARE = 0.02  # a slice is suspect only when this share of its pixels disagrees ...
TYPICAL_FACTOR = 10.0  # ... and that is this many times the series' median share


def jpeg2000_frame_problem(ds: Dataset) -> str | None:
    """What is wrong with a single-frame JPEG 2000 slice's codestream, or None (also for other
    transfer syntaxes, multi-frame data and codestreams wrapped in a JP2 box)."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if syntax not in JPEG2000_SYNTAXES or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    try:
        frame = b"".join(next(generate_fragmented_frames(ds.PixelData)))
    except Exception as exc:  # the encapsulation itself is broken
        return f"its encapsulated pixel data cannot be parsed ({exc})"
    if not frame.startswith(_SOC) or frame[2:4] != _SIZ:
        return None  # not a bare codestream (a JP2 file format box): leave it to the decoder
    width, height = int.from_bytes(frame[8:12], "big"), int.from_bytes(frame[12:16], "big")
    x0, y0 = int.from_bytes(frame[16:20], "big"), int.from_bytes(frame[20:24], "big")
    size = (width - x0, height - y0)
    expected = (int(ds.Columns), int(ds.Rows))
    if size != expected:
        return f"its JPEG 2000 frame is {size[0]} x {size[1]} pixels but the header says {expected[0]} x {expected[1]}"
    end = frame.rstrip(b"\x00")  # fragments are padded to even length
    if not end.endswith(_EOC):
        return "its JPEG 2000 codestream does not end with an end-of-codestream marker (damaged or cut)"
    return None


def neighbour_disagreement(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each interior slice (array axis 2): the share of pixels more than NEIGHBOUR_HU from the
    mean of the slices on either side, and the mean absolute difference from it in HU (every
    second pixel in-plane; 0 for the first and last slice)."""
    share, mean_abs = np.zeros(array.shape[2]), np.zeros(array.shape[2])
    for k in range(1, array.shape[2] - 1):  # a slice at a time: no float copy of the whole volume
        below, here, above = (np.asarray(array[::2, ::2, j], np.float32) for j in (k - 1, k, k + 1))
        difference = np.abs(here - (below + above) * 0.5)
        share[k] = np.count_nonzero(difference > NEIGHBOUR_HU) / here.size
        mean_abs[k] = float(difference.mean())
    return share, mean_abs


def suspect_slices(array: np.ndarray) -> list[tuple[int, float, float]]:
    """(slice index, its disagreeing share, the series' median share) for slices that disagree
    grossly with both neighbours. The neighbours of a corrupt slice share half its error; only
    the slice that disagrees most (by share, then by mean difference) is listed."""
    if array.shape[2] < 5:
        return []
    share, mean_abs = neighbour_disagreement(array)
    typical = float(np.median(share[1:-1]))
    limit = max(MIN_DISAGREEING_SHARE, TYPICAL_FACTOR * typical)
    rank = list(zip(share, mean_abs))
    return [(k, float(share[k]), typical) for k in range(1, array.shape[2] - 1)
            if share[k] > limit and rank[k] > rank[k - 1] and rank[k] > rank[k + 1]]


def pixel_warnings(array: np.ndarray, datasets: Sequence[Dataset]) -> list[str]:
    """QC warnings naming the slices (files) whose pixel data looks corrupt; slice k of array is
    datasets[k]."""
    warnings = []
    for ds in datasets:
        problem = jpeg2000_frame_problem(ds)
        if problem:
            warnings.append(f"slice {_name(ds)}: {problem}; its pixels may be wrong, re-send the file")
    for k, share, typical in suspect_slices(array):
        warnings.append(f"slice {_name(datasets[k])} disagrees with both neighbouring slices in {share:.1%} of its "
                        f"pixels (typical here {typical:.2%}): its pixel data may be corrupt; check it in a viewer "
                        "and re-send it")
    return warnings


def _name(ds: Dataset) -> str:
    return str(getattr(ds, "filename", None) or ds.get("SOPInstanceUID", "?"))
