"""livervessels/dicom/scan.py: grouping DICOM files into studies and series, UID repair, which
files are ignored and why, headers read without the pixel data.

Every file is written here with pydicom, a few tiny slices each, so each expectation follows from
what the files hold (their UIDs, their file meta) and not from another part of the project.
"""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from livervessels.dicom.scan import UNREADABLE, scan_dicom_folder

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"  # PS3.4 B.5: CT Image Storage
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # PS3.4 B.5 / PS3.10: the DICOMDIR's SOP class


def _slice(study: str, series: str, sop: str, *, patient: str = "P1", series_number: int = 1, z: float = 0.0,
           size: int = 4) -> Dataset:
    """A minimal CT Image instance; UIDs may be "" (empty, as some exports write them)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.PatientID, ds.PatientName = patient, f"Test^{patient}"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "1", ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", series_number, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, z], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.0
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (np.arange(size * size, dtype=np.uint16) + int(z)).tobytes()
    return ds


def _save(ds: Dataset, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)  # 128-byte preamble, "DICM", file meta


def _by_uids(scan) -> dict[tuple[str, str], int]:
    return {(s.study_uid, s.series_uid): len(s) for s in scan.series}


def test_files_are_grouped_by_study_and_series_uid_wherever_they_lie(tmp_path):
    study_a, study_b = generate_uid(), generate_uid()
    a1, a2, b1 = generate_uid(), generate_uid(), generate_uid()
    layout = [(study_a, a1, 3), (study_a, a2, 2), (study_b, b1, 2)]
    k = 0
    for study, series, n in layout:
        for i in range(n):
            # names and folders say nothing about the grouping: only the UIDs do
            _save(_slice(study, series, generate_uid(), z=2.0 * i), tmp_path / f"d{k % 2}" / f"x{k * 7 % 11:03d}")
            k += 1
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study_a, a1): 3, (study_a, a2): 2, (study_b, b1): 2}
    for s in scan.series:
        assert len(s.files) == len(s.datasets)
        for ds, path in zip(s.datasets, s.files):
            on_disk = pydicom.dcmread(path, stop_before_pixels=True)
            assert (on_disk.StudyInstanceUID, on_disk.SeriesInstanceUID) == (s.study_uid, s.series_uid)
            assert ds.SOPInstanceUID == on_disk.SOPInstanceUID
    # tidy input: nothing to repair, nothing ignored
    assert not scan.repairs.any() and scan.ignored_files == [] and scan.unreadable_files == []


def test_empty_sop_uids_are_taken_from_the_file_meta(tmp_path):
    """PS3.10: the file meta's Media Storage SOP Instance/Class UIDs are those of the instance."""
    study, series = generate_uid(), generate_uid()
    meta_uids = []
    for i in range(2):
        ds = _slice(study, series, "", z=2.0 * i)
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        meta_uids.append(ds.file_meta.MediaStorageSOPInstanceUID)
        ds.SOPClassUID = ""
        _save(ds, tmp_path / f"{i}.dcm")
    scan = scan_dicom_folder(tmp_path)
    (series_found,) = scan.series
    assert sorted(str(ds.SOPInstanceUID) for ds in series_found.datasets) == sorted(meta_uids)
    assert {str(ds.SOPClassUID) for ds in series_found.datasets} == {CT_IMAGE_STORAGE}
    assert scan.repairs.sop_instance_uids_from_file_meta == 2 and scan.repairs.sop_class_uids_from_file_meta == 2
    assert series_found.derived_sop_uids == set()  # these are the user's own UIDs: referenceable


