"""Scan a folder of DICOM files into studies and series, repairing missing UIDs.

Real exports are not always tidy: the shared example study carries empty Study/Series/SOP
Instance UIDs in the datasets (the file meta still has the SOP Instance UID). We read headers
only (pixel data is deferred until a series is selected), group by UID, and where a UID is
missing we derive a stable one from attributes that identify the study or series, so the same
input always yields the same grouping and the same output UIDs. Every repair is recorded.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import generate_uid

from livervessels.errors import InputError

log = logging.getLogger(__name__)

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR: an index, not an image
UNREADABLE = "unreadable DICOM"  # how ignored_files names files that are DICOM but damaged
_DEFER = "64 KB"  # pixel data is read from the file only when accessed


@dataclass
class DicomSeries:
    """One series: its datasets (headers read, pixels deferred) and where they came from."""

    study_uid: str
    series_uid: str
    datasets: list[Dataset] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    # SOP Instance UIDs we had to invent: they exist nowhere in the user's data.
    derived_sop_uids: set[str] = field(default_factory=set)

    @property
    def first(self) -> Dataset:
        return self.datasets[0]

    @property
    def modality(self) -> str:
        return str(self.first.get("Modality", "") or "")

    @property
    def description(self) -> str:
        return str(self.first.get("SeriesDescription", "") or "")

    @property
    def image_type(self) -> list[str]:
        value = self.first.get("ImageType", []) or []
        values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
        return [str(v).upper() for v in values]

    @property
    def sop_class_uid(self) -> str:
        return str(self.first.get("SOPClassUID", "") or "")

    def __len__(self) -> int:
        return len(self.datasets)


@dataclass
class UidRepairs:
    """What was derived or borrowed because the datasets lacked it."""

    study_uids_derived: dict[str, str] = field(default_factory=dict)  # derived uid -> reason
    series_uids_derived: dict[str, str] = field(default_factory=dict)
    sop_instance_uids_from_file_meta: int = 0
    sop_instance_uids_missing: int = 0  # neither dataset nor file meta had one
    sop_class_uids_from_file_meta: int = 0

    def any(self) -> bool:
        return bool(
            self.study_uids_derived
            or self.series_uids_derived
            or self.sop_instance_uids_from_file_meta
            or self.sop_instance_uids_missing
            or self.sop_class_uids_from_file_meta
        )

    def as_dict(self) -> dict:
        return {
            "study_instance_uids_derived": self.study_uids_derived,
            "series_instance_uids_derived": self.series_uids_derived,
            "sop_instance_uids_taken_from_file_meta": self.sop_instance_uids_from_file_meta,
            "sop_instance_uids_missing": self.sop_instance_uids_missing,
            "sop_class_uids_taken_from_file_meta": self.sop_class_uids_from_file_meta,
        }


@dataclass
class DicomScan:
    """Everything found under a folder."""

    series: list[DicomSeries]
    ignored_files: list[tuple[str, str]]  # (path, reason)
    repairs: UidRepairs

    @property
    def unreadable_files(self) -> list[tuple[str, str]]:
        """(path, reason) of the files that look like DICOM but could not be read."""
        return [(f, r) for f, r in self.ignored_files if r.startswith(UNREADABLE)]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value).strip()


def header_floats(value, n: int) -> np.ndarray | None:
    """A multi-valued numeric attribute (ImagePositionPatient, PixelSpacing, ...) as n floats, or None
    where it is missing, not n values or not numbers. pydicom reads an element holding one value as a
    number, not a list, so that is "not n values" too."""
    if not isinstance(value, (list, tuple, MultiValue)) or len(value) != n:
        return None
    try:
        return np.asarray([float(v) for v in value])
    except (TypeError, ValueError):
        return None


def _read_header(path: Path) -> Dataset | None:
    """The dataset with pixel data deferred, or None when the file is not DICOM."""
    try:
        with warnings.catch_warnings():  # pydicom both logs and warns about damaged files: once is enough
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(path, defer_size=_DEFER)
    except InvalidDicomError:
        ds = None
    except Exception as exc:  # truncated or corrupt files: ignore like non-DICOM, with the reason
        raise _Unreadable(str(exc)) from exc
    if ds is not None:
        meta = getattr(ds, "file_meta", None) or Dataset()
        if not any(k in ds for k in ("SOPClassUID", "Modality", "PixelData")) and "MediaStorageSOPClassUID" not in meta:
            # the DICOM preamble is there but nothing that identifies an instance could be parsed:
            # a damaged header, which would otherwise become a series of its own
            raise _Unreadable("its header is damaged (no SOP class, modality or pixel data could be read)")
        return ds
    # Files written without the 128-byte preamble are still DICOM; accept them only when they
    # carry the attributes of an image instance, so arbitrary binaries are not misread.
    try:
        ds = pydicom.dcmread(path, defer_size=_DEFER, force=True)
    except Exception as exc:
        raise _Unreadable(str(exc)) from exc
    if "Modality" in ds and ("SOPClassUID" in ds or "PixelData" in ds):
        return ds
    return None


class _Unreadable(Exception):
    pass


def _derive_study_uid(ds: Dataset) -> str:
    keys = ["PatientID", "PatientName", "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription"]
    return generate_uid(entropy_srcs=["study"] + [_text(ds, k) for k in keys])


def _derive_series_uid(ds: Dataset, study_uid: str) -> str:
    keys = ["SeriesNumber", "Modality", "SeriesDescription", "SeriesDate", "SeriesTime", "FrameOfReferenceUID"]
    return generate_uid(entropy_srcs=["series", study_uid] + [_text(ds, k) for k in keys])


def _repair_uids(ds: Dataset, repairs: UidRepairs) -> bool:
    """Fill empty UIDs in place. Returns False when the instance has no SOP Instance UID anywhere."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    has_sop_uid = True
    if not _text(ds, "SOPInstanceUID"):
        from_meta = _text(meta, "MediaStorageSOPInstanceUID")
        if from_meta:
            ds.SOPInstanceUID = from_meta
            repairs.sop_instance_uids_from_file_meta += 1
        else:
            has_sop_uid = False
            repairs.sop_instance_uids_missing += 1
    if not _text(ds, "SOPClassUID"):
        from_meta = _text(meta, "MediaStorageSOPClassUID")
        if from_meta:
            ds.SOPClassUID = from_meta
            repairs.sop_class_uids_from_file_meta += 1
    if not _text(ds, "StudyInstanceUID"):
        ds.StudyInstanceUID = _derive_study_uid(ds)
        repairs.study_uids_derived[ds.StudyInstanceUID] = ("empty StudyInstanceUID; derived from patient/study "
                                                           "attributes")
    if not _text(ds, "SeriesInstanceUID"):
        ds.SeriesInstanceUID = _derive_series_uid(ds, ds.StudyInstanceUID)
        repairs.series_uids_derived[ds.SeriesInstanceUID] = "empty SeriesInstanceUID; derived from series attributes"
    return has_sop_uid


