"""Corrupt pixel data a decoder accepts (livervessels/dicom/pixel_checks.py)."""
from __future__ import annotations

import glob

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_fragmented_frames

from livervessels.dicom.pixel_checks import (
    jpeg2000_frame_problem,
    neighbour_disagreement,
    pixel_warnings,
    suspect_slices,
)
from livervessels.study import load_ct_study
from livervessels.synthetic.write_series import JPEG2000Lossless


def _frame(ds) -> bytes:
    return b"".join(next(generate_fragmented_frames(ds.PixelData)))


def test_a_slice_with_a_block_of_wrong_values_is_named_and_clean_series_are_not(small_phantom, write_series):
    clean = write_series(small_phantom.ct, small_phantom.affine, "clean")
    assert not [w for w in load_ct_study(clean).volume.meta["input_warnings"] if "neighbouring" in w]
    ct = small_phantom.ct.copy()
    ct[20:60, 20:60, 17] = np.random.default_rng(0).uniform(-1000, 2000, (40, 40))  # 17 % of the slice
    folder = write_series(ct, small_phantom.affine, "corrupt")
    warnings = [w for w in load_ct_study(folder).volume.meta["input_warnings"] if "neighbouring" in w]
    assert len(warnings) == 1 and "IM0018.dcm" in warnings[0], warnings


def test_neighbour_check_names_the_worst_slice_not_its_neighbours():
    volume = np.tile(np.linspace(-100, 100, 64, dtype=np.float32)[:, None, None], (1, 64, 12))
    volume[:, :, 6] += 1500  # a whole slice off by 1500 HU (a wrong rescale or bit depth)
    assert [k for k, _, _ in suspect_slices(volume)] == [6]
    assert suspect_slices(volume[:, :, :4]) == []  # too few slices to judge


