"""Write a volume as a DICOM image series (used for the demo study and for test inputs).

The geometry comes from the RAS affine, so tests can produce descending slice order, flipped
direction cosines and non-square pixels just by changing the affine.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

from livervessels.geometry import LPS_TO_RAS

SOP_CLASSES = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "SC": "1.2.840.10008.5.1.4.1.1.7",
}


def write_image_series(
    array: np.ndarray,
    affine_ras: np.ndarray,
    out_dir: str | Path,
    *,
    modality: str = "CT",
    sop_class: str | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    series_description: str = "Phantom CT",
    series_number: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    patient_id: str = "PHANTOM-0001",
    patient_name: str = "Phantom^Liver",
    slice_thickness: float | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int = 0,
) -> list[Path]:
    """Write array[i, j, k] (column, row, slice) as one file per slice; returns the paths.

    UIDs are derived from `seed` and the series parameters, so the same call writes the same UIDs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    affine_lps = LPS_TO_RAS @ np.asarray(affine_ras, float)  # the flip is its own inverse
    col_step, row_step, slice_step = affine_lps[:3, 0], affine_lps[:3, 1], affine_lps[:3, 2]
    row_cos = col_step / np.linalg.norm(col_step)
    col_cos = row_step / np.linalg.norm(row_step)
    pixel_spacing = [float(np.linalg.norm(row_step)), float(np.linalg.norm(col_step))]
    thickness = slice_thickness if slice_thickness is not None else float(np.linalg.norm(slice_step))

    entropy = [str(seed), modality, series_description, str(series_number)]
    study_uid = study_uid or generate_uid(entropy_srcs=["study", str(seed), patient_id])
    series_uid = series_uid or generate_uid(entropy_srcs=["series", *entropy])
    frame_of_reference_uid = frame_of_reference_uid or generate_uid(entropy_srcs=["for", str(seed), patient_id])
    sop_class = sop_class or SOP_CLASSES[modality]
    values = np.clip(np.rint(array), -32768, 32767).astype(np.int16)
    today = _dt.date(2026, 1, 1).strftime("%Y%m%d")

    paths = []
    for k in range(values.shape[2]):
        position = (affine_lps @ np.array([0.0, 0.0, k, 1.0]))[:3]
        sop_uid = generate_uid(entropy_srcs=["sop", *entropy, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = list(image_type)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = today
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.AccessionNumber = "PH0001"
        ds.Modality = modality
        ds.Manufacturer = "livervessels phantom"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "Synthetic abdominal phantom"
        ds.SeriesDescription = series_description
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = "ABDOMEN"
        ds.SliceThickness = f"{thickness:.4g}"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
        ds.SliceLocation = f"{float(position[2]):.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(values.shape[1]), int(values.shape[0])
        ds.PixelSpacing = [f"{v:.6f}" for v in pixel_spacing]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "60"
        ds.WindowWidth = "400"
        frame = np.ascontiguousarray(values[:, :, k].T)
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = frame.tobytes()
        else:
            ds.compress(transfer_syntax, frame)  # pydicom picks an installed encoder for the syntax
        path = out_dir / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


__all__ = ["write_image_series", "JPEG2000Lossless", "ExplicitVRLittleEndian"]
