"""livervessels/dicom/volume.py: slices to a volume in patient space.

The geometry is checked against the DICOM standard's own equation (PS3.3 C.7.6.2.1.1): the centre
of the pixel in column i, row j of a slice lies at ImagePositionPatient + i * PixelSpacing[1] *
row direction + j * PixelSpacing[0] * column direction (LPS mm), with the direction cosines from
ImageOrientationPatient. The tiny series (3 slices of 3 x 4 pixels) are written with pydicom in a
shuffled file order, each pixel's value encoding its own column, row and slice, so a transposed,
flipped or misordered axis shows at once.
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from livervessels.dicom.scan import DicomSeries
from livervessels.dicom.volume import MissingSlicesError, build_volume, series_geometry
from livervessels.errors import InputError

ROWS, COLS = 3, 4
ROW_SPACING, COL_SPACING = 0.6, 0.9  # PixelSpacing = [between rows, between columns]
STUDY, SERIES, FRAME = generate_uid(), generate_uid(), generate_uid()


def _hu(k: int) -> np.ndarray:
    """HU of slice k as (rows, columns): every pixel differs, from -1000 (air) up to +400."""
    j, i = np.mgrid[:ROWS, :COLS]
    return (-1000 + 40 * (k * ROWS * COLS + j * COLS + i)).astype(np.float64)


def _slice(ipp, iop, *, stored: np.ndarray, slope=1.0, intercept=-1024.0, acquisition=1, rows=ROWS, cols=COLS,
           spacing=(ROW_SPACING, COL_SPACING)) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY, SERIES, FRAME
    ds.Modality, ds.ImageType, ds.SeriesDescription = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], "tiny"
    ds.AcquisitionNumber, ds.SliceThickness = acquisition, 2.5
    ds.ImagePositionPatient = [float(v) for v in ipp]
    ds.ImageOrientationPatient = [float(v) for v in iop]
    ds.PixelSpacing = list(spacing)
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = np.asarray(stored, np.uint16).tobytes()
    return ds


def _written(tmp_path, datasets: list[Dataset]) -> DicomSeries:
    """The slices saved as files in the given order and read back, as the scan would hand them over."""
    series = DicomSeries(STUDY, SERIES)
    for n, ds in enumerate(datasets):
        path = tmp_path / f"f{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        series.datasets.append(pydicom.dcmread(path))
        series.files.append(path)
    return series


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


# (row direction, column direction, step from slice to slice in mm)
AXIAL = ([1, 0, 0], [0, 1, 0], [0, 0, 2.5])
ORIENTATIONS = {
    "axial": AXIAL,
    "axial_feet_first": ([-1, 0, 0], [0, 1, 0], [0, 0, -2.5]),  # normal along -z: slices run downwards
    "oblique": (_unit([1, 0.3, 0.2]), _unit(np.cross([0.1, 0.2, 1], _unit([1, 0.3, 0.2]))), None),
    "gantry_tilt": ([1, 0, 0], [0, 1, 0], [0, 0.5, 2.5]),  # each slice shifted 0.5 mm along y: sheared
}


def _positions(case: str, start=(-100.0, -120.0, 50.0)) -> tuple[list[float], list[np.ndarray]]:
    row, col, step = ORIENTATIONS[case]
    if step is None:
        step = 2.5 * np.cross(row, col)
    return [*row, *col], [np.asarray(start) + k * np.asarray(step, float) for k in range(3)]


@pytest.mark.parametrize("case", list(ORIENTATIONS))
def test_every_voxel_sits_where_the_dicom_standard_puts_its_pixel(tmp_path, case):
    iop, positions = _positions(case)
    slices = [_slice(positions[k], iop, stored=_hu(k) + 1024) for k in range(3)]
    series = _written(tmp_path, [slices[2], slices[0], slices[1]])  # files out of order
    sorted_datasets, affine_lps, _ = series_geometry(series.datasets)
    result = build_volume(series)
    volume = result.volume
    assert volume.shape == (COLS, ROWS, 3)  # indexed [column, row, slice]
    assert np.allclose(volume.affine, np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_lps)  # LPS -> RAS flips x and y
    row_dir, col_dir = np.asarray(iop[:3]), np.asarray(iop[3:])
    for k, ds in enumerate(result.sorted_datasets):
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
        original_k = [str(s.SOPInstanceUID) for s in slices].index(str(ds.SOPInstanceUID))
        hu = _hu(original_k)
        for i in range(COLS):
            for j in range(ROWS):
                lps = ipp + i * COL_SPACING * row_dir + j * ROW_SPACING * col_dir
                assert np.allclose((affine_lps @ [i, j, k, 1])[:3], lps, atol=1e-6), (case, i, j, k)
                assert volume.array[i, j, k] == hu[j, i]
    # slice k of the volume is sorted_datasets[k], and they run along the slice normal
    normal = np.cross(row_dir, col_dir)
    along = [float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])) for ds in result.sorted_datasets]
    assert along == sorted(along)
    assert [str(ds.SOPInstanceUID) for ds in sorted_datasets] == volume.meta["sop_instance_uids"]
    assert [str(ds.SOPInstanceUID) for ds in result.sorted_datasets] == volume.meta["sop_instance_uids"]


def test_one_voxel_worked_out_by_hand():
    # axial, first slice at (-100, -120, 50) LPS, slices 2.5 mm apart; voxel (column 3, row 2, slice 2):
    # x = -100 + 3 * 0.9 = -97.3, y = -120 + 2 * 0.6 = -118.8, z = 50 + 2 * 2.5 = 55 (LPS),
    # which is (97.3, 118.8, 55) in RAS
    iop, positions = _positions("axial")
    series = DicomSeries(STUDY, SERIES, [_slice(positions[k], iop, stored=_hu(k) + 1024) for k in (1, 2, 0)])
    volume = build_volume(series).volume
    assert np.allclose((volume.affine @ [3, 2, 2, 1])[:3], [97.3, 118.8, 55.0])
    assert volume.spacing == pytest.approx((0.9, 0.6, 2.5))
    assert volume.meta["frame_of_reference_uid"] == FRAME and volume.meta["slice_thickness_mm"] == 2.5
    assert (volume.meta["study_instance_uid"], volume.meta["series_instance_uid"]) == (STUDY, SERIES)


def test_each_slice_is_rescaled_with_its_own_slope_and_intercept():
    # RescaleSlope / RescaleIntercept belong to each instance (PS3.3 C.11.1.1.2): slices may differ
    iop, positions = _positions("axial")
    rescale = [(1.0, -1024.0), (2.0, -2048.0), (0.5, -1000.0)]
    slices = [_slice(positions[k], iop, stored=(_hu(k) - b) / m, slope=m, intercept=b)
              for k, (m, b) in enumerate(rescale)]
    volume = build_volume(DicomSeries(STUDY, SERIES, slices), unreadable_files=[("x/other.dcm", "damaged")]).volume
    for k in range(3):
        assert np.array_equal(volume.array[:, :, k], _hu(k).T)
    assert volume.array.dtype == np.int16  # whole HU: stored compactly


def test_fractional_hounsfield_units_are_kept():
    iop, positions = _positions("axial")
    stored = [_hu(k) + 1025 for k in range(3)]  # odd stored values, halved: x.5 HU
    slices = [_slice(positions[k], iop, stored=stored[k], slope=0.5, intercept=-1000.0) for k in range(3)]
    volume = build_volume(DicomSeries(STUDY, SERIES, slices)).volume
    assert volume.array.dtype == np.float32
    for k in range(3):
        assert np.array_equal(volume.array[:, :, k], (0.5 * stored[k] - 1000.0).T)
        assert np.all(np.mod(volume.array[:, :, k], 1) == 0.5)


@pytest.mark.parametrize("later_first", [False, True])
def test_of_two_slices_at_one_position_the_later_acquisition_is_kept(later_first):
    iop, positions = _positions("axial")
    slices = [_slice(positions[k], iop, stored=_hu(k) + 1024) for k in range(3)]
    second = _slice(positions[1], iop, stored=_hu(1) + 1024 + 7, acquisition=2)  # a repeat of slice 1
    order = [slices[0], second, slices[1], slices[2]] if later_first else [slices[0], slices[1], second, slices[2]]
    result = build_volume(DicomSeries(STUDY, SERIES, order))
    assert [str(ds.SOPInstanceUID) for ds in result.sorted_datasets] == \
        [str(slices[0].SOPInstanceUID), str(second.SOPInstanceUID), str(slices[2].SOPInstanceUID)]
    assert np.array_equal(result.volume.array[:, :, 1], (_hu(1) + 7).T)
    assert any("1 slice(s) at an already occupied position dropped" in w
               for w in result.volume.meta["input_warnings"])


def _modified(change: str) -> list[Dataset]:
    iop, positions = _positions("axial")
    slices = [_slice(positions[k], iop, stored=_hu(k) + 1024) for k in range(3)]
    if change == "size":
        slices[1] = _slice(positions[1], iop, stored=np.zeros((ROWS, COLS + 1)), cols=COLS + 1)
    elif change == "orientation":
        slices[1].ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    elif change == "spacing":
        slices[1].PixelSpacing = [0.6, 0.8]
    elif change == "position":
        del slices[1].ImagePositionPatient
    elif change == "same_position":
        slices = [slices[0], _slice(positions[0], iop, stored=_hu(0) + 1024)]
    elif change == "missing_slice":
        slices.append(_slice(positions[0] + [0, 0, 10.0], iop, stored=_hu(0) + 1024))  # 5, 7.5 mm missing
    return slices


@pytest.mark.parametrize("change, message", [
    ("size", "differ in size"),
    ("orientation", "differ in orientation"),
    ("spacing", "differ in pixel spacing"),
    ("position", "no valid ImagePositionPatient"),
    ("same_position", "single distinct slice position"),
])
def test_slices_that_do_not_form_one_volume_are_refused(change, message):
    with pytest.raises(InputError, match=message):
        series_geometry(_modified(change))


def test_missing_slices_are_their_own_error_type_and_count_the_slices():
    with pytest.raises(MissingSlicesError, match=r"gap between slice positions 55.00 and 60.00 mm .*: 1 slice"):
        series_geometry(_modified("missing_slice"))


def _axial(n: int = 3, step: float = 2.5, **kw) -> list[Dataset]:
    iop, _ = _positions("axial")
    return [_slice([-100.0, -120.0, 50.0 + k * step], iop, stored=_hu(k % 3) + 1024, **kw) for k in range(n)]


def _refusal(slices: list[Dataset]) -> str:
    with pytest.raises(InputError) as raised:
        series_geometry(slices)
    return str(raised.value)


# The whole line a user reads: what is wrong and what to do (the tests above match fragments).
def test_each_refusal_says_what_is_wrong_and_what_to_do():
    one = _axial(1)
    assert _refusal(one) == "the selected series has a single slice; a 3D CT series with many slices is needed"
    no_iop = _axial()
    del no_iop[0].ImageOrientationPatient
    assert _refusal(no_iop) == (f"instance {no_iop[0].SOPInstanceUID} has no valid ImageOrientationPatient; the "
                                "series cannot be placed in space")
    short_spacing = _axial()
    short_spacing[0].PixelSpacing = [0.6]
    assert _refusal(short_spacing) == (f"instance {short_spacing[0].SOPInstanceUID} has no valid PixelSpacing; the "
                                       "series cannot be placed in space")
    later_iop = _axial()
    later_iop[2].ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0]
    assert _refusal(later_iop) == (f"instance {later_iop[2].SOPInstanceUID} has no valid ImageOrientationPatient; "
                                   "the series cannot be placed in space")
    later_spacing = _axial()
    del later_spacing[1].PixelSpacing
    assert _refusal(later_spacing) == (f"instance {later_spacing[1].SOPInstanceUID} has no valid PixelSpacing; the "
                                       "series cannot be placed in space")
    for change, line in [("size", "differ in size"), ("orientation", "differ in orientation"),
                         ("spacing", "differ in pixel spacing")]:
        assert _refusal(_modified(change)) == f"slices of the selected series {line}; re-export the series unchanged"
    assert _refusal(_modified("same_position")) == ("the selected series has a single distinct slice position; a 3D "
                                                    "CT series is needed")


def test_slices_a_whole_stack_apart_and_uneven_steps_are_refused_with_the_positions():
    stacks = _axial(4)
    for ds in stacks[2:]:
        ds.ImagePositionPatient = [-100.0, -120.0, float(ds.ImagePositionPatient[2]) + 400.0]
    assert _refusal(stacks) == ("the selected series holds separate stacks of slices, 402 mm apart (between positions "
                                "52.50 and 455.00 mm); export or select one stack as its own series")
    uneven = _axial(4)
    uneven[3].ImagePositionPatient = [-100.0, -120.0, 58.6]  # steps 2.5, 2.5, 3.6: not whole slices missing
    assert _refusal(uneven) == ("the selected series has irregular slice spacing (2.50 to 3.60 mm); re-export it "
                                "with uniform spacing")
    slightly = _axial(4)
    slightly[3].ImagePositionPatient = [-100.0, -120.0, 57.6]  # 2.5, 2.5, 2.6: a 4 % spread is still regular
    assert len(series_geometry(slightly)[0]) == 4


def test_two_missing_slices_in_two_gaps_are_counted_and_the_first_gap_named():
    slices = _axial(10)
    del slices[5], slices[2]  # positions 55 and 62.5 mm gone
    with pytest.raises(MissingSlicesError) as raised:
        series_geometry(slices)
    assert str(raised.value) == ("the selected series has a gap between slice positions 52.50 and 57.50 mm (usual "
                                 "spacing 2.50 mm): 2 slice(s) missing; re-send the complete series")


def test_orientation_and_spacing_are_compared_to_a_hundredth_of_a_micron_in_cosine_and_mm():
    close = _axial()
    close[1].ImageOrientationPatient = [1.0, 0.00005, 0.0, 0.0, 1.0, 0.0]  # rounding in the header: the same
    close[2].PixelSpacing = [0.60005, 0.9]
    assert len(series_geometry(close)[0]) == 3
    off = _axial()
    off[1].ImageOrientationPatient = [1.0, 0.001, 0.0, 0.0, 1.0, 0.0]
    assert "differ in orientation" in _refusal(off)
    off = _axial()
    off[2].PixelSpacing = [0.601, 0.9]
    assert "differ in pixel spacing" in _refusal(off)


def test_slices_a_millimetre_apart_are_not_duplicates_and_unnumbered_duplicates_keep_the_first():
    fine = _axial(3, step=1.0)
    datasets, affine, warnings = series_geometry(fine)
    assert len(datasets) == 3 and warnings == [] and np.allclose(affine[:3, 2], [0, 0, 1.0])
    a, b, c = _axial(3)
    twin = _slice([-100.0, -120.0, 52.5], [1, 0, 0, 0, 1, 0], stored=_hu(1) + 1024)
    for ds in (a, b, c, twin):
        del ds.AcquisitionNumber  # no acquisition numbers: the first of the two in the series is kept
    datasets, _, warnings = series_geometry([a, b, twin, c])
    assert [str(ds.SOPInstanceUID) for ds in datasets] == [str(a.SOPInstanceUID), str(b.SOPInstanceUID),
                                                          str(c.SOPInstanceUID)]
    assert warnings == ["1 slice(s) at an already occupied position dropped (several acquisitions in one series; "
                        "the later acquisition kept)"]


def test_a_tilt_is_reported_in_degrees_and_an_untilted_series_says_nothing():
    _, _, warnings = series_geometry(_axial())
    assert warnings == []
    iop, positions = _positions("gantry_tilt")
    _, _, warnings = series_geometry([_slice(p, iop, stored=_hu(k) + 1024) for k, p in enumerate(positions)])
    # each slice 0.5 mm sideways per 2.5 mm: atan(0.2) = 11.3 degrees
    assert warnings == ["gantry tilt of 11.3 degrees (slices shifted sideways along the series); the volume is "
                        "sheared, not resampled: check the segmentation, or reconstruct without tilt"]


def test_without_rescale_attributes_the_stored_values_are_the_hounsfield_units():
    slices = _axial()
    for k, ds in enumerate(slices):
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.PixelRepresentation = 1  # signed: stored values are HU already (-1000 .. +400)
        ds.PixelData = np.asarray(_hu(k), np.int16).tobytes()
    volume = build_volume(DicomSeries(STUDY, SERIES, slices)).volume
    for k in range(3):
        assert np.array_equal(volume.array[:, :, k], _hu(k).T)


def test_the_volume_records_its_source_for_the_reports():
    slices = _axial()
    for ds in slices:
        ds.SeriesDescription = "Abdomen 2.5 mm"
    meta = build_volume(DicomSeries(STUDY, SERIES, slices)).volume.meta
    assert meta["series_description"] == "Abdomen 2.5 mm" and meta["modality"] == "CT"
    assert meta["transfer_syntax_uid"] == ExplicitVRLittleEndian
    assert meta["input_warnings"] == []
    del slices[0].SliceThickness
    assert build_volume(DicomSeries(STUDY, SERIES, slices)).volume.meta["slice_thickness_mm"] is None


def test_whole_hounsfield_units_beyond_int16_stay_float():
    slices = _axial()
    stored = _hu(1) + 1024
    stored[0, 0] = 65000  # one pixel at 63976 HU (metal on an extended scale): beyond int16
    slices[1].PixelData = np.asarray(stored, np.uint16).tobytes()
    volume = build_volume(DicomSeries(STUDY, SERIES, slices)).volume
    assert volume.array.dtype == np.float32 and volume.array.max() == 63976


def test_a_gap_with_damaged_files_beside_names_them_as_the_likely_cause():
    slices = _axial(8)
    del slices[2]
    series = DicomSeries(STUDY, SERIES, slices)
    with pytest.raises(InputError) as raised:
        build_volume(series, unreadable_files=[("in/c.dcm", "header damaged"), ("in/d.dcm", "truncated"),
                                               ("in/e.dcm", "truncated")])
    assert str(raised.value).startswith("in/c.dcm and 2 more could not be read (header damaged) and is probably what "
                                        "is missing: the selected series has a gap between slice positions")
    with pytest.raises(InputError) as raised:
        build_volume(series, unreadable_files=[("in/c.dcm", "header damaged")])
    assert str(raised.value).startswith("in/c.dcm could not be read (header damaged) and is probably what is missing")
    with pytest.raises(MissingSlicesError):
        build_volume(series)


def _undecodable(tmp_path, error: Exception, syntax=None, truncate: int = 0):
    """A written series whose second slice fails to decode with `error` (or is cut short)."""
    series = _written(tmp_path, _axial())
    bad = series.datasets[1]
    if syntax is not None:  # as read from a compressed file (the decoder's failure is simulated)
        bad.file_meta.TransferSyntaxUID = syntax
    if truncate:
        bad.PixelData = bad.PixelData[:-truncate]
    return series, bad


@pytest.mark.parametrize("case", ["truncated", "uncompressed_other", "no_decoder", "damaged", "no_file"])
def test_a_slice_that_cannot_be_decoded_is_named_with_the_reason_and_what_to_do(tmp_path, monkeypatch, case):
    import pydicom.dataset

    jpeg2000 = "1.2.840.10008.1.2.4.90"
    series, bad = {
        "truncated": lambda: _undecodable(tmp_path, None, truncate=6),
        "uncompressed_other": lambda: _undecodable(tmp_path, None),
        "no_decoder": lambda: _undecodable(tmp_path, None, syntax=jpeg2000),
        "damaged": lambda: _undecodable(tmp_path, None, syntax=jpeg2000),
        "no_file": lambda: _undecodable(tmp_path, None),
    }[case]()
    reason = {"no_decoder": "Unable to decode: no pixel data handler available",
              "damaged": "Error -3 while decompressing"}.get(case, "bad value")
    real = pydicom.dataset.Dataset.pixel_array

    def pixel_array(ds):
        if ds is bad and case != "truncated":
            raise ValueError(reason)
        return real.fget(ds)

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(pixel_array))
    if case == "no_file":
        bad.filename = None
    with pytest.raises(InputError) as raised:
        build_volume(series)
    message = str(raised.value)
    name = f"instance {bad.SOPInstanceUID}" if case == "no_file" else bad.filename
    expected = {
        "truncated": f"slice {name} is truncated: its pixel data holds 18 of 24 bytes; re-send the file",
        "uncompressed_other": f"cannot read the pixel data of slice {name} (bad value); re-send the file",
        "no_file": f"cannot read the pixel data of slice {name} (bad value); re-send the file",
        "no_decoder": (f"slice {name} is compressed ({jpeg2000}) and no installed decoder reads it ({reason}); "
                       "install the pylibjpeg decoders or send an uncompressed copy"),
        "damaged": f"slice {name} ({jpeg2000}) cannot be decoded, the compressed data looks damaged ({reason}); "
                   "re-send the file",
    }[case]
    assert message == expected


@pytest.mark.parametrize("reason", ["Unable to decode: no pixel data handler available",
                                    "the 'pylibjpeg-openjpeg' plugin is required", "no decoder for this syntax",
                                    "missing required dependencies"])
def test_each_way_a_library_says_it_lacks_a_decoder_asks_for_one(tmp_path, monkeypatch, reason):
    import pydicom.dataset

    series, bad = _undecodable(tmp_path, None, syntax="1.2.840.10008.1.2.4.90")
    real = pydicom.dataset.Dataset.pixel_array

    def pixel_array(ds):
        if ds is bad:
            raise RuntimeError(reason)
        return real.fget(ds)

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(pixel_array))
    with pytest.raises(InputError, match="no installed decoder reads it .*install the pylibjpeg decoders"):
        build_volume(series)


def test_a_slice_without_file_meta_uid_or_samples_per_pixel_is_still_named_and_measured(monkeypatch):
    import pydicom.dataset

    slices = _axial()
    bad = slices[1]
    del bad.file_meta, bad.SOPInstanceUID, bad.SamplesPerPixel
    bad.PixelData = bad.PixelData[:-4]
    real = pydicom.dataset.Dataset.pixel_array
    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array",
                        property(lambda ds: (_ for _ in ()).throw(ValueError("short")) if ds is bad else real.fget(ds)))
    with pytest.raises(InputError) as raised:
        build_volume(DicomSeries(STUDY, SERIES, slices))
    # no file meta: read as uncompressed; no SamplesPerPixel: one sample (grey CT); no UID: "?"
    assert str(raised.value) == "slice instance ? is truncated: its pixel data holds 20 of 24 bytes; re-send the file"


def test_an_empty_rescale_slope_or_intercept_counts_as_absent():
    slices = _axial()
    for k, ds in enumerate(slices):
        ds.RescaleSlope, ds.RescaleIntercept = "", ""
        ds.PixelRepresentation = 1
        ds.PixelData = np.asarray(_hu(k), np.int16).tobytes()
    volume = build_volume(DicomSeries(STUDY, SERIES, slices)).volume
    assert np.array_equal(volume.array[:, :, 2], _hu(2).T)