def test_jpeg2000_frame_of_another_size_or_without_end_marker_is_reported(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine, "j2k", transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    assert jpeg2000_frame_problem(ds) is None
    wrong_size = pydicom.dcmread(folder / "IM0005.dcm")
    wrong_size.Columns = int(ds.Columns) + 8
    assert "frame is 96 x 96 pixels but the header says 104 x 96" in jpeg2000_frame_problem(wrong_size)
    cut = pydicom.dcmread(folder / "IM0005.dcm")
    cut.PixelData = encapsulate([_frame(ds)[:-2] + b"\x00\x00"])
    assert "end-of-codestream marker" in jpeg2000_frame_problem(cut)
    plain = write_series(small_phantom.ct, small_phantom.affine, "plain")
    assert jpeg2000_frame_problem(pydicom.dcmread(plain / "IM0005.dcm")) is None  # not JPEG 2000: not judged


def test_the_real_example_ct_has_no_suspect_slice(real_data):
    datasets = sorted((pydicom.dcmread(f) for f in glob.glob(str(real_data / "ct_dicom" / "*"))),
                      key=lambda d: float(d.ImagePositionPatient[2]))
    assert all(jpeg2000_frame_problem(d) is None for d in datasets)
    volume = np.stack([d.pixel_array.astype(np.float32) for d in datasets], axis=-1)
    assert suspect_slices(volume) == []
    volume[100:200, 100:200, 10] = np.random.default_rng(1).uniform(-1000, 2000, (100, 100))
    assert [k for k, _, _ in suspect_slices(volume)] == [10]


def test_corrupt_slices_next_to_the_ends_and_short_series_are_found():
    base = np.tile(np.linspace(-100, 100, 64, dtype=np.float32)[:, None, None], (1, 64, 5))
    for k in (1, 3):  # the first and the last slice with two neighbours, in the shortest series judged
        volume = base.copy()
        volume[:20, :32, k] += 400  # a block 400 HU off: its neighbours see half of it, under 300 HU
        assert [s for s, _, _ in suspect_slices(volume)] == [k]


def test_frame_problems_reach_the_warnings_naming_the_file_or_instance(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine, "j2k", transfer_syntax=JPEG2000Lossless)
    cut = pydicom.dcmread(folder / "IM0005.dcm")
    cut.PixelData = encapsulate([_frame(cut)[:-2] + b"\x00\x00"])
    warnings = pixel_warnings(small_phantom.ct[:, :, :1], [cut])
    assert len(warnings) == 1 and "IM0005.dcm" in warnings[0] and "end-of-codestream" in warnings[0]
    cut.filename = None  # a dataset received over the network has no file
    assert str(cut.SOPInstanceUID) in pixel_warnings(small_phantom.ct[:, :, :1], [cut])[0]


def test_jpeg2000_image_offsets_and_multiframe_data(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine, "j2k", transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    frame = bytearray(_frame(ds))
    # SIZ with an image offset: Xsiz - XOsiz and Ysiz - YOsiz are the frame size (ISO 15444-1 A.5.1)
    for size_at, offset_at, offset in ((8, 16, 8), (12, 20, 4)):
        frame[size_at:size_at + 4] = (int.from_bytes(frame[size_at:size_at + 4], "big") + offset).to_bytes(4, "big")
        frame[offset_at:offset_at + 4] = offset.to_bytes(4, "big")
    ds.PixelData = encapsulate([bytes(frame)])
    assert jpeg2000_frame_problem(ds) is None
    multiframe = pydicom.dcmread(folder / "IM0005.dcm")
    multiframe.NumberOfFrames = 2
    multiframe.PixelData = encapsulate([b"\xff\x4f\xff\x51broken", b"\xff\x4f\xff\x51broken"])
    assert jpeg2000_frame_problem(multiframe) is None  # several frames: left to the decoder


def test_a_non_square_frame_is_reported_columns_by_rows(small_phantom, write_series):
    folder = write_series(small_phantom.ct[:, :80], small_phantom.affine, "narrow", transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    assert (int(ds.Columns), int(ds.Rows)) != (int(ds.Rows), int(ds.Columns))
    assert jpeg2000_frame_problem(ds) is None
    ds.Rows = int(ds.Rows) + 4
    assert jpeg2000_frame_problem(ds) == (f"its JPEG 2000 frame is {ds.Columns} x {int(ds.Rows) - 4} pixels "
                                          f"but the header says {ds.Columns} x {ds.Rows}")


def test_a_codestream_split_into_fragments_and_other_wrappings(small_phantom, write_series):
    folder = write_series(small_phantom.ct, small_phantom.affine, "j2k", transfer_syntax=JPEG2000Lossless)
    ds = pydicom.dcmread(folder / "IM0005.dcm")
    frame = _frame(ds)
    ds.PixelData = encapsulate([frame], fragments_per_frame=3)  # one frame in three fragments: joined as is
    assert jpeg2000_frame_problem(ds) is None
    cut = pydicom.dcmread(folder / "IM0005.dcm")
    cut.PixelData = encapsulate([frame[:-2] + b"\x00\x00"])
    assert jpeg2000_frame_problem(cut) == ("its JPEG 2000 codestream does not end with an end-of-codestream "
                                           "marker (damaged or cut)")
    boxed = pydicom.dcmread(folder / "IM0005.dcm")  # SOC without SIZ after it: not a bare codestream
    boxed.PixelData = encapsulate([frame[:2] + b"\x00\x00" + frame[4:-2]])
    assert jpeg2000_frame_problem(boxed) is None
    no_syntax = pydicom.dcmread(folder / "IM0005.dcm")
    del no_syntax.file_meta.TransferSyntaxUID
    assert jpeg2000_frame_problem(no_syntax) is None
    in_memory = pydicom.Dataset()  # received over the network: no file meta at all
    in_memory.update(no_syntax)
    assert jpeg2000_frame_problem(in_memory) is None


def test_the_disagreement_is_measured_on_interior_slices_only_and_above_300_hu():
    ends = np.zeros((16, 16, 5), np.float32)
    ends[:, :, 0], ends[:, :, -1] = -1000, 1000  # the first and last slices have one neighbour: not judged
    share, mean_abs = neighbour_disagreement(ends)
    assert share[0] == share[-1] == 0 and mean_abs[0] == mean_abs[-1] == 0 and share[1] == 1.0
    for offset, expected in ((300, 0.0), (301, 1.0)):  # "more than 300 HU" from the neighbours' mean
        volume = np.zeros((16, 16, 5), np.float32)
        volume[:, :, 2] = offset
        share, mean_abs = neighbour_disagreement(volume)
        assert share[2] == expected and mean_abs[2] == offset


def test_interleaved_wrong_rows_or_columns_are_found_on_the_sampled_grid():
    # every second pixel in-plane is compared: wrong values on rows 2, 4, 8, 10, 14 ... (even, not
    # multiples of 3) are two thirds of the sampled rows
    for axis in (0, 1):
        volume = np.zeros((36, 36, 20), np.float32)
        wrong = [i for i in range(36) if i % 2 == 0 and i % 3]
        index = [slice(None)] * 3
        index[axis], index[2] = wrong, 9
        volume[tuple(index)] = 2000
        found = suspect_slices(volume)
        assert [k for k, _, _ in found] == [9] and found[0][1] == pytest.approx(2 / 3)


def test_a_slice_is_suspect_only_well_above_the_series_typical_disagreement():
    # every slice has 4 bright pixels of its own (1 % of the 400 sampled): with its neighbours' 8,
    # 3 % of each slice disagrees, so a slice must disagree in more than 30 % to be suspect
    volume = np.zeros((40, 40, 12), np.float32)
    for k in range(12):
        volume[2 * k, 0:8:2, k] = 2000
    volume[24:34, :, 6] = 2000  # 100 more sampled pixels: 28 %
    share, _ = neighbour_disagreement(volume)
    assert share[1] == pytest.approx(0.03) and share[6] == pytest.approx(0.28)
    assert suspect_slices(volume) == []
    volume[20:40, :, 6] = 2000  # 200 more: 53 %
    assert suspect_slices(volume) == [(6, pytest.approx(0.53), pytest.approx(0.03))]


def test_a_suspect_slice_without_file_or_instance_uid_is_still_named():
    volume = np.zeros((16, 16, 11), np.float32)
    volume[:, :, 3] = 2000
    received = [pydicom.Dataset() for _ in range(11)]  # in memory: no filename attribute at all
    for k, ds in enumerate(received):
        ds.SOPInstanceUID = f"1.2.3.{k}"
    (warning,) = pixel_warnings(volume, received)
    assert warning.startswith("slice 1.2.3.3 disagrees with both neighbouring slices in 100.0% of its pixels")
    assert warning.endswith("check it in a viewer and re-send it")
    del received[3].SOPInstanceUID
    assert pixel_warnings(volume, received)[0].startswith("slice ? disagrees")


def test_of_two_adjacent_corrupt_slices_the_worse_is_named():
    volume = np.tile(np.linspace(-100, 100, 32, dtype=np.float32)[:, None, None], (1, 32, 14))
    volume[:, :, 6] += 1500
    volume[:, :16, 7] += 1500  # half as much in the next slice
    assert [k for k, _, _ in suspect_slices(volume)] == [6]
