"""Future liver remnant: the liver volume left when Couinaud segments are resected, for planning a
hepatectomy or a living-donor split.

    volumes = couinaud_volumes(labels, spacing)          # ml per segment 1-8 of a label map
    report = future_liver_remnant(volumes, remove=[5, 6, 7, 8])   # right hepatectomy
    report["remnant_ml"], report["remnant_percent"]

The segments come from a label map whose values 1-8 are Couinaud segments I-VIII (TotalSegmentator's
`liver_segments` task, this project's `-ta liver_segments`), or from its folder of masks
(liver_segment_1.nii.gz ... liver_segment_8.nii.gz). The share is of the liver those segments
make up, as measured on this scan; it is not the standardised liver volume of a body-surface
formula. Research use only: not a surgical decision.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import nibabel as nib
import numpy as np

from livervessels.errors import InputError
from livervessels.geometry import voxel_spacing

COUINAUD_SEGMENTS = tuple(range(1, 9))
ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


def couinaud_volumes(labels: np.ndarray, spacing) -> dict[int, float]:
    """Volume in ml of each Couinaud segment (label values 1-8; other values are ignored), every
    segment listed (0.0 when absent).

    Raises:
        InputError: labels is not 3D, the spacing is not three positive numbers, or no voxel is
            labelled 1-8.
    """
    labels = np.asarray(labels)
    sp = np.asarray(spacing, float)
    if labels.ndim != 3:
        raise InputError(f"a 3D label map of Couinaud segments is needed (got {labels.ndim} dimensions)")
    if sp.shape != (3,) or not np.all(sp > 0):
        raise InputError(f"voxel spacing must be three positive numbers in mm (got {tuple(np.ravel(sp))})")
    # only the labelled voxels: bincount copies its input to int64 (2.4 GB for a 512x512x300 grid)
    labelled = labels[labels >= 1]  # one full-grid comparison; the rest on the liver's voxels
    counts = np.bincount(labelled[labelled <= 8].astype(np.int64), minlength=10)
    if not counts[1:9].any():
        raise InputError("the label map holds no Couinaud segment (values 1-8): give the output of "
                         "`TotalSegmentator -ta liver_segments`")
    voxel_ml = float(np.prod(sp)) / 1000.0
    return {s: float(counts[s]) * voxel_ml for s in COUINAUD_SEGMENTS}


def check_segments_to_remove(remove: Iterable[int]) -> list[int]:
    """The segment numbers to resect, sorted and unique, checked before any work.

    Raises:
        InputError: nothing to remove, a number outside 1-8, or all eight (nothing would remain).
    """
    remove = sorted({int(s) for s in remove})
    if not remove:
        raise InputError("name the segments to resect (numbers 1-8, e.g. 5 6 7 8 for a right hepatectomy)")
    bad = [s for s in remove if s not in COUINAUD_SEGMENTS]
    if bad:
        raise InputError(f"Couinaud segments are numbered 1-8 (got {', '.join(map(str, bad))})")
    if len(remove) == len(COUINAUD_SEGMENTS):
        raise InputError("every Couinaud segment would be resected: no remnant is left")
    return remove


def future_liver_remnant(volumes_ml: Mapping[int, float], remove: Iterable[int]) -> dict:
    """What is left of the liver when the segments in `remove` are resected.

    Returns {"removed_segments", "remaining_segments", "total_ml", "resected_ml", "remnant_ml",
    "remnant_percent", "segments": {n: {"ml", "percent"}}}; volumes rounded to 0.1 ml, shares to
    0.1 %. A removed segment the label map does not hold counts 0 ml and is listed under
    "absent_segments".

    Raises:
        InputError: a segment number outside 1-8, nothing to remove, every segment removed, or a
            liver of 0 ml.
    """
    remove = check_segments_to_remove(remove)
    ml = {s: float(volumes_ml.get(s, 0.0)) for s in COUINAUD_SEGMENTS}
    total = sum(ml.values())
    if total <= 0:
        raise InputError("the liver segments have no volume")
    keep = [s for s in COUINAUD_SEGMENTS if s not in remove]
    if not any(ml[s] > 0 for s in keep):
        raise InputError("every segment of this liver would be resected: no remnant is left")
    resected = sum(ml[s] for s in remove)
    remnant = total - resected
    return {
        "removed_segments": remove,
        "remaining_segments": keep,
        "absent_segments": [s for s in COUINAUD_SEGMENTS if ml[s] == 0],
        "total_ml": round(total, 1),
        "resected_ml": round(resected, 1),
        "remnant_ml": round(remnant, 1),
        "remnant_percent": round(100.0 * remnant / total, 1),
        "segments": {s: {"ml": round(ml[s], 1), "percent": round(100.0 * ml[s] / total, 1)}
                     for s in COUINAUD_SEGMENTS},
    }


def read_couinaud_labels(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(label map 0-8, voxel spacing mm) from a label-map NIfTI or from a folder of
    liver_segment_<n>.nii.gz masks (TotalSegmentator's per-class output).

    Raises:
        InputError: the path does not exist, a file is not NIfTI, a folder holds none of the masks,
            or the masks are on different grids.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist: give a liver_segments label map (.nii.gz) or its output folder")
    if path.is_dir():
        files = {s: path / f"liver_segment_{s}.nii.gz" for s in COUINAUD_SEGMENTS}
        files = {s: f for s, f in files.items() if f.exists()}
        if not files:
            raise InputError(f"{path} holds no liver_segment_<1-8>.nii.gz: run `TotalSegmentator -ta liver_segments` "
                             "into it first")
        labels = affine = None
        for s, f in sorted(files.items()):
            img = _load(f)
            mask = np.asanyarray(img.dataobj) > 0
            if labels is None:
                labels, affine = np.zeros(mask.shape, np.uint8), img.affine
            elif mask.shape != labels.shape or not np.allclose(img.affine, affine, atol=1e-4):
                raise InputError(f"{f.name} is not on the grid of the other segment masks in {path}")
            labels[mask] = s
        return labels, voxel_spacing(affine)
    img = _load(path)
    array = np.asanyarray(img.dataobj)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    return np.rint(array).astype(np.int16), voxel_spacing(img.affine)


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    try:
        return nib.load(str(path))
    except Exception as exc:
        raise InputError(f"cannot read {path} as NIfTI ({exc})") from exc


def write_report_json(report: dict, path: str | Path) -> Path:
    """Write the report as JSON, beside the target first and renamed into place, so an interrupted
    run leaves no half-written file.

    Raises:
        InputError: the target's folder does not exist.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"cannot write {target}: folder {target.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(report, indent=2) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def format_report(report: dict) -> str:
    """The report as a short table for a terminal."""
    lines = [f"{'segment':>8s} {'ml':>8s} {'% liver':>8s}  "]
    for s, v in report["segments"].items():
        mark = "resected" if s in report["removed_segments"] else ""
        lines.append(f"{ROMAN[s]:>8s} {v['ml']:8.1f} {v['percent']:8.1f}  {mark}")
    lines.append(f"liver {report['total_ml']:.1f} ml; resected {report['resected_ml']:.1f} ml; future liver remnant "
                 f"{report['remnant_ml']:.1f} ml ({report['remnant_percent']:.1f} % of the liver)")
    if report["absent_segments"]:
        lines.append("segments with no voxels: " + ", ".join(ROMAN[s] for s in report["absent_segments"]))
    return "\n".join(lines)
