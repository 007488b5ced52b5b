"""Read what users pass as input: a NIfTI file, a folder of DICOM slices, or a zip holding one study."""
from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from livervessels import interrupts
from livervessels.errors import InputError
from livervessels.geometry import Volume
from livervessels.plausibility import check_ct_volume
from livervessels.stage_types import CtStudy
from livervessels.study import load_ct_study

EXPECTED = "expected a NIfTI file (.nii or .nii.gz), a folder of DICOM slices, or a .zip holding one DICOM study"


@dataclass
class LoadedInput:
    volume: Volume
    study: CtStudy | None  # set for DICOM input (needed for a DICOM SEG)
    kind: str  # "nifti", "dicom" or "zip"
    nifti: nib.Nifti1Image | None = None  # the original image, for NIfTI input
    # a zip's unpacked study: its files stay until close() (DICOM elements are read lazily, and the
    # SEG references them), then go, on success, failure and interruption alike
    temporary_dir: Path | None = None
    source: str = ""  # the path it was read from ("" for an in-memory image)

    def close(self) -> None:
        """Remove the temporary folder of an unpacked zip (nothing for other inputs)."""
        if self.temporary_dir is not None:
            shutil.rmtree(self.temporary_dir, ignore_errors=True)
            interrupts.unregister(self.temporary_dir)
            self.temporary_dir = None

    def __enter__(self) -> "LoadedInput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def load_nifti(path: str | Path | nib.Nifti1Image) -> tuple[Volume, nib.Nifti1Image]:
    """A NIfTI image as a Volume (array in the file's voxel order, RAS affine).

    Raises:
        InputError: the file cannot be read as NIfTI, or its image is not 3D.
    """
    try:
        img = path if isinstance(path, nib.spatialimages.SpatialImage) else nib.load(str(path))
        array = np.asanyarray(img.dataobj)
    except Exception as exc:
        raise InputError(f"cannot read {path} as NIfTI ({exc}); {EXPECTED}") from exc
    if not isinstance(path, nib.spatialimages.SpatialImage):
        _refuse_unset_voxel_size(Path(path), img)
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(f"{path} has {array.ndim} dimensions; a 3D CT image is needed")
    if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array[::7, ::7, ::3], 1) == 0):
        array = array.astype(np.int16) if array.min() >= -32768 and array.max() <= 32767 else array
    name = "<nibabel image>" if isinstance(path, nib.spatialimages.SpatialImage) else str(path)
    return check_ct_volume(Volume(array, img.affine.astype(float)), name), img


def _refuse_unset_voxel_size(path: Path, img: nib.spatialimages.SpatialImage) -> None:
    """Refuse a NIfTI without sform and qform whose pixdim is zero or negative.

    nibabel silently reads such voxel sizes as 1 mm, which would run the models on a wrong scale.

    Raises:
        InputError: the file gives no usable voxel size.
    """
    header = img.header
    if not isinstance(header, nib.Nifti1Header) or int(header["sform_code"]) or int(header["qform_code"]):
        return
    with nib.openers.ImageOpener(str(path)) as f:
        raw = type(header).from_fileobj(f, check=False)  # before nibabel's repair of zero pixdims
    sizes = [float(v) for v in raw["pixdim"][1:4]]
    if min(sizes) <= 0:
        shown = " x ".join(f"{v:g}" for v in sizes)
        raise InputError(f"{path}: voxel size {shown} mm and no sform or qform; the image cannot be placed in space "
                         "(reconvert it with its voxel size and orientation)")


def load_input(path: str | Path | nib.Nifti1Image | LoadedInput, workdir: str | Path | None = None) -> LoadedInput:
    """The volume to segment from any supported input (an input already read, e.g. by a cohort's
    read-ahead, is returned as it is).

    A zip is unpacked into workdir, or into a temporary folder that LoadedInput.close() (or leaving
    its `with` block) removes; it is removed at once when reading fails.

    Raises:
        InputError: what is wrong with the input and what was expected.
    """
    if isinstance(path, LoadedInput):
        return path
    if isinstance(path, nib.spatialimages.SpatialImage):
        volume, img = load_nifti(path)
        return LoadedInput(volume, None, "nifti", img)
    path = Path(path)
    if not path.exists():
        raise InputError(f"input {path} does not exist; {EXPECTED}")
    if path.is_dir():
        study = load_ct_study(path)
        return LoadedInput(study.volume, study, "dicom", source=str(path))
    if is_nifti(path):
        volume, img = load_nifti(path)
        return LoadedInput(volume, None, "nifti", img, source=str(path))
    if zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
        owned = workdir is None
        target = Path(workdir or tempfile.mkdtemp(prefix="livervessels-zip-"))
        if owned:
            interrupts.register(target)
        try:
            return _load_zip(path, target, owned)
        except BaseException:
            if owned:
                shutil.rmtree(target, ignore_errors=True)
                interrupts.unregister(target)
            raise
    raise InputError(f"{path} is a single DICOM file; pass the folder holding the whole series"
                     if is_dicom_file(path) else f"cannot read {path}: {EXPECTED}")


def is_dicom_file(path: Path) -> bool:
    """A file with the DICOM preamble ("DICM" at byte 128)."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _load_zip(path: Path, target: Path, owned: bool) -> LoadedInput:
    try:
        with zipfile.ZipFile(path) as zf:
            if not zf.infolist():
                raise InputError(f"zip {path} is empty; {EXPECTED}")
            bad = zf.testzip()  # CRC of every member: a damaged archive is named as such
            if bad is not None:
                raise InputError(f"zip {path} is damaged (member {bad} fails its checksum); copy or export it again")
            _safe_extract(zf, target)
    except zipfile.BadZipFile as exc:
        raise InputError(f"zip {path} is damaged ({exc}); copy or export it again") from exc
    except OSError as exc:
        raise InputError(f"cannot unpack {path} ({exc})") from exc
    niftis = [p for p in target.rglob("*") if is_nifti(p)]
    if len(niftis) == 1 and not any(p.suffix.lower() == ".dcm" for p in target.rglob("*")):
        volume, img = load_nifti(niftis[0])
        img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)  # in memory: the file goes
        return LoadedInput(volume, None, "zip", img, temporary_dir=target if owned else None, source=str(path))
    try:
        study = load_ct_study(target)
    except InputError as exc:  # name the archive, not the temporary folder it was unpacked into
        raise InputError(str(exc).replace(str(target), f"{path} (unpacked)")) from exc
    return LoadedInput(study.volume, study, "zip", temporary_dir=target if owned else None, source=str(path))


def _safe_extract(zf: zipfile.ZipFile, target: Path) -> None:
    """Extract without letting entries escape the target folder."""
    root = target.resolve()
    for member in zf.infolist():
        dest = (root / member.filename).resolve()
        if not dest.is_relative_to(root):
            raise InputError(f"zip entry {member.filename} points outside the archive; refusing to extract")
    zf.extractall(root)