def _list_files(folder: Path) -> list[Path]:
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return files


def scan_dicom_folder(folder: str | Path) -> DicomScan:
    """Read the headers of every DICOM file under folder and group them by study and series.

    Non-DICOM files are skipped and listed in ignored_files. Raises InputError when the folder
    does not exist or holds no DICOM image at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"input folder {folder} does not exist or is not a folder; pass a folder of DICOM files")
    files = _list_files(folder)
    if not files:
        raise InputError(f"input folder {folder} is empty; put the DICOM files of one or more studies there")

    repairs = UidRepairs()
    ignored: list[tuple[str, str]] = []
    by_uid: dict[tuple[str, str], DicomSeries] = {}
    for path in files:
        try:
            ds = _read_header(path)
        except _Unreadable as exc:
            ignored.append((str(path), f"{UNREADABLE}: {exc}"))
            continue
        if ds is None:
            ignored.append((str(path), "not a DICOM file"))
            continue
        if _text(ds, "SOPClassUID") == MEDIA_STORAGE_DIRECTORY or _text(
            getattr(ds, "file_meta", Dataset()), "MediaStorageSOPClassUID"
        ) == MEDIA_STORAGE_DIRECTORY:
            ignored.append((str(path), "DICOMDIR index"))
            continue
        has_sop_uid = _repair_uids(ds, repairs)
        if not has_sop_uid:
            # Needed to tell instances apart; never written into a reference (see derived_sop_uids).
            ds.SOPInstanceUID = generate_uid(entropy_srcs=["instance", str(path.resolve())])
        key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
        series = by_uid.setdefault(key, DicomSeries(study_uid=key[0], series_uid=key[1]))
        if not has_sop_uid:
            series.derived_sop_uids.add(str(ds.SOPInstanceUID))
        series.datasets.append(ds)
        series.files.append(path)

    for path, reason in ignored:
        log.warning("ignored %s: %s", path, reason)
    if not by_uid:
        raise InputError(
            f"no DICOM files found in {folder} ({len(ignored)} other files ignored); "
            "pass a folder that holds the DICOM files of a CT study"
        )
    return DicomScan(series=list(by_uid.values()), ignored_files=ignored, repairs=repairs)

