"""livervessels/outputs/dicom_seg.py: the DICOM SEG written for a source series.

The written file is read back with plain pydicom, not with highdicom or the module's own reader:
its SOP class must be Segmentation Storage (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.66.4), it must sit in
the source's study and frame of reference, and each frame must carry the mask pixels of the source
instance it references, at that instance's position. Sources are three tiny CT slices of 5 rows x
4 columns (not square, so a transposed frame shows).
"""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from livervessels.outputs.dicom_seg import (
    TYPE2_PATIENT_STUDY,
    read_seg_labels,
    with_type2_attributes,
    write_dicom_seg,
)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROWS, COLS, SLICES = 5, 4, 3


def _sources() -> list[Dataset]:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    out = []
    for k in range(SLICES):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CT_IMAGE_STORAGE, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CT_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Seg", "SEG-1", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 3, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.ImagePositionPatient = [-40.0, -30.0, 100.0 + 2.5 * k]
        ds.PixelSpacing, ds.SliceThickness = [0.75, 0.5], 2.5
        ds.Rows, ds.Columns = ROWS, COLS
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = np.zeros((ROWS, COLS), np.int16).tobytes()
        out.append(ds)
    return out


def _masks(overlapping: bool) -> dict[str, np.ndarray]:
    """Masks on the volume grid [column, row, slice]; slice 1 holds no vessel."""
    liver = np.zeros((COLS, ROWS, SLICES), bool)
    liver[:3, 1:, :] = True
    vessels = np.zeros_like(liver)
    vessels[0, 4, 0] = vessels[2, 1, 2] = vessels[1, 2, 2] = True  # single voxels: orientation shows
    if not overlapping:
        liver &= ~vessels
    return {"liver": liver, "enhanced_liver_vessels": vessels}


def _frames_by_source(seg: Dataset, sources: list[Dataset]) -> dict[tuple[int, int], np.ndarray]:
    """{(segment number, slice k): frame as (rows, columns)}, from the per-frame references alone."""
    index = {str(ds.SOPInstanceUID): k for k, ds in enumerate(sources)}
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    out = {}
    for f, group in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        uid = str(group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        k = index[uid]
        # the frame lies where its source instance lies
        position = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, [float(v) for v in sources[k].ImagePositionPatient], atol=1e-3)
        assert (number, k) not in out
        out[number, k] = pixels[f]
    return out


def test_the_seg_is_a_segmentation_in_the_source_study_and_frame_of_reference(tmp_path):
    sources = _sources()
    result = write_dicom_seg(_masks(False), sources, tmp_path / "seg.dcm", algorithm_name="unit test")
    seg = pydicom.dcmread(result.path)
    assert seg.SOPClassUID == SEGMENTATION_STORAGE and seg.file_meta.MediaStorageSOPClassUID == SEGMENTATION_STORAGE
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert str(seg.SOPInstanceUID) == result.sop_instance_uid
    first = sources[0]
    assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID, seg.PatientID) == \
        (first.StudyInstanceUID, first.FrameOfReferenceUID, first.PatientID)
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID  # a new series in the same study
    assert (int(seg.Rows), int(seg.Columns)) == (ROWS, COLS)
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in referenced.ReferencedInstanceSequence} <= \
        {str(ds.SOPInstanceUID) for ds in sources}


@pytest.mark.parametrize("overlapping", [False, True], ids=["disjoint", "vessels_inside_liver"])
def test_each_frame_holds_the_mask_of_the_source_slice_it_references(tmp_path, overlapping):
    sources, masks = _sources(), _masks(overlapping)
    result = write_dicom_seg(masks, sources, tmp_path / "seg.dcm", algorithm_name="unit test")
    assert result.segments == ["liver", "enhanced_liver_vessels"]
    seg = pydicom.dcmread(result.path)
    frames = _frames_by_source(seg, sources)
    for number, name in enumerate(result.segments, start=1):
        for k in range(SLICES):
            expected = masks[name][:, :, k].T  # mask[column, row] is frame pixel (row, column)
            if expected.any():
                assert np.array_equal(frames[number, k], expected.astype(np.uint8)), (name, k)
            else:
                assert (number, k) not in frames  # empty frames are left out
    # the module's own reader agrees, overlapping voxels included
    rebuilt = read_seg_labels(result.path, [str(ds.SOPInstanceUID) for ds in sources], (COLS, ROWS, SLICES))
    for name in result.segments:
        assert np.array_equal(rebuilt[name], masks[name]), name


