"""What a PACS shows besides the SEG: a DICOM SR measurement report and a secondary capture.

- The SR (Comprehensive 3D SR, TID 1500 Measurement Report, highdicom) holds statistics.json's
  numbers: per SEG segment its volume and mean HU, per vessel tree its centerline length, branch
  and terminal-branch counts and radii, the portal and hepatic fractions; one image-level group
  holds the split's confidence and QC flags. Each segment's group references the segment (SEG
  instance and segment number) and the source CT series.
- A second SR, the key measurements, holds each segment's volume and mean HU once more, anchored
  to one image: a point inside the segment on a slice where it is large. Viewers that list SR
  measurements only when they are image-anchored (OHIF 3 shows an SR only if every group is a planar
  region on an image) show these; the full report above stays the reference, tied to the segments.
- The secondary capture is the preview PNG with the research-use line in its pixels.

Both go into the source study as new series, so a viewer lists them beside the SEG.
Standard concepts where DICOM has them (SNOMED CT volume, length, mean; DICOM attenuation
coefficient; UCUM units); the pipeline's own measures (branch counts, radii, fractions, split
confidence, flags) carry codes of a private coding scheme, as PS3.16 allows ("99" prefix).
"""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr.coding import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid
from scipy import ndimage

from livervessels import __version__
from livervessels.stage_types import DicomObject

SR_FILE = "measurements_sr.dcm"
SC_FILE = "preview_sc.dcm"
KEY_SR_FILE = "key_measurements_sr.dcm"
SR_SERIES_NUMBER = 902
SC_SERIES_NUMBER = 903
KEY_SR_SERIES_NUMBER = 904
PRIVATE_SCHEME = "99LIVERVESSELS"


def _private(value: str, meaning: str) -> CodedConcept:
    return CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


ML = CodedConcept("ml", "UCUM", "milliliter")
MM = CodedConcept("mm", "UCUM", "millimeter")
HU = CodedConcept("[hnsf'U]", "UCUM", "Hounsfield unit")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

# statistics.json key -> (concept, unit); the vessel-tree measures of vessel_graph.summarize_tree
TREE_MEASURES = {
    "total_length_mm": (CodedConcept("410668003", "SCT", "Length"), MM),
    "branches": (_private("LV001", "Number of centerline branches"), NO_UNITS),
    "terminal_branches": (_private("LV002", "Number of terminal branches"), NO_UNITS),
    "mean_radius_mm": (_private("LV003", "Mean vessel radius"), MM),
    "max_radius_mm": (_private("LV004", "Maximum vessel radius"), MM),
}
FRACTION = _private("LV005", "Fraction of liver vessel volume")
SPLIT_CONFIDENCE = _private("LV006", "Portal/hepatic split confidence")
SPLIT_FLAG = _private("LV007", "Portal/hepatic split QC flag")
NO_FLAG = _private("LV008", "No QC flag raised")
SPLIT_GROUP = "portal/hepatic split"
REMNANT_VOLUME = _private("LV009", "Future liver remnant volume")
REMNANT_SHARE = _private("LV010", "Future liver remnant share of the liver")
PERCENT = CodedConcept("%", "UCUM", "percent")
REMNANT_GROUP = "future liver remnant"


def _private_scheme_identification() -> Dataset:
    """Declares the private coding scheme, so a receiver can tell whose codes these are."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "livervessels measures"
    item.CodingSchemeResponsibleOrganization = "livervessels project"
    return item


def _algorithm(name: str) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=name, version=__version__)


def _device_context(algorithm_name: str) -> hd.sr.ObservationContext:
    return hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=algorithm_name, manufacturer_name="livervessels",
            model_name=f"livervessels {__version__}")))


def _segment_group(seg: Dataset, number: int, source_series_uid: str, stats: dict, tree: dict | None,
                   fraction: float | None, algorithm: hd.sr.AlgorithmIdentification) -> \
        hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    description = _segment_item(seg, number)
    measurements = _volume_and_hu(stats, algorithm)
    for key, (concept, unit) in TREE_MEASURES.items():
        if tree and tree.get(key) is not None:
            measurements.append(hd.sr.Measurement(name=concept, value=float(tree[key]), unit=unit,
                                                  algorithm_id=algorithm))
    if fraction is not None:
        measurements.append(hd.sr.Measurement(name=FRACTION, value=float(fraction), unit=NO_UNITS,
                                              algorithm_id=algorithm))
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=description.SegmentLabel),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid)),
        finding_type=CodedConcept(*_property_type(description)),
        measurements=measurements,
    )


def _volume_and_hu(stats: dict, algorithm: hd.sr.AlgorithmIdentification) -> list[hd.sr.Measurement]:
    """A structure's volume (ml) and, when measured, its mean HU."""
    out = [hd.sr.Measurement(name=codes.SCT.Volume, value=float(stats["volume_ml"]), unit=ML, algorithm_id=algorithm)]
    if stats.get("mean_hu") is not None:
        out.append(hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=float(stats["mean_hu"]), unit=HU,
                                     derivation=codes.SCT.Mean, algorithm_id=algorithm))
    return out