def test_empty_study_and_series_uids_are_derived_per_patient_and_series_and_do_not_depend_on_the_path(tmp_path):
    # two patients; patient 1 has two series (numbers 1 and 2) of two slices, patient 2 one series
    folder = tmp_path / "in"
    plan = [("P1", 1, 0), ("P1", 1, 1), ("P1", 2, 0), ("P1", 2, 1), ("P2", 1, 0), ("P2", 1, 1)]
    for n, (patient, number, i) in enumerate(plan):
        _save(_slice("", "", generate_uid(), patient=patient, series_number=number, z=2.0 * i), folder / f"{n}.dcm")
    scan = scan_dicom_folder(folder)
    groups = {(str(s.first.PatientID), int(s.first.SeriesNumber)): s for s in scan.series}
    assert set(groups) == {("P1", 1), ("P1", 2), ("P2", 1)}
    assert all(len(s) == 2 for s in scan.series)  # slices of one series stay together
    assert groups["P1", 1].study_uid == groups["P1", 2].study_uid != groups["P2", 1].study_uid
    assert len({s.series_uid for s in scan.series}) == 3
    for s in scan.series:
        for uid in (s.study_uid, s.series_uid):
            assert UID(uid).is_valid  # PS3.5 9.1: digits and dots, at most 64 characters
        assert all(str(ds.StudyInstanceUID) == s.study_uid for ds in s.datasets)  # written into the datasets
    assert set(scan.repairs.series_uids_derived) == {s.series_uid for s in scan.series}
    assert set(scan.repairs.study_uids_derived) == {s.study_uid for s in scan.series}
    # the same files elsewhere (another path, another file order) give the same UIDs
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(folder, copy)
    for f in list(copy.iterdir()):
        f.rename(copy / f"z{f.name}")
    assert _by_uids(scan_dicom_folder(copy)) == _by_uids(scan)


def test_instances_without_any_sop_instance_uid_get_distinct_uids_marked_as_invented(tmp_path):
    study, series = generate_uid(), generate_uid()
    for i in range(2):
        ds = _slice(study, series, "", z=2.0 * i)
        del ds.file_meta.MediaStorageSOPInstanceUID
        ds.preamble = b"\0" * 128
        ds.save_as(tmp_path / f"{i}.dcm", enforce_file_format=False)  # keeps the incomplete file meta
    scan = scan_dicom_folder(tmp_path)
    (found,) = scan.series
    uids = {str(ds.SOPInstanceUID) for ds in found.datasets}
    assert len(uids) == 2 and all(uids)  # told apart ...
    assert found.derived_sop_uids == uids  # ... and known to be ours, never to be referenced
    assert scan.repairs.sop_instance_uids_missing == 2


def test_a_dicomdir_is_ignored_as_an_index_and_its_images_are_read_once(tmp_path):
    from pydicom.fileset import FileSet

    fs = FileSet()
    study, series = generate_uid(), generate_uid()
    for i in range(2):
        fs.add(_slice(study, series, generate_uid(), z=2.0 * i))
    fs.write(tmp_path / "media")  # writes DICOMDIR and the instances below it, as on a CD
    dicomdir = tmp_path / "media" / "DICOMDIR"
    assert str(pydicom.dcmread(dicomdir).file_meta.MediaStorageSOPClassUID) == MEDIA_STORAGE_DIRECTORY
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 2}
    assert scan.ignored_files == [(str(dicomdir), "DICOMDIR index")]


def test_a_file_without_the_preamble_is_read_but_damaged_and_foreign_files_are_told_apart(tmp_path):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "a.dcm")
    bare = _slice(study, series, generate_uid(), z=2.0)
    del bare.file_meta  # PS3.10 requires the preamble, yet some old exports write the bare dataset
    bare.save_as(tmp_path / "b.dcm", enforce_file_format=False, implicit_vr=True, little_endian=True)
    assert (tmp_path / "b.dcm").read_bytes()[128:132] != b"DICM"
    damaged = bytearray((tmp_path / "a.dcm").read_bytes())
    damaged[132:] = b"\xff" * (len(damaged) - 132)  # preamble and "DICM" kept, the rest destroyed
    (tmp_path / "c.dcm").write_bytes(bytes(damaged))
    (tmp_path / "notes.txt").write_text("not an image")
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 2}
    assert sorted(p.name for p in scan.series[0].files) == ["a.dcm", "b.dcm"]
    reasons = {p.split("/")[-1]: r for p, r in scan.ignored_files}
    assert set(reasons) == {"c.dcm", "notes.txt"}
    assert reasons["c.dcm"].startswith(UNREADABLE) and reasons["notes.txt"] == "not a DICOM file"
    assert [p.split("/")[-1] for p, _ in scan.unreadable_files] == ["c.dcm"]  # only the damaged DICOM file


