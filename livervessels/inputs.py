"""Read what users pass as input: a NIfTI file, a folder of DICOM slices, or a zip holding one study."""
from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from livervessels.errors import InputError
from livervessels.geometry import Volume
from livervessels.pipeline import CtStudy, load_ct_study

EXPECTED = "expected a NIfTI file (.nii or .nii.gz), a folder of DICOM slices, or a .zip holding one DICOM study"


@dataclass
class LoadedInput:
    volume: Volume
    study: CtStudy | None  # set for DICOM input (needed for a DICOM SEG)
    kind: str  # "nifti", "dicom" or "zip"
    nifti: nib.Nifti1Image | None = None  # the original image, for NIfTI input


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def load_nifti(path: str | Path | nib.Nifti1Image) -> tuple[Volume, nib.Nifti1Image]:
    """A NIfTI image as a Volume (array in the file's voxel order, RAS affine)."""
    try:
        img = path if isinstance(path, nib.spatialimages.SpatialImage) else nib.load(str(path))
        array = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(f"cannot read {path} as NIfTI ({exc}); {EXPECTED}") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(f"{path} has {array.ndim} dimensions; a 3D CT image is needed")
    if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array[::7, ::7, ::3], 1) == 0):
        array = array.astype(np.int16) if array.min() >= -32768 and array.max() <= 32767 else array
    return Volume(array, img.affine.astype(float)), img


def load_input(path: str | Path | nib.Nifti1Image, workdir: str | Path | None = None) -> LoadedInput:
    """The volume to segment from any supported input; InputError saying what was expected otherwise."""
    if isinstance(path, nib.spatialimages.SpatialImage):
        volume, img = load_nifti(path)
        return LoadedInput(volume, None, "nifti", img)
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist; {EXPECTED}")
    if path.is_dir():
        study = load_ct_study(path)
        return LoadedInput(study.volume, study, "dicom")
    if is_nifti(path):
        volume, img = load_nifti(path)
        return LoadedInput(volume, None, "nifti", img)
    if zipfile.is_zipfile(path):
        target = Path(workdir or tempfile.mkdtemp(prefix="livervessels-zip-"))
        try:
            with zipfile.ZipFile(path) as zf:
                _safe_extract(zf, target)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(f"cannot unpack {path} ({exc}); {EXPECTED}") from exc
        niftis = [p for p in target.rglob("*") if is_nifti(p)]
        if len(niftis) == 1 and not any(p.suffix.lower() == ".dcm" for p in target.rglob("*")):
            volume, img = load_nifti(niftis[0])
            return LoadedInput(volume, None, "zip", img)
        study = load_ct_study(target)
        return LoadedInput(study.volume, study, "zip")
    raise InputError(f"cannot read {path}: {EXPECTED}")


def _safe_extract(zf: zipfile.ZipFile, target: Path) -> None:
    """Extract without letting entries escape the target folder."""
    root = target.resolve()
    for member in zf.infolist():
        dest = (root / member.filename).resolve()
        if not dest.is_relative_to(root):
            raise InputError(f"zip entry {member.filename} points outside the archive; refusing to extract")
    zf.extractall(root)