def _segment_item(seg: Dataset, number: int) -> Dataset:
    return next(d for d in seg.SegmentSequence if int(d.SegmentNumber) == number)


def _property_type(description: Dataset) -> tuple[str, str, str]:
    code = description.SegmentedPropertyTypeCodeSequence[0]
    return code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning


def _seg_of_source(seg: str | Path | hd.seg.Segmentation, source_datasets: list[Dataset]) -> hd.seg.Segmentation:
    """The SEG (read when a path is given), checked to reference the source series.

    Raises:
        ValueError: it does not.
    """
    seg = seg if isinstance(seg, hd.seg.Segmentation) else hd.seg.segread(seg)
    source_series_uid = str(source_datasets[0].SeriesInstanceUID)
    if source_series_uid not in {str(item.SeriesInstanceUID) for item in seg.ReferencedSeriesSequence}:
        raise ValueError(f"the SEG {seg.SOPInstanceUID} does not reference the source series {source_series_uid}")
    return seg


def _save_report(groups: list, seg: hd.seg.Segmentation, source_datasets: list[Dataset], out_path: str | Path,
                 algorithm_name: str, series_number: int, series_description: str,
                 private_codes: bool) -> DicomObject:
    """The groups as a TID 1500 Comprehensive 3D SR, a new series of the source study, saved at out_path."""
    report = hd.sr.MeasurementReport(
        observation_context=_device_context(algorithm_name),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sop_uid, series_uid = generate_uid(), generate_uid()
    sr = hd.sr.Comprehensive3DSR(
        evidence=[seg, *source_datasets], content=report, series_instance_uid=series_uid,
        series_number=series_number, sop_instance_uid=sop_uid, instance_number=1, manufacturer="livervessels",
        series_description=series_description, is_complete=True, is_final=False, is_verified=False,
    )
    if private_codes:
        sr.CodingSchemeIdentificationSequence = [_private_scheme_identification()]
    out_path = Path(out_path)
    sr.save_as(out_path)
    return DicomObject(out_path, sop_uid, series_uid)


def write_measurement_report(statistics: dict, split_qc: dict | None, seg: str | Path | hd.seg.Segmentation,
                             source_datasets: list[Dataset], out_path: str | Path, *,
                             algorithm_name: str) -> DicomObject:
    """The TID 1500 SR of statistics.json for the segments of the SEG (a path or one read already).

    Segments are matched by the SEG's tracking IDs (the structure names of statistics.json).

    Raises:
        ValueError: the SEG is not of the source series.
    """
    seg = _seg_of_source(seg, source_datasets)
    source_series_uid = str(source_datasets[0].SeriesInstanceUID)
    algorithm = _algorithm(algorithm_name)
    split_qc = split_qc or {}
    fractions = {"portal_vein_branches": split_qc.get("portal_fraction"),
                 "hepatic_veins": split_qc.get("hepatic_fraction")}
    groups: list = []
    for number, name, stats in _measured_structures(seg, statistics):
        groups.append(_segment_group(seg, number, source_series_uid, stats,
                                     statistics.get("vessel_trees", {}).get(name), fractions.get(name), algorithm))
    confidence = split_qc.get("confidence")
    if isinstance(confidence, dict):
        confidence = confidence.get("overall")
    if split_qc.get("total_vessel_voxels"):
        flags = [str(f) for f in split_qc.get("flags") or []]
        evaluations = [hd.sr.QualitativeEvaluation(SPLIT_FLAG, _private(f"F-{f}"[:16], f.replace("_", " ")))
                       for f in flags] or [hd.sr.QualitativeEvaluation(SPLIT_FLAG, NO_FLAG)]
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=SPLIT_GROUP),
            measurements=[hd.sr.Measurement(name=SPLIT_CONFIDENCE, value=float(confidence), unit=NO_UNITS,
                                            algorithm_id=algorithm)] if isinstance(confidence, (int, float)) else None,
            qualitative_evaluations=evaluations,
        ))
    # the future liver remnant after the resection asked for, on the vessel-derived segments
    remnant = (statistics.get("couinaud_segments") or {}).get("future_liver_remnant") or {}
    if "remnant_ml" in remnant:
        segments = ",".join(map(str, remnant["removed_segments"]))
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(),
                                                         identifier=f"{REMNANT_GROUP} (resected {segments})"),
            measurements=[hd.sr.Measurement(name=REMNANT_VOLUME, value=float(remnant["remnant_ml"]), unit=ML,
                                            algorithm_id=algorithm),
                          hd.sr.Measurement(name=REMNANT_SHARE, value=float(remnant["remnant_percent"]),
                                            unit=PERCENT, algorithm_id=algorithm)]))
    return _save_report(groups, seg, source_datasets, out_path, algorithm_name, SR_SERIES_NUMBER,
                        "Liver vessel measurements RUO", private_codes=True)


