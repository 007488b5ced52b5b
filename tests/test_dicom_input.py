"""Reading DICOM folders: grouping, UID repair, series selection, volume geometry, bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest

from livervessels.dicom.scan import scan_dicom_folder
from livervessels.dicom.selection import select_ct_series
from livervessels.errors import InputError
from livervessels.geometry import to_canonical
from livervessels.study import load_ct_study
from livervessels.synthetic.write_series import JPEG2000Lossless


def _same_world_image(a, a_affine, b, b_affine):
    ca, caff, _ = to_canonical(a, a_affine)
    cb, cbff, _ = to_canonical(b, b_affine)
    return ca.shape == cb.shape and np.allclose(caff, cbff, atol=1e-3) and np.array_equal(ca, cb)


def test_selection_prefers_thinnest_slices_then_most_instances(tmp_path, small_phantom, write_series):
    ct, aff = small_phantom.ct, small_phantom.affine
    write_series(ct, aff, "thick", series_description="thick", series_number=2, slice_thickness=5.0)
    write_series(ct[:, :, :20], aff, "thin_few", series_description="thin few", series_number=3, slice_thickness=1.0)
    write_series(ct, aff, "thin_many", series_description="thin many", series_number=4, slice_thickness=1.0)
    selection = select_ct_series(scan_dicom_folder(tmp_path / "in"))
    assert selection.selected.description == "thin many"
    assert sorted(v.reason for v in selection.verdicts).count("selected") == 1


@pytest.mark.parametrize("kind", ["localizer", "derived", "secondary_capture", "mr", "single_slice"])
def test_non_volume_series_are_not_selected(tmp_path, small_phantom, write_series, kind):
    ct, aff = small_phantom.ct, small_phantom.affine
    write_series(ct, aff, "ct", series_description="the CT", series_number=2)
    other = {
        "localizer": dict(image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
        "derived": dict(image_type=("DERIVED", "SECONDARY", "AXIAL")),
        "secondary_capture": dict(sop_class="1.2.840.10008.5.1.4.1.1.7"),
        "mr": dict(modality="MR"),
        "single_slice": dict(),
    }[kind]
    array = ct[:, :, :1] if kind == "single_slice" else ct
    # thinner stated slices would win the ranking if the rules let this series through
    write_series(array, aff, kind, series_description=kind, series_number=5, slice_thickness=0.5, **other)
    selection = select_ct_series(scan_dicom_folder(tmp_path / "in"))
    assert selection.selected.description == "the CT"
    rejected = [v for v in selection.verdicts if v.series.description == kind]
    assert len(rejected) == 1 and not rejected[0].accepted


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="is empty"):
        scan_dicom_folder(tmp_path / "empty")


def test_mr_only_study_is_a_clear_error(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine, modality="MR")
    with pytest.raises(InputError, match="no usable CT series.*modality MR"):
        load_ct_study(folder)


def test_single_slice_is_a_clear_error(small_phantom, write_series):
    folder = write_series(small_phantom.ct[:, :, 10:11], small_phantom.affine)
    with pytest.raises(InputError, match="single slice"):
        load_ct_study(folder)


def test_missing_slice_in_the_middle_is_a_clear_error(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine)
    (folder / "IM0017.dcm").unlink()
    with pytest.raises(InputError, match="gap between slice positions.*1 slice\\(s\\) missing"):
        load_ct_study(folder)


def _shift_positions(folder, shift) -> None:
    """Move each slice's ImagePositionPatient by shift(k, position) (k: slice order in the series)."""
    import pydicom

    files = sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [float(v) for v in shift(k, np.array([float(x) for x in ds.ImagePositionPatient]))]
        ds.save_as(f)