def test_segments_are_numbered_in_table_order_and_unknown_or_empty_masks_are_left_out(tmp_path):
    shape = (COLS, ROWS, SLICES)
    veins = np.zeros(shape, bool)
    veins[1, 1, 1] = True
    liver = np.ones(shape, bool)
    masks = {"hepatic_veins": veins, "not_a_structure": liver, "portal_vein_branches": np.zeros(shape, bool),
             "liver": liver}
    result = write_dicom_seg(masks, _sources(), tmp_path / "seg.dcm", algorithm_name="unit test")
    assert result.segments == ["liver", "hepatic_veins"] and result.empty_segments == ["portal_vein_branches"]
    seg = pydicom.dcmread(result.path)
    described = [(int(s.SegmentNumber), s.SegmentLabel, s.TrackingID, s.SegmentedPropertyTypeCodeSequence[0].CodeValue)
                 for s in seg.SegmentSequence]
    # SNOMED CT 10200004 Liver, 8993003 Hepatic vein
    assert described == [(1, "Liver", "liver", "10200004"), (2, "Hepatic veins", "hepatic_veins", "8993003")]
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"


def test_no_seg_is_written_when_a_source_instance_has_an_invented_uid(tmp_path):
    sources = _sources()
    path = tmp_path / "seg.dcm"
    result = write_dicom_seg(_masks(False), sources, path, algorithm_name="unit test",
                             unreferenceable_uids={str(sources[1].SOPInstanceUID)})
    assert result.path is None and result.segments == [] and "SOP Instance UID" in result.skipped_reason
    assert not path.exists()
    # UIDs invented for instances of other series do not matter
    other = write_dicom_seg(_masks(False), sources, path, algorithm_name="unit test",
                            unreferenceable_uids={generate_uid()})
    assert other.path == path and path.exists()


def test_no_seg_is_written_when_every_mask_is_empty(tmp_path):
    empty = {name: np.zeros((COLS, ROWS, SLICES), bool) for name in ("liver", "hepatic_veins")}
    result = write_dicom_seg(empty, _sources(), tmp_path / "seg.dcm", algorithm_name="unit test")
    assert result.path is None and result.empty_segments == ["liver", "hepatic_veins"]
    assert "empty" in result.skipped_reason and not (tmp_path / "seg.dcm").exists()


def test_type2_attributes_are_added_on_copies_only_where_missing():
    complete, lacking = _sources()[:2]
    del lacking.PatientBirthDate, lacking.AccessionNumber
    out = with_type2_attributes([complete, lacking])
    assert out[0] is complete  # nothing missing: not copied
    assert out[1] is not lacking and "PatientBirthDate" not in lacking  # the caller's dataset is unchanged
    for keyword in TYPE2_PATIENT_STUDY:
        assert keyword in out[1]
    assert out[1].PatientBirthDate == "" and out[1].AccessionNumber == ""  # present, empty (Type 2)
    assert out[1].PatientID == "SEG-1" and out[1].file_meta is lacking.file_meta


def _code(item) -> tuple[str, str, str]:
    return str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning)


