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


def is_canonical(affine: np.ndarray) -> bool:
    """True when the voxel axes already run along R, A, S (to_canonical would change nothing)."""
    return bool(np.array_equal(ornt.io_orientation(affine), _RAS))


def canonical_spacing(spacing, original: np.ndarray) -> tuple[float, float, float]:
    """A spacing given per input axis, reordered as to_canonical reorders the axes."""
    out = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(original):
        out[int(target)] = float(spacing[axis])
    return tuple(out)


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

    Raises InputError when the grids differ otherwise: resampling a mask would silently move it.
    """
    from livervessels.errors import InputError

    canon, canon_affine, _ = to_canonical(np.asarray(array), np.asarray(affine, float))
    target_canon_shape = to_canonical(np.zeros(target_shape, np.uint8), target_affine)[0].shape
    _, target_canon_affine, target_ornt = to_canonical(np.zeros(target_shape, np.uint8), target_affine)
    if canon.shape != target_canon_shape or not np.allclose(canon_affine, target_canon_affine, atol=atol_mm):
        raise InputError(
            f"{what} is not on the input image's grid (shape {tuple(np.shape(array))} vs {tuple(target_shape)}, "
            "or a different position/spacing); it must be a segmentation of this very image"
        )
    return from_canonical(canon, target_ornt)