def _measured_structures(seg: Dataset, statistics: dict) -> list[tuple[int, str, dict]]:
    """(segment number, statistics.json name, its statistics) of each SEG segment that has voxels."""
    out = []
    for number in seg.get_segment_numbers():
        name = seg.get_segment_description(number).tracking_id
        stats = statistics.get("structures", {}).get(name)
        if stats and stats.get("voxels"):
            out.append((number, name, stats))
    return out


def _key_points(seg: hd.seg.Segmentation) -> dict[int, tuple[str, float, float]]:
    """{segment number: (source SOP Instance UID, column, row)}: for each segment a source image where
    it is large, and on it the segment's pixel farthest from its edge (in mm): a point inside the
    segment, which a curved vessel tree's centroid need not be.

    The image is the one where the segment covers the most pixels, unless another segment's point is
    already there and a free image holds at least half as many: a viewer draws the labels of points
    on one image on top of each other.
    """
    spacing = [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    frames = seg.pixel_array
    frames = (frames if frames.ndim == 3 else frames[None]) > 0
    candidates: dict[int, list[tuple[int, int, str]]] = {}  # segment -> [(pixels, frame index, source uid)]
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        pixels = int(np.count_nonzero(frames[index]))
        if pixels:
            candidates.setdefault(number, []).append((pixels, index, source))
    points: dict[int, tuple[str, float, float]] = {}
    for number in sorted(candidates):
        ranked = sorted(candidates[number], key=lambda c: -c[0])
        used = {p[0] for p in points.values()}
        free = [c for c in ranked if c[2] not in used and 2 * c[0] >= ranked[0][0]]
        _, index, source = (free or ranked)[0]
        depth = ndimage.distance_transform_edt(np.pad(frames[index], 1), sampling=spacing)[1:-1, 1:-1]
        row, column = np.unravel_index(int(np.argmax(depth)), depth.shape)
        points[number] = (source, float(column), float(row))
    return points


def write_key_measurements(statistics: dict, seg: str | Path | hd.seg.Segmentation, source_datasets: list[Dataset],
                           out_path: str | Path, *, algorithm_name: str) -> DicomObject:
    """A TID 1500 SR with each segment's volume and mean HU as a planar group: a point inside the
    segment on a source image where it is large (_key_points), the structure as finding site (see the
    module's note on viewers).

    Raises:
        ValueError: the SEG is not of the source series.
    """
    seg = _seg_of_source(seg, source_datasets)
    algorithm = _algorithm(algorithm_name)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source_datasets}
    points = _key_points(seg)
    groups = []
    for number, _name, stats in _measured_structures(seg, statistics):
        if number not in points:
            continue
        source, column, row = points[number]
        image = by_uid[source]
        structure = CodedConcept(*_property_type(_segment_item(seg, number)))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=seg.get_segment_description(number).segment_label),
            # SCOORD pixel coordinates start at the outer corner of the first pixel: +0.5 is its centre
            referenced_region=hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POINT, graphic_data=np.array([[column + 0.5, row + 0.5]]),
                source_image=hd.sr.SourceImageForRegion(str(image.SOPClassUID), source)),
            finding_type=structure,
            # what the structure is, in words a viewer shows beside the numbers (OHIF lists finding sites)
            finding_sites=[hd.sr.FindingSite(structure)],
            measurements=_volume_and_hu(stats, algorithm),
        ))
    return _save_report(groups, seg, source_datasets, out_path, algorithm_name, KEY_SR_SERIES_NUMBER,
                        "Liver vessel key measurements RUO", private_codes=False)


def write_preview_capture(preview_png: str | Path, source_datasets: list[Dataset], out_path: str | Path) -> DicomObject:
    """The preview PNG as a DICOM secondary capture (RGB) in the source study.

    The preview must carry the research-use line in its pixels (preview.render_preview draws it).
    """
    from PIL import Image

    rgb = np.asarray(Image.open(preview_png).convert("RGB"), np.uint8)
    sop_uid, series_uid = generate_uid(), generate_uid()
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source_datasets[0], pixel_array=rgb, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=SC_SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer="livervessels",
        patient_orientation=("L", "F"), series_description="Liver vessels preview RUO",
    )
    # Two views side by side (coronal and axial) share no single orientation; Patient Orientation is
    # Type 2C here, so it is left empty rather than half wrong.
    sc.PatientOrientation = ""
    sc.BurnedInAnnotation = "YES"
    # Laterality (Type 2C) is for paired body parts; saying which part this is lets a validator see
    # that it is not one
    sc.BodyPartExamined = str(getattr(source_datasets[0], "BodyPartExamined", "") or "ABDOMEN")
    out_path = Path(out_path)
    sc.save_as(out_path)
    return DicomObject(out_path, sop_uid, series_uid)