def test_the_seg_says_who_made_it_and_each_segment_what_and_where_it_is(tmp_path):
    from livervessels import __version__

    shape = (COLS, ROWS, SLICES)
    ivc, veins = np.zeros(shape, bool), np.zeros(shape, bool)
    ivc[3, 0, :] = True
    veins[1, 1, 1] = True
    long_name = "Liver vessels " + "x" * 70
    result = write_dicom_seg({"inferior_vena_cava": ivc, "hepatic_veins": veins}, _sources(), tmp_path / "seg.dcm",
                             algorithm_name="livervessels enhanced", series_description=long_name, series_number=905)
    seg = pydicom.dcmread(result.path)
    assert seg.SeriesDescription == long_name[:64] and int(seg.SeriesNumber) == 905 and int(seg.InstanceNumber) == 1
    assert (seg.Manufacturer, seg.ManufacturerModelName, seg.SoftwareVersions) == \
        ("livervessels", "livervessels enhanced", __version__)
    assert seg.ContentLabel == "LIVERVESSELS" and "research use only" in seg.ContentDescription
    assert str(seg.ContentCreatorName) == "livervessels^automatic"
    hepatic, vena_cava = seg.SegmentSequence  # in the table's order
    for segment in (vena_cava, hepatic):
        # SNOMED CT 123037004 "Anatomical Structure" is the category of every segment
        assert _code(segment.SegmentedPropertyCategoryCodeSequence[0]) == ("123037004", "SCT", "Anatomical Structure")
        algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("livervessels enhanced", __version__)
        # PS3.16 CID 7162: 123110 "Artificial Intelligence"
        assert _code(algorithm.AlgorithmFamilyCodeSequence[0]) == ("123110", "DCM", "Artificial Intelligence")
    assert _code(hepatic.SegmentedPropertyTypeCodeSequence[0]) == ("8993003", "SCT", "Hepatic vein")
    assert _code(hepatic.AnatomicRegionSequence[0]) == ("10200004", "SCT", "Liver")  # inside the liver
    assert "AnatomicRegionSequence" not in vena_cava  # the IVC is not a structure of the liver
    # display colours: the table's RGB as CIELab (dodger blue for hepatic veins, dark blue for the IVC)
    import highdicom as hd

    assert list(hepatic.RecommendedDisplayCIELabValue) == list(hd.color.CIELabColor.from_rgb(30, 144, 255).value)
    assert list(vena_cava.RecommendedDisplayCIELabValue) == list(hd.color.CIELabColor.from_rgb(0, 60, 160).value)
    assert hepatic.TrackingUID != vena_cava.TrackingUID


def test_skipped_segs_say_why_in_words_for_the_qc_report(tmp_path):
    sources = _sources()
    invented = write_dicom_seg(_masks(False), sources, tmp_path / "a.dcm", algorithm_name="unit test",
                               unreferenceable_uids={str(sources[0].SOPInstanceUID)})
    assert invented.skipped_reason == ("some source instances carry no SOP Instance UID, so a SEG could not "
                                       "reference them; masks are in the NIfTI outputs")
    empty = write_dicom_seg({"liver": np.zeros((COLS, ROWS, SLICES), bool)}, sources, tmp_path / "b.dcm",
                            algorithm_name="unit test")
    assert empty.skipped_reason == "every segment is empty; a SEG needs at least one"
    written = write_dicom_seg(_masks(False), sources, tmp_path / "c.dcm", algorithm_name="unit test")
    assert written.skipped_reason is None and written.empty_segments == []


def test_frames_are_one_label_map_when_segments_do_not_overlap_and_a_stack_when_they_do():
    from livervessels.outputs.dicom_seg import _frames
    from livervessels.outputs.structures import structures_for

    disjoint = _masks(False)
    present = structures_for(list(disjoint))
    label_map = _frames(disjoint, list(present))
    assert label_map.shape == (SLICES, ROWS, COLS) and label_map.dtype == np.uint8
    assert np.array_equal(label_map == 1, disjoint["liver"].transpose(2, 1, 0))
    assert np.array_equal(label_map == 2, disjoint["enhanced_liver_vessels"].transpose(2, 1, 0))
    stack = _frames(_masks(True), list(present))
    assert stack.shape == (SLICES, ROWS, COLS, 2) and stack.dtype == np.uint8
    assert np.array_equal(stack[..., 1], _masks(True)["enhanced_liver_vessels"].transpose(2, 1, 0))
    # 300 classes (TotalSegmentator's tasks together): the label map needs 16 bits
    many = {f"class_{n}": np.zeros((COLS, ROWS, SLICES), bool) for n in range(300)}
    many["class_299"][0, 0, 0] = True
    labels = _frames(many, list(structures_for(list(many))))
    assert labels.dtype == np.uint16 and labels[0, 0, 0] == 300 and np.count_nonzero(labels) == 1


