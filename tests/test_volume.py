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
