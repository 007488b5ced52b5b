"""The bad and awkward inputs of the reliability suite, each built small from the test phantom.

A Case builds its input under a folder and says what a user must see: the exit code, a fragment of
the one `error:` line (refusals) or of a qc.json warning (inputs that run with a warning). Where
each is checked: test_reliability_refusals.py (refused: every entry point, nothing written),
test_reliability_runs.py (run to the end: outputs, warnings, identical results across encodings).
Interrupts (SIGINT / SIGTERM on the command line and under Holoscan) are in tests/test_interrupts.py
and the output lock's waiting side in tests/test_staging.py; they need processes of their own.
"""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import JPEGLSLossless, RLELossless

from livervessels.synthetic.write_series import JPEG2000Lossless, write_image_series


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, object], tuple[Path, list[str]]]  # (folder, phantom) -> (input, extra arguments)
    message: str  # in the error line (refusals) or in a qc.json warning (runs; "" for none)
    kind: str = "dicom"  # dicom (a folder: every entry point, the app too), file (command lines and API)
    commands: tuple[str, ...] = ("TotalSegmentator", "TotalSegmentatorEnhanced")
    exit_code: int = 2
    same_as_plain: bool = False  # runs: masks byte-identical to the plain series' run
    app_message: str = ""  # where the app words it differently (it takes DICOM folders only)


# ---- DICOM series from the phantom -------------------------------------------------------------

def _series(folder: Path, phantom, name: str = "ct", array=None, affine=None, **kw) -> Path:
    out = folder / name
    write_image_series(phantom.ct if array is None else array, phantom.affine if affine is None else affine,
                       out, **kw)
    return out