def test_pixel_data_is_left_on_disk_while_scanning_and_read_on_access(tmp_path):
    size = 256  # 128 KB of pixel data, above the 64 KB the scan defers
    study, series = generate_uid(), generate_uid()
    for i in range(2):
        _save(_slice(study, series, generate_uid(), z=2.0 * i, size=size), tmp_path / f"{i}.dcm")
    (found,) = scan_dicom_folder(tmp_path).series
    for ds in found.datasets:
        assert ds.get_item("PixelData", keep_deferred=True).value is None  # not read yet
    z = [float(ds.ImagePositionPatient[2]) for ds in found.datasets]
    for ds, offset in zip(found.datasets, z):
        expected = (np.arange(size * size, dtype=np.uint16) + int(offset)).reshape(size, size)
        assert np.array_equal(ds.pixel_array, expected)


# CS values are upper case by PS3.5 6.2, yet a single value or lower case occur in exports: both read alike
@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
@pytest.mark.parametrize("value, expected", [("ORIGINAL", ["ORIGINAL"]), (["original", "primary", "axial"],
                                                                            ["ORIGINAL", "PRIMARY", "AXIAL"])])
def test_series_attributes_come_from_its_first_instance(tmp_path, value, expected):
    ds = _slice(generate_uid(), generate_uid(), generate_uid())
    ds.ImageType, ds.SeriesDescription = value, "Abdomen 1.0 B30f"
    _save(ds, tmp_path / "a.dcm")
    (found,) = scan_dicom_folder(tmp_path).series
    assert found.image_type == expected  # one value or several, compared in upper case
    assert (found.modality, found.description, found.sop_class_uid) == ("CT", "Abdomen 1.0 B30f", CT_IMAGE_STORAGE)


