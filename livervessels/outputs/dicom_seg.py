"""DICOM SEG (highdicom) for the selected source series.

The masks are on the volume grid built by livervessels.dicom.volume, whose slice k is source
instance k, so frame k of each segment is mask[:, :, k] transposed to (rows, columns). The SEG
references the source instances by the UIDs the user's files carry; instances whose UID we had to
invent are never referenced: in that case no SEG is written and the QC report says why.
"""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr.coding import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from livervessels import __version__
from livervessels.outputs.structures import ANATOMICAL_STRUCTURE, LIVER_CODE, SEG_STRUCTURES, Structure
from livervessels.stage_types import SegResult

SEG_FILE = "segmentations.dcm"


def _concept(code: tuple[str, str, str]) -> CodedConcept:
    return CodedConcept(value=code[0], scheme_designator=code[1], meaning=code[2])


def _cielab(rgb: tuple[int, int, int]) -> hd.color.CIELabColor:
    return hd.color.CIELabColor.from_rgb(*rgb)


# Type 2 attributes of the Patient and General Study modules: DICOM allows them empty, research
# exports and series converted from NIfTI often leave them out, and the SEG copies them.
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "StudyID", "AccessionNumber")


def with_type2_attributes(datasets: list[Dataset]) -> list[Dataset]:
    """The source datasets with missing Type 2 patient / study attributes present and empty.

    Datasets that lack none are returned as they are; the others are copied element by element
    (the caller's datasets are not changed).
    """
    out = []
    for ds in datasets:
        missing = [k for k in TYPE2_PATIENT_STUDY if k not in ds]
        if not missing:
            out.append(ds)
            continue
        copy = Dataset()
        for element in ds:
            copy.add(element)
        if hasattr(ds, "file_meta"):
            copy.file_meta = ds.file_meta
        for keyword in missing:
            setattr(copy, keyword, "")
        out.append(copy)
    return out


def _frames(masks: dict[str, np.ndarray], present: list[Structure]) -> np.ndarray:
    """Frame k is source instance k. Non-overlapping segments go in as one label map (segment
    numbers), which keeps memory at one byte per voxel for 100+ classes; overlapping ones (vessels
    inside "liver vessels") as a stack of binary masks."""
    total = np.zeros(np.shape(masks[present[0].name]), np.uint16)
    for s in present:
        total += np.asarray(masks[s.name], bool)
    if total.max() <= 1:
        label_map = np.zeros(total.shape, np.uint8 if len(present) < 256 else np.uint16)
        for number, s in enumerate(present, start=1):
            label_map[np.asarray(masks[s.name], bool)] = number
        return label_map.transpose(2, 1, 0)
    return np.stack([np.asarray(masks[s.name], bool).transpose(2, 1, 0) for s in present], axis=-1).astype(np.uint8)


def write_dicom_seg(
    masks: dict[str, np.ndarray],
    source_datasets: list[Dataset],
    out_path: str | Path,
    *,
    algorithm_name: str,
    series_description: str = "Liver vessels (research)",
    series_number: int = 901,
    unreferenceable_uids: set[str] | None = None,
    structures: tuple[Structure, ...] = SEG_STRUCTURES,
) -> SegResult:
    """One SEG object holding every non-empty structure of `structures` found in masks."""
    if unreferenceable_uids and any(str(ds.SOPInstanceUID) in unreferenceable_uids for ds in source_datasets):
        return SegResult(None, skipped_reason="some source instances carry no SOP Instance UID, so a SEG "
                                              "could not reference them; masks are in the NIfTI outputs")
    present, empty = [], []
    for s in structures:
        if s.name not in masks:
            continue
        (present if np.any(masks[s.name]) else empty).append(s)
    if not present:
        return SegResult(None, empty_segments=[s.name for s in empty],
                         skipped_reason="every segment is empty; a SEG needs at least one")

    stack = _frames(masks, present)
    source_datasets = with_type2_attributes(source_datasets)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = []
    for number, s in enumerate(present, start=1):
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=s.label,
            segmented_property_category=_concept(ANATOMICAL_STRUCTURE),
            segmented_property_type=_concept(s.code),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[_concept(LIVER_CODE)] if s.in_liver else None,
            tracking_id=s.name,
            tracking_uid=generate_uid(),
            display_color=_cielab(s.rgb),
        ))
    first = source_datasets[0]
    sop_uid = generate_uid()
    seg = hd.seg.Segmentation(
        source_images=source_datasets,
        pixel_array=stack,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer="livervessels",
        manufacturer_model_name=algorithm_name,
        software_versions=__version__,
        device_serial_number="0",
        content_label="LIVERVESSELS",
        content_description="Liver vessels, automatic; research use only",
        content_creator_name="livervessels^automatic",
        series_description=series_description[:64],
        omit_empty_frames=True,
    )
    # Keep the series in the source patient's frame of reference and study.
    assert seg.StudyInstanceUID == first.StudyInstanceUID
    out_path = Path(out_path)
    seg.save_as(out_path)
    return SegResult(out_path, [s.name for s in present], [s.name for s in empty], None, sop_uid)


def read_seg_labels(path: str | Path, source_sop_uids: list[str], shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Rebuild each segment as a volume on the source grid (slice k = source_sop_uids[k])."""
    seg = hd.seg.segread(path)
    out = {}
    numbers = list(seg.get_segment_numbers())
    present = [uid for uid in source_sop_uids if uid in {r[2] for r in seg.get_source_image_uids()}]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=present, segment_numbers=numbers,
                                               ignore_spatial_locations=True, assert_missing_frames_are_empty=True)
    index = {uid: k for k, uid in enumerate(source_sop_uids)}
    for j, number in enumerate(numbers):
        vol = np.zeros(shape, bool)
        for i, uid in enumerate(present):
            vol[:, :, index[uid]] = pixels[i, :, :, j].T > 0
        name = seg.get_segment_description(number).tracking_id or str(number)
        out[name] = vol
    return out