def _edit(folder: Path, fn: Callable[[int, pydicom.Dataset], None]) -> None:
    """fn(k, dataset) on each slice in slice order, saved back."""
    files = sorted(folder.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        fn(k, ds)
        ds.save_as(f)


def _shifted(shift):
    def build(folder, ph):
        ct = _series(folder, ph)

        def move(k, ds):
            position = np.array([float(x) for x in ds.ImagePositionPatient])
            ds.ImagePositionPatient = [float(v) for v in shift(k, position)]
        _edit(ct, move)
        return ct, []
    return build


def empty_folder(folder, ph):
    (folder / "study").mkdir()
    return folder / "study", []


def non_dicom_files(folder, ph):
    study = folder / "study"
    study.mkdir()
    (study / "notes.txt").write_text("not an image")
    (study / "scan.bin").write_bytes(b"\x00\x01binary" * 40)
    return study, []


def localizer_only(folder, ph):
    return _series(folder, ph, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")), []


def mr_only(folder, ph):
    return _series(folder, ph, modality="MR"), []


def single_slice(folder, ph):
    return _series(folder, ph, array=ph.ct[:, :, 10:11]), []


def missing_slice(folder, ph):
    ct = _series(folder, ph)
    (ct / "IM0017.dcm").unlink()
    return ct, []


def unreadable_header(folder, ph):
    ct = _series(folder, ph)
    data = bytearray((ct / "IM0017.dcm").read_bytes())
    data[132:400] = b"\xff" * 268  # the preamble survives, the header after it does not
    (ct / "IM0017.dcm").write_bytes(bytes(data))
    return ct, []


def truncated_slice(folder, ph):
    ct = _series(folder, ph)
    data = (ct / "IM0017.dcm").read_bytes()
    (ct / "IM0017.dcm").write_bytes(data[: len(data) - 4000])
    return ct, []


def rescale_missing(folder, ph):
    # stored values of HU + 1024 with the rescale tags removed, as some exports do
    ct = _series(folder, ph, array=ph.ct + 1024)

    def drop(k, ds):
        del ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType
    _edit(ct, drop)
    return ct, []


def all_air(folder, ph):
    noise = np.random.default_rng(0).normal(0, 20, ph.ct.shape)  # air as a scanner records it
    return _series(folder, ph, array=-1000.0 + noise), []


def constant(folder, ph):
    return _series(folder, ph, array=np.full(ph.ct.shape, 40.0)), []


def pixel_spacing(mm: float):
    def build(folder, ph):
        ct = _series(folder, ph)

        def respace(k, ds):
            ds.PixelSpacing = [mm, mm]
        _edit(ct, respace)
        return ct, []
    return build


# ---- files --------------------------------------------------------------------------------------

def _nifti(folder, array, affine, name="ct.nii.gz") -> Path:
    path = folder / name
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def nonexistent(folder, ph):
    return folder / "no_such_scan.nii.gz", []


def single_dicom_file(folder, ph):
    return sorted(_series(folder, ph).glob("*.dcm"))[0], []


def garbage_nifti(folder, ph):
    path = folder / "ct.nii.gz"
    path.write_bytes(b"this is not a NIfTI file" * 10)
    return path, []


def text_file(folder, ph):
    path = folder / "ct.txt"
    path.write_text("not an image")
    return path, []


def nifti_2d(folder, ph):
    return _nifti(folder, ph.ct[:, :, 10].astype(np.int16), ph.affine), []


def nifti_nan(share: float):
    def build(folder, ph):
        ct = ph.ct.astype(np.float32).copy()
        flat = ct.reshape(-1)
        rng = np.random.default_rng(0)
        flat[rng.choice(flat.size, max(1, int(share * flat.size)), replace=False)] = np.nan
        return _nifti(folder, ct, ph.affine), []
    return build


def nifti_coarse(folder, ph):
    # the 8x8x8 volume of 30 mm voxels a broken conversion made
    return _nifti(folder, ph.ct[::12, ::12, ::5].astype(np.int16), np.diag([30.0, 30.0, 30.0, 1.0])), []


def nifti_sform(sform):
    # an sform as a broken conversion writes it (nibabel refuses to build such an image from an affine)
    def build(folder, ph):
        header = nib.Nifti1Header()
        header.set_data_dtype(np.int16)
        header["sform_code"], header["qform_code"] = 1, 0
        for row, name in enumerate(("srow_x", "srow_y", "srow_z")):
            header[name] = np.asarray(sform, float)[row]
        path = folder / "ct.nii.gz"
        nib.save(nib.Nifti1Image(ph.ct.astype(np.int16), None, header), str(path))
        return path, []
    return build


def nifti_zero_voxel_size(folder, ph):
    # no sform or qform and zero pixdim: nibabel would read 1 mm voxels
    img = nib.Nifti1Image(ph.ct.astype(np.int16), None)
    img.header["pixdim"][1:4] = 0.0
    path = folder / "ct.nii.gz"
    nib.save(img, str(path))
    return path, []


def plain_nifti(folder, ph):
    return _nifti(folder, ph.ct.astype(np.int16), ph.affine), []


def nifti_rescale_missing(folder, ph):
    return _nifti(folder, (ph.ct + 1024).astype(np.int16), ph.affine), []


def nifti_all_air(folder, ph):
    return _nifti(folder, np.full(ph.ct.shape, -1000, np.int16), ph.affine), []


def _zip(folder, members: dict[str, bytes]) -> Path:
    path = folder / "study.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def zip_empty(folder, ph):
    return _zip(folder, {}), []


def zip_damaged(folder, ph):
    ct = _series(folder, ph)
    path = _zip(folder, {f"study/{f.name}": f.read_bytes() for f in sorted(ct.glob("*.dcm"))})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, []


def zip_traversal(folder, ph):
    return _zip(folder, {"../../escaped.dcm": b"x" * 10, "study/a.dcm": b"y"}), []


def zip_without_dicom(folder, ph):
    return _zip(folder, {"notes.txt": b"not an image"}), []


# ---- outputs, models and options -----------------------------------------------------------------

def demo_ct(folder, ph):
    return _series(folder, ph), []


def with_args(*args: str, build=demo_ct):
    def wrapped(folder, ph):
        path, extra = build(folder, ph)
        return path, [*extra, *(a.format(folder=folder) for a in args)]
    return wrapped


def models_empty_folder(folder, ph):
    (folder / "models").mkdir()
    return _series(folder, ph), ["-m", str(folder / "models")]


def corrupt_checkpoint(folder, ph):
    from conftest import MODELS

    models = folder / "models"
    shutil.copytree(MODELS, models)
    for checkpoint in models.rglob("checkpoint_final.pth"):
        checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    return _series(folder, ph), ["-m", str(models)]


def support_wrong_grid(folder, ph):
    support = folder / "support"
    support.mkdir()
    small = np.zeros((20, 20, 10), np.uint8)
    small[5:15, 5:15, 2:8] = 1
    for name in ("liver", "portal_vein_and_splenic_vein", "inferior_vena_cava", "liver_vessels"):
        nib.save(nib.Nifti1Image(small, np.diag([9.0, 9.0, 9.0, 1.0]) @ np.eye(4)), str(support / f"{name}.nii.gz"))
    return _series(folder, ph), ["--split_portal_hepatic", "--split_support_dir", str(support)]


TS = ("TotalSegmentator",)
ENH = ("TotalSegmentatorEnhanced",)

REFUSALS: list[Case] = [
    # DICOM folders: the app sees these too
    Case("empty_folder", empty_folder, "is empty"),
    Case("non_dicom_files_only", non_dicom_files, "no DICOM"),
    Case("localizer_only", localizer_only, "no usable CT series"),
    Case("mr_only", mr_only, "modality MR"),
    Case("single_slice", single_slice, "single slice"),
    Case("missing_slice", missing_slice, "1 slice(s) missing"),
    Case("irregular_spacing", _shifted(lambda k, p: [p[0], p[1], (k // 2) * 5.0 + (k % 2) * 1.5]),
         "irregular slice spacing"),
    Case("two_stacks", _shifted(lambda k, p: p + [0, 0, 400.0 if k >= 20 else 0.0]), "separate stacks of slices"),
    Case("unreadable_header", unreadable_header, "IM0017.dcm"),
    Case("truncated_slice", truncated_slice, "IM0017.dcm is truncated"),
    Case("rescale_missing", rescale_missing, "not Hounsfield units"),
    Case("all_air", all_air, "no body in the image"),
    Case("constant_image", constant, "every voxel is 40"),
    Case("pixel_spacing_10mm", pixel_spacing(10.0), "too coarse to segment"),
    Case("pixel_spacing_zero", pixel_spacing(0.0), "PixelSpacing"),
    # files and archives: the command lines and the API
    Case("nonexistent_input", nonexistent, "does not exist", kind="file"),
    Case("single_dicom_file", single_dicom_file, "is a single DICOM file", kind="file",
         app_message="is not a folder; pass the folder that holds the DICOM study"),
    Case("garbage_nifti", garbage_nifti, "as NIfTI", kind="file"),
    Case("text_file", text_file, "cannot read", kind="file"),
    Case("nifti_2d", nifti_2d, "3D CT image is needed", kind="file"),
    Case("nifti_all_nan", nifti_nan(1.0), "NaN or infinite", kind="file"),
    Case("nifti_5_percent_nan", nifti_nan(0.05), "NaN or infinite", kind="file"),
    Case("nifti_30mm_voxels", nifti_coarse, "too coarse to segment", kind="file"),
    Case("nifti_zero_voxel_size", nifti_zero_voxel_size, "voxel size", kind="file"),
    Case("nifti_zero_affine", nifti_sform(np.zeros((4, 4))), "singular", kind="file"),
    Case("nifti_singular_affine", nifti_sform([[1, 0, 0, 0], [2, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1]]),
         "singular", kind="file"),
    Case("nifti_rescale_missing", nifti_rescale_missing, "not Hounsfield units", kind="file"),
    Case("nifti_all_air", nifti_all_air, "every voxel is -1000", kind="file"),
    Case("zip_empty", zip_empty, "is empty", kind="file"),
    Case("zip_damaged", zip_damaged, "is damaged", kind="file"),
    Case("zip_traversal", zip_traversal, "points outside the archive", kind="file"),
    Case("zip_without_dicom", zip_without_dicom, "(unpacked)", kind="file"),
    # models and options
    Case("models_folder_empty", models_empty_folder, "holds no nnU-Net model"),
    Case("checkpoint_corrupt", corrupt_checkpoint, "checkpoint_final.pth"),
    Case("unknown_task", with_args("-ta", "no_such_task"), "no_such_task", kind="file", commands=TS),
    Case("unknown_roi_subset", with_args("-rs", "no_such_organ"), "no_such_organ", kind="file", commands=TS),
    Case("unknown_device", with_args("--device", "tpu"), "tpu", kind="file"),
    Case("seg_from_nifti", with_args("-ot", "dicom_seg", build=plain_nifti), "DICOM", kind="file",
         commands=TS),
    Case("support_dir_missing", with_args("--split_portal_hepatic", "--split_support_dir", "{folder}/nowhere"),
         "is not a folder", kind="file", commands=ENH),
    Case("support_wrong_grid", support_wrong_grid, "support", kind="file", commands=ENH),
]

# Output problems found before any work (every command line, the app where it applies)
OUTPUT_PROBLEMS = ["existing_file", "unwritable", "locked", "no_space"]


# ---- inputs that run to the end ------------------------------------------------------------------

def duplicate_position(folder, ph):
    ct = _series(folder, ph)
    ds = pydicom.dcmread(ct / "IM0010.dcm")  # a second acquisition of one slice, as some series hold
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["dup"])
    ds.AcquisitionNumber = 2
    ds.save_as(ct / "IM0010-acq2.dcm")
    return ct, []


def gantry_tilt(folder, ph):
    affine = ph.affine.copy()
    affine[1, 2] = affine[2, 2] * np.tan(np.radians(12.0))  # each slice shifted along y: a 12 degree tilt
    return _series(folder, ph, affine=affine), []


TYPE2_ATTRIBUTES = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "InstanceNumber",
                    "Manufacturer", "PositionReferenceIndicator", "PatientPosition")


def without_type2_attributes(folder, ph):
    # research exports and series converted from NIfTI often lack the attributes DICOM allows empty
    ct = _series(folder, ph)

    def strip(k, ds):
        for keyword in TYPE2_ATTRIBUTES:
            if keyword in ds:
                delattr(ds, keyword)
    _edit(ct, strip)
    return ct, []


def mixed_series(folder, ph):
    study = folder / "study"
    _series(study, ph, "ct")
    _series(study, ph, "mr", modality="MR", series_number=2, series_description="MR")
    _series(study, ph, "scout", array=ph.ct[:, :, 18:22], series_number=3, series_description="Topogram",
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    return study, []


def shuffled_names(folder, ph):
    ct = _series(folder, ph)
    files = sorted(ct.glob("*.dcm"))
    order = np.random.default_rng(7).permutation(len(files))
    for f, k in zip(files, order):
        f.rename(ct / f"{k * 7919 % 100003:06d}")  # names that say nothing about slice order
    return ct, []


def encoded(syntax):
    return lambda folder, ph: (_series(folder, ph, transfer_syntax=syntax), [])


def non_ascii_path(folder, ph):
    return _series(folder / "Études patient", ph, "Série 肝臓 ct"), []


def oblique(folder, ph):
    angle = np.radians(15.0)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return _series(folder, ph, affine=rotation @ ph.affine), []


def thick_slices(folder, ph):
    affine = ph.affine.copy()
    affine[:3, 2] *= 10.0 / np.linalg.norm(affine[:3, 2])  # 10 mm slices, an old protocol
    return _series(folder, ph, array=ph.ct[:, :, ::2], affine=affine), []


def below_the_liver(folder, ph):
    from livervessels.synthetic.phantom import LABELS

    rows = np.nonzero((ph.labels == LABELS["liver"]).any(axis=(0, 1)))[0]
    return _series(folder, ph, array=ph.ct[:, :, rows[-1] + 1:]), []


def corrupt_slice(folder, ph):
    ct = ph.ct.copy()
    ct[20:60, 20:60, 17] = np.random.default_rng(0).uniform(-1000, 2000, (40, 40))  # a block of wrong values
    return _series(folder, ph, array=ct), []


RUNS: list[Case] = [
    Case("plain", demo_ct, "", same_as_plain=True),
    Case("duplicate_position", duplicate_position, "1 slice(s) at an already occupied position dropped",
         same_as_plain=True),
    Case("gantry_tilt", gantry_tilt, "gantry tilt of 12.0 degrees"),
    Case("without_type2_attributes", without_type2_attributes, "", same_as_plain=True),
    Case("mixed_series", mixed_series, "", same_as_plain=True),
    Case("shuffled_names", shuffled_names, "", same_as_plain=True),
    Case("rle", encoded(RLELossless), "", same_as_plain=True),
    Case("jpeg_ls", encoded(JPEGLSLossless), "", same_as_plain=True),
    Case("jpeg2000", encoded(JPEG2000Lossless), "", same_as_plain=True),
    Case("non_ascii_path", non_ascii_path, "", same_as_plain=True),
    Case("oblique", oblique, ""),
    Case("slices_10mm", thick_slices, "coarse voxels (2.5 x 2.5 x 10 mm)"),
    Case("nifti_few_nan", nifti_nan(0.002), "NaN/infinite voxel(s) (0.20%) set to -1024 HU", kind="file"),
    Case("no_liver", below_the_liver, "no liver in the field of view"),
    Case("corrupt_slice", corrupt_slice, "IM0018.dcm disagrees with both neighbouring slices"),
]