def test_reading_back_names_segments_by_tracking_id_and_puts_missing_slices_empty(tmp_path):
    sources = _sources()
    masks = _masks(False)
    result = write_dicom_seg(masks, sources, tmp_path / "seg.dcm", algorithm_name="unit test")
    uids = [str(ds.SOPInstanceUID) for ds in sources]
    # a longer source series: the SEG's slices sit at their own places, the others stay empty
    longer = [uids[0], "1.2.3.4.5", uids[1], uids[2]]
    rebuilt = read_seg_labels(result.path, longer, (COLS, ROWS, 4))
    assert sorted(rebuilt) == ["enhanced_liver_vessels", "liver"]
    for name, mask in masks.items():
        assert np.array_equal(rebuilt[name][:, :, [0, 2, 3]], mask) and not rebuilt[name][:, :, 1].any(), name


def test_masks_read_from_nifti_files_as_integers_give_the_same_frames_as_boolean_ones():
    from livervessels.outputs.dicom_seg import _frames
    from livervessels.outputs.structures import structures_for

    for overlapping in (False, True):
        masks = _masks(overlapping)
        present = list(structures_for(list(masks)))
        as_stored = {name: m.astype(np.uint8) * 255 for name, m in masks.items()}  # any non-zero value is inside
        assert np.array_equal(_frames(as_stored, present), _frames(masks, present)), overlapping


def test_256_segments_no_longer_fit_an_8_bit_label_map():
    from livervessels.outputs.dicom_seg import _frames
    from livervessels.outputs.structures import structures_for

    many = {f"class_{n}": np.zeros((16, 16, 1), bool) for n in range(256)}
    for n, mask in enumerate(many.values()):
        mask[n % 16, n // 16, 0] = True
    labels = _frames(many, list(structures_for(list(many))))
    assert labels.dtype == np.uint16 and labels.max() == 256 and len(np.unique(labels)) == 256


def test_the_default_series_description_says_research(tmp_path):
    result = write_dicom_seg(_masks(False), _sources(), tmp_path / "seg.dcm", algorithm_name="unit test")
    assert pydicom.dcmread(result.path).SeriesDescription == "Liver vessels (research)"


def test_couinaud_segments_carry_the_dicom_cid_7170_codes(tmp_path):
    from livervessels.outputs.structures import COUINAUD_STRUCTURES, SEG_STRUCTURES

    shape = (COLS, ROWS, SLICES)
    two, eight = np.zeros(shape, bool), np.zeros(shape, bool)
    two[0, 1:, :] = True
    eight[2, 1:, :] = True
    masks = {"couinaud_segment_2": two, "couinaud_segment_8": eight, "couinaud_segment_5": two & False}
    result = write_dicom_seg(masks,
                             _sources(), tmp_path / "seg.dcm", algorithm_name="livervessels enhanced",
                             structures=SEG_STRUCTURES + COUINAUD_STRUCTURES)
    seg = pydicom.dcmread(result.path)
    second, eighth = seg.SegmentSequence
    # PS3.16 CID 7170 "Couinaud Liver Segment": SNOMED CT codes of segments II and VIII
    assert _code(second.SegmentedPropertyTypeCodeSequence[0]) == ("277956007", "SCT", "Couinaud hepatic segment II")
    assert _code(eighth.SegmentedPropertyTypeCodeSequence[0]) == ("277962002", "SCT", "Couinaud hepatic segment VIII")
    assert second.SegmentLabel == "Couinaud segment II" and _code(second.AnatomicRegionSequence[0])[0] == "10200004"
    assert result.empty_segments == ["couinaud_segment_5"]
    assert [s.code[0] for s in COUINAUD_STRUCTURES] == ["71133005", "277956007", "277957003", "277958008",
                                                       "277959000", "277960005", "277961009", "277962002"]