STUDY_KEYS = ["PatientID", "PatientName", "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "StudyDescription"]
SERIES_KEYS = ["SeriesNumber", "Modality", "SeriesDescription", "SeriesDate", "SeriesTime", "FrameOfReferenceUID"]
# another valid value for each attribute (by its value representation)
OTHER_VALUES = {"PatientName": "Other^Name", "StudyDate": "20240103", "StudyTime": "111500", "SeriesDate": "20240103",
                "SeriesTime": "111800", "Modality": "MR", "SeriesDescription": "arterial",
                "StudyDescription": "CT thorax", "FrameOfReferenceUID": "1.2.3.5"}


def _headers() -> Dataset:
    ds = _slice("", "", generate_uid())
    ds.StudyDescription, ds.AccessionNumber = "CT abdomen", "A7"
    ds.SeriesDescription, ds.SeriesDate, ds.SeriesTime = "portal venous", "20240102", "101800"
    ds.FrameOfReferenceUID = "1.2.3.4"
    return ds


@pytest.mark.parametrize("keyword", STUDY_KEYS)
def test_a_derived_study_uid_depends_on_each_study_attribute_and_on_nothing_else(keyword):
    from livervessels.dicom.scan import _derive_study_uid

    ds = _headers()
    uid = _derive_study_uid(ds)
    assert uid == _derive_study_uid(_headers()) and UID(uid).is_valid  # the same headers: the same study
    other = _headers()
    setattr(other, keyword, OTHER_VALUES.get(keyword, "99"))
    assert _derive_study_uid(other) != uid, keyword
    series_only = _headers()
    series_only.SeriesNumber, series_only.SeriesDescription = 7, "arterial"
    assert _derive_study_uid(series_only) == uid  # another series of the same study


@pytest.mark.parametrize("keyword", SERIES_KEYS)
def test_a_derived_series_uid_depends_on_each_series_attribute_and_on_its_study(keyword):
    from livervessels.dicom.scan import _derive_series_uid, _derive_study_uid

    study = _derive_study_uid(_headers())
    uid = _derive_series_uid(_headers(), study)
    assert uid == _derive_series_uid(_headers(), study) and uid != study and UID(uid).is_valid
    other = _headers()
    setattr(other, keyword, OTHER_VALUES.get(keyword, "99"))
    assert _derive_series_uid(other, study) != uid, keyword
    assert _derive_series_uid(_headers(), generate_uid()) != uid  # the same series header in another study


@pytest.mark.parametrize("field", ["study_uids_derived", "series_uids_derived", "sop_instance_uids_from_file_meta",
                                   "sop_instance_uids_missing", "sop_class_uids_from_file_meta"])
def test_any_repair_counts_and_the_report_names_each(field):
    from livervessels.dicom.scan import UidRepairs

    assert not UidRepairs().any()
    repairs = UidRepairs(**{field: {"1.2.3": "empty"} if field.endswith("derived") else 1})
    assert repairs.any()
    reported = {"study_uids_derived": "study_instance_uids_derived",
                "series_uids_derived": "series_instance_uids_derived",
                "sop_instance_uids_from_file_meta": "sop_instance_uids_taken_from_file_meta",
                "sop_instance_uids_missing": "sop_instance_uids_missing",
                "sop_class_uids_from_file_meta": "sop_class_uids_taken_from_file_meta"}
    as_dict = repairs.as_dict()
    assert set(as_dict) == set(reported.values())
    assert as_dict[reported[field]] == getattr(repairs, field)
    assert all(not v for k, v in as_dict.items() if k != reported[field])


def _bare(ds: Dataset, path) -> None:
    """Saved without preamble and file meta, as some old exports write instances."""
    ds = ds.copy()
    del ds.file_meta
    ds.save_as(path, enforce_file_format=False, implicit_vr=True, little_endian=True)


@pytest.mark.parametrize("kept, read", [
    (("Modality", "SOPClassUID"), True),  # an image instance's header without pixels
    (("Modality", "PixelData"), True),
    (("Modality",), False),  # a stray dataset: not taken for an image
    (("SOPClassUID", "PixelData"), False),  # no modality: nothing to select it by
])
def test_a_file_without_the_preamble_is_read_only_with_the_attributes_of_an_image(tmp_path, kept, read):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "a.dcm")
    bare = _slice(study, series, generate_uid(), z=2.0)
    for keyword in {"Modality", "SOPClassUID", "PixelData"} - set(kept):
        delattr(bare, keyword)
    _bare(bare, tmp_path / "b.dcm")
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 2 if read else 1}
    assert scan.ignored_files == ([] if read else [(str(tmp_path / "b.dcm"), "not a DICOM file")])


def test_damaged_files_are_ignored_with_the_reason_in_words(tmp_path):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "a.dcm")
    whole = (tmp_path / "a.dcm").read_bytes()
    damaged = bytearray(whole)
    damaged[132:] = b"\xff" * (len(damaged) - 132)  # preamble and "DICM" kept, the rest destroyed
    (tmp_path / "c.dcm").write_bytes(bytes(damaged))
    (tmp_path / "d.dcm").write_bytes(whole[:140])  # cut inside the file meta
    reasons = {p.split("/")[-1]: r for p, r in scan_dicom_folder(tmp_path).ignored_files}
    assert reasons["c.dcm"] == f"{UNREADABLE}: its header is damaged (no SOP class, modality or pixel data could " \
                               "be read)"
    # pydicom's own words for the cut file follow the label
    assert reasons["d.dcm"].startswith(f"{UNREADABLE}: ") and len(reasons["d.dcm"]) > len(UNREADABLE) + 10
    assert "None" not in reasons["d.dcm"]