@pytest.mark.parametrize("shift,message", [
    # a second stack 400 mm further: not "1 slice missing"
    (lambda k, p: p + [0, 0, 400.0 if k >= 20 else 0.0], "separate stacks of slices, 404 mm apart"),
    # alternating 1.5 / 3.5 mm steps: irregular, not missing slices
    (lambda k, p: [p[0], p[1], (k // 2) * 5.0 + (k % 2) * 1.5], "irregular slice spacing"),
])
def test_gaps_are_told_apart_from_missing_slices(small_phantom, write_series, shift, message):
    folder = write_series(small_phantom.ct, small_phantom.affine)
    _shift_positions(folder, shift)
    with pytest.raises(InputError, match=message):
        load_ct_study(folder)


def test_gantry_tilt_and_dropped_duplicates_are_qc_warnings(small_phantom, write_series):
    import pydicom

    folder = write_series(small_phantom.ct, small_phantom.affine)
    _shift_positions(folder, lambda k, p: p + [0, np.tan(np.radians(10)) * 4.0 * k, 0])  # 10 degrees over 4 mm slices
    study = load_ct_study(folder)
    assert any("gantry tilt of 10.0 degrees" in w for w in study.input_report()["selected_series"]["input_warnings"])

    folder = write_series(small_phantom.ct, small_phantom.affine, subdir="dup")
    twin = pydicom.dcmread(folder / "IM0017.dcm")
    twin.SOPInstanceUID = pydicom.uid.generate_uid()
    twin.AcquisitionNumber = 2
    twin.save_as(folder / "IM0017b.dcm")
    study = load_ct_study(folder)
    assert study.volume.shape[2] == small_phantom.ct.shape[2]
    assert any("1 slice(s) at an already occupied position dropped" in w
               for w in study.input_report()["selected_series"]["input_warnings"])


def test_non_dicom_files_are_ignored_and_reported(small_phantom, write_series, caplog):
    folder = write_series(small_phantom.ct, small_phantom.affine)
    (folder / "notes.txt").write_text("not an image")
    (folder / "scan.bin").write_bytes(b"\x00\x01binary" * 40)
    with caplog.at_level("WARNING"):
        study = load_ct_study(folder.parent)
    ignored = {p.split("/")[-1] for p, _ in study.scan.ignored_files}
    assert ignored == {"notes.txt", "scan.bin"}
    assert "ignored" in caplog.text and "notes.txt" in caplog.text
    assert study.volume.shape == small_phantom.ct.shape


@pytest.mark.parametrize("case", ["ascending", "descending", "flipped_inplane", "non_square", "jpeg2000", "shuffled"])
def test_volume_geometry_matches_the_written_series(tmp_path, small_phantom, write_series, case):
    ct = small_phantom.ct[:64, :72, :12]
    aff = small_phantom.affine.copy()
    kw = {}
    if case == "descending":
        aff[:3, 2] *= -1
    elif case == "flipped_inplane":
        aff[:3, 0] *= -1
        aff[:3, 1] *= -1
    elif case == "non_square":
        aff[:3, 0] *= 0.6
    elif case == "jpeg2000":
        kw["transfer_syntax"] = JPEG2000Lossless
    folder = write_series(ct, aff, **kw)
    if case == "shuffled":
        files = sorted(folder.iterdir())
        order = np.random.default_rng(0).permutation(len(files))
        for i, f in enumerate(files):
            f.rename(folder / f"x{order[i]:03d}")
    volume = load_ct_study(folder).volume
    assert _same_world_image(ct, aff, volume.array, volume.affine)
    if case == "jpeg2000":
        assert volume.meta["transfer_syntax_uid"] == JPEG2000Lossless


def test_real_study_with_empty_uids_is_loaded_with_stable_repairs(real_data, tmp_path):
    folder = real_data / "ct_dicom"
    first = load_ct_study(folder)
    second = load_ct_study(folder)
    repairs = first.scan.repairs
    assert len(repairs.study_uids_derived) == 1 and len(repairs.series_uids_derived) == 1
    assert repairs.sop_instance_uids_from_file_meta == 20
    assert first.volume.meta["series_instance_uid"] == second.volume.meta["series_instance_uid"]
    meta_uids = {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID)
                 for f in folder.iterdir()}
    assert set(first.volume.meta["sop_instance_uids"]) == meta_uids
    assert first.volume.shape == (512, 512, 20)
    assert first.volume.meta["transfer_syntax_uid"] == "1.2.840.10008.1.2.4.90"
    # the reference label map TotalSegmentator wrote is on the same grid (up to axis flips)
    import nibabel as nib

    ref = nib.load(real_data / "reference_total_multilabel.nii.gz")
    _, ref_affine, _ = to_canonical(np.zeros(ref.shape), ref.affine)
    _, our_affine, _ = to_canonical(np.zeros(first.volume.shape), first.volume.affine)
    assert np.allclose(ref_affine, our_affine, atol=1e-3)


def test_copied_study_keeps_uids(real_data, tmp_path):
    """A copy elsewhere gives the same derived UIDs: they come from the data, not the path."""
    copy = tmp_path / "copy"
    shutil.copytree(real_data / "ct_dicom", copy)
    assert load_ct_study(copy).volume.meta["study_instance_uid"] == \
        load_ct_study(real_data / "ct_dicom").volume.meta["study_instance_uid"]


def test_a_truncated_slice_is_named_as_truncated(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine)
    data = (folder / "IM0017.dcm").read_bytes()
    (folder / "IM0017.dcm").write_bytes(data[: len(data) - 4000])
    with pytest.raises(InputError, match=r"slice .*IM0017.dcm is truncated: its pixel data holds \d+ of \d+ bytes"):
        load_ct_study(folder)


def test_stored_values_become_hounsfield_units_through_slope_and_intercept(small_phantom, write_series):
    # Stored values as many scanners write them: HU = 2 * stored - 1024. Air is -1000 HU and water 0
    # by the definition of the Hounsfield scale; the reader must give exactly those.
    stored = np.full(small_phantom.ct.shape, 512.0)  # water
    stored[:10] = 12.0  # air
    stored[40:50, 40:50, :] = 542.0  # 60 HU: liver parenchyma
    folder = write_series(stored, small_phantom.affine, "rescaled")
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = "2", "-1024"
        ds.save_as(path)
    volume = load_ct_study(folder).volume
    hu = to_canonical(volume.array, volume.affine)[0]
    expected = to_canonical(2.0 * stored - 1024.0, small_phantom.affine)[0]
    assert np.array_equal(hu, expected)
    assert set(np.unique(hu)) == {-1000.0, 0.0, 60.0}
