"""Corrupt pixel data a decoder accepts (livervessels/dicom/pixel_checks.py)."""
from __future__ import annotations

import glob

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_fragmented_frames

from livervessels.dicom.pixel_checks import jpeg2000_frame_problem, pixel_warnings, suspect_slices
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