@pytest.mark.parametrize("keyword", ["SOPClassUID", "Modality", "PixelData"])
def test_a_header_with_any_one_image_attribute_is_not_called_damaged(tmp_path, keyword):
    from livervessels.dicom.scan import _read_header

    ds = _slice(generate_uid(), generate_uid(), generate_uid())
    for other in {"SOPClassUID", "Modality", "PixelData"} - {keyword}:
        delattr(ds, other)
    del ds.file_meta.MediaStorageSOPClassUID  # nor does the file meta say what it is
    ds.preamble = b"\0" * 128
    ds.save_as(tmp_path / "a.dcm", enforce_file_format=False)
    assert (tmp_path / "a.dcm").read_bytes()[128:132] == b"DICM"
    assert keyword in _read_header(tmp_path / "a.dcm")


def test_a_bare_instance_with_empty_uids_gets_derived_ones_with_the_reason(tmp_path):
    ds = _slice("", "", "")
    _bare(ds, tmp_path / "a.dcm")
    scan = scan_dicom_folder(tmp_path)
    (found,) = scan.series
    assert list(scan.repairs.study_uids_derived.values()) == [
        "empty StudyInstanceUID; derived from patient/study attributes"]
    assert list(scan.repairs.series_uids_derived.values()) == [
        "empty SeriesInstanceUID; derived from series attributes"]
    assert scan.repairs.sop_instance_uids_missing == 1 and len(found.derived_sop_uids) == 1


def test_pixel_data_of_a_bare_file_is_left_on_disk_too(tmp_path):
    size = 256
    study, series = generate_uid(), generate_uid()
    for i in range(2):
        _bare(_slice(study, series, generate_uid(), z=2.0 * i, size=size), tmp_path / f"{i}.dcm")
    (found,) = scan_dicom_folder(tmp_path).series
    assert all(ds.get_item("PixelData", keep_deferred=True).value is None for ds in found.datasets)


def test_hidden_files_and_folders_are_not_read(tmp_path):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "a.dcm")
    _save(_slice(study, series, generate_uid(), z=2.0), tmp_path / ".b.dcm")  # e.g. a copy's temporary file
    _save(_slice(study, series, generate_uid(), z=4.0), tmp_path / ".trash" / "c.dcm")
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 1} and scan.ignored_files == []


def test_a_missing_or_empty_folder_is_refused_with_what_to_do(tmp_path):
    from livervessels.errors import InputError

    with pytest.raises(InputError) as raised:
        scan_dicom_folder(tmp_path / "nowhere")
    assert str(raised.value) == (f"input folder {tmp_path / 'nowhere'} does not exist or is not a folder; pass a "
                                 "folder of DICOM files")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as raised:
        scan_dicom_folder(tmp_path / "empty")
    assert str(raised.value) == (f"input folder {tmp_path / 'empty'} is empty; put the DICOM files of one or more "
                                 "studies there")


def test_files_after_a_damaged_or_foreign_one_are_still_read(tmp_path):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "b.dcm")
    (tmp_path / "a.dcm").write_bytes((tmp_path / "b.dcm").read_bytes()[:140])  # sorted first, cut short
    (tmp_path / "aa.txt").write_text("notes")  # then a file that is not DICOM
    _save(_slice(study, series, generate_uid(), z=2.0), tmp_path / "c.dcm")
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 2}
    assert [p.split("/")[-1] for p, _ in scan.ignored_files] == ["a.dcm", "aa.txt"]


def test_a_dicomdir_named_by_its_own_sop_class_is_an_index_not_a_series(tmp_path):
    study, series = generate_uid(), generate_uid()
    _save(_slice(study, series, generate_uid()), tmp_path / "a.dcm")
    index = _slice(study, generate_uid(), generate_uid())
    index.SOPClassUID = MEDIA_STORAGE_DIRECTORY  # in the dataset; its file meta says CT
    index.preamble = b"\0" * 128
    index.save_as(tmp_path / "DIRFILE", enforce_file_format=False)  # as written, the meta not made to agree
    assert pydicom.dcmread(tmp_path / "DIRFILE").file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
    scan = scan_dicom_folder(tmp_path)
    assert _by_uids(scan) == {(study, series): 1}
    assert scan.ignored_files == [(str(tmp_path / "DIRFILE"), "DICOMDIR index")]
