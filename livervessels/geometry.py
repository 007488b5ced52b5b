"""Voxel grids and orientation: affines are nibabel-style voxel->world RAS in millimetres."""
from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt

# DICOM patient coordinates are LPS; NIfTI world coordinates are RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_RAS = ornt.axcodes2ornt(("R", "A", "S"))


@dataclass
class Volume:
    """A 3D image on a grid: array[i, j, k] sits at world position affine @ (i, j, k, 1)."""

    array: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))


def to_canonical(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorient to the closest RAS axis order (as nibabel's as_closest_canonical).

    Returns the reoriented array, its affine, and the original orientation for from_canonical.
    """
    original = ornt.io_orientation(affine)
    transform = ornt.ornt_transform(original, _RAS)
    out = ornt.apply_orientation(array, transform)
    new_affine = affine @ ornt.inv_ornt_aff(transform, array.shape)
    return np.ascontiguousarray(out), new_affine, original


class CanonicalFrame:
    """A grid seen in its closest RAS orientation (as to_canonical), for steps whose answer must not
    depend on how the scanner stored rows, columns and slices: `to` brings arrays of the grid there,
    `back` returns results; both pass None through and copy nothing when the grid already is RAS."""

    def __init__(self, affine: np.ndarray, shape: tuple[int, ...], spacing=None):
        original = ornt.io_orientation(affine)
        self.is_identity = bool(np.array_equal(original, _RAS))
        self._to = ornt.ornt_transform(original, _RAS)
        self._back = ornt.ornt_transform(_RAS, original)
        self.affine = affine @ ornt.inv_ornt_aff(self._to, shape)
        given = voxel_spacing(affine) if spacing is None else spacing
        out = [0.0, 0.0, 0.0]
        for axis, (target, _) in enumerate(original):  # the spacing reordered as the axes are
            out[int(target)] = float(given[axis])
        self.spacing: tuple[float, float, float] = tuple(out)

    def to(self, array):
        if array is None or self.is_identity:
            return array
        return np.ascontiguousarray(ornt.apply_orientation(np.asarray(array), self._to))

    def back(self, array):
        if array is None or self.is_identity:
            return array
        return np.ascontiguousarray(ornt.apply_orientation(np.asarray(array), self._back))


def from_canonical(array: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Undo to_canonical for an array on the canonical grid."""
    return np.ascontiguousarray(ornt.apply_orientation(array, ornt.ornt_transform(_RAS, original)))


def same_grid(shape_a, affine_a, shape_b, affine_b, atol: float = 1e-3) -> bool:
    """True when two images share shape and voxel->world mapping."""
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, atol=atol)


def nifti_image(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image with qform and sform both set to the affine (scanner coordinates)."""
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def reorient_to_grid(array: np.ndarray, affine: np.ndarray, target_shape: tuple[int, ...],
                     target_affine: np.ndarray, what: str = "image", atol_mm: float = 0.01) -> np.ndarray:
    """array (on affine) brought onto the target grid when both are the same grid up to axis order
    and flips (e.g. a mask TotalSegmentator wrote in LAS for a DICOM series we read in LPS).

    Raises:
        InputError: the grids differ otherwise (resampling a mask would silently move it).
    """
    from livervessels.errors import InputError

    canon, canon_affine, _ = to_canonical(np.asarray(array), np.asarray(affine, float))
    target = to_canonical(np.zeros(target_shape, np.uint8), target_affine)
    target_canon_shape, target_canon_affine, target_ornt = target[0].shape, target[1], target[2]
    if canon.shape != target_canon_shape or not np.allclose(canon_affine, target_canon_affine, atol=atol_mm):
        raise InputError(
            f"{what} is not on the input image's grid (shape {tuple(np.shape(array))} vs {tuple(target_shape)}, "
            "or a different position/spacing); it must be a segmentation of this very image"
        )
    return from_canonical(canon, target_ornt)
