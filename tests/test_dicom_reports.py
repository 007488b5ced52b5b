"""DICOM SR measurement report, its image-anchored key measurements and the preview secondary capture
(livervessels/outputs/dicom_reports.py)."""
from __future__ import annotations

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from livervessels.outputs.dicom_reports import (
    FRACTION,
    SPLIT_CONFIDENCE,
    SPLIT_FLAG,
    SPLIT_GROUP,
    TREE_MEASURES,
    write_key_measurements,
    write_measurement_report,
)

from conftest import dciodvfy_errors


def _groups(sr) -> dict[str, list]:
    """{tracking identifier: measurements} of every group in the SR."""
    out = {}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        out[group.tracking_identifier] = group
    return out


def test_the_sr_holds_every_number_of_statistics_json_for_its_segment(demo_app_output, dciodvfy):
    sr = hd.sr.srread(demo_app_output / "measurements_sr.dcm")
    seg = hd.seg.segread(demo_app_output / "segmentations.dcm")
    stats = json.loads((demo_app_output / "statistics.json").read_text())
    qc = json.loads((demo_app_output / "qc.json").read_text())
    split = qc["portal_hepatic_split"]
    ct_series = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    labels = {seg.get_segment_description(n).segment_label: (n, seg.get_segment_description(n).tracking_id)
              for n in seg.get_segment_numbers()}
    groups = _groups(sr)
    assert set(groups) == set(labels)  # one group per segment of the SEG
    for label, group in groups.items():
        number, name = labels[label]
        ref = group.referenced_segment
        assert list(ref.referenced_segment_numbers) == [number]
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert ref.referenced_sop_class_uid == seg.SOPClassUID
        assert ref.source_series_for_segmentation.value == ct_series
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        assert values["Volume"] == (pytest.approx(stats["structures"][name]["volume_ml"]), "ml")
        assert values["Attenuation Coefficient"] == (pytest.approx(stats["structures"][name]["mean_hu"]), "[hnsf'U]")
        tree = stats["vessel_trees"].get(name, {})
        for key, (concept, unit) in TREE_MEASURES.items():
            if key in tree:
                assert values[concept.meaning] == (pytest.approx(tree[key]), unit.value), (name, key)
        fraction = {"portal_vein_branches": split["portal_fraction"], "hepatic_veins": split["hepatic_fraction"]}
        if name in fraction:
            assert values[FRACTION.meaning][0] == pytest.approx(fraction[name])
    assert any(TREE_MEASURES["branches"][0].meaning in {m.name.meaning for m in g.get_measurements()}
               for g in groups.values())  # vessel trees were measured
    # the split's confidence and flags, image-level
    (split_group,) = [g for g in sr.content.get_image_measurement_groups()
                      if g.tracking_identifier == SPLIT_GROUP]
    (confidence,) = [m for m in split_group.get_measurements() if m.name == SPLIT_CONFIDENCE]
    assert confidence.value == pytest.approx(split["confidence"])
    flags = [e for e in split_group.get_qualitative_evaluations() if e.name == SPLIT_FLAG]
    assert len(flags) == max(len(split["flags"]), 1)
    assert dciodvfy_errors(dciodvfy, demo_app_output / "measurements_sr.dcm") == []


def test_the_key_measurements_sit_inside_each_segment_on_a_large_slice(demo_app_output, dciodvfy):
    sr = hd.sr.srread(demo_app_output / "key_measurements_sr.dcm")
    seg = hd.seg.segread(demo_app_output / "segmentations.dcm")
    stats = json.loads((demo_app_output / "statistics.json").read_text())
    sources = [uid for _, _, uid in seg.get_source_image_uids()]
    groups = {g.tracking_identifier: g for g in sr.content.get_planar_roi_measurement_groups()}
    # only image-anchored groups: a viewer that needs them all planar shows the report
    assert not sr.content.get_volumetric_roi_measurement_groups() and not sr.content.get_image_measurement_groups()
    labels = {seg.get_segment_description(n).segment_label: n for n in seg.get_segment_numbers()}
    assert set(groups) == set(labels)
    images_used: list[str] = []
    for label in sorted(groups, key=labels.get):  # the order the points were placed in
        group = groups[label]
        number = labels[label]
        name = seg.get_segment_description(number).tracking_id
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        assert values["Volume"] == (pytest.approx(stats["structures"][name]["volume_ml"]), "ml")
        assert values["Attenuation Coefficient"] == (pytest.approx(stats["structures"][name]["mean_hu"]), "[hnsf'U]")
        region = group.roi
        assert region.graphic_type.value == "POINT"
        frames = seg.get_pixels_by_source_instance(sources, segment_numbers=[number],
                                                   assert_missing_frames_are_empty=True)[..., 0] > 0
        image_uid = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        index = sources.index(image_uid)
        # the largest slice, or one at least half as large when another point is on that one
        area = frames.sum(axis=(1, 2))
        assert area[index] == area.max() or (2 * area[index] >= area.max() and images_used.count(image_uid) == 0)
        images_used.append(image_uid)
        column, row = region.value[0]
        assert frames[index][int(row), int(column)], label  # SCOORD (column, row), pixel centre at +0.5
        (site,) = group.finding_sites
        assert site.value.value == seg.get_segment_description(number).segmented_property_type.value
    assert dciodvfy_errors(dciodvfy, demo_app_output / "key_measurements_sr.dcm") == []


def test_sr_sc_and_seg_are_new_series_of_the_source_study(demo_app_output):
    seg, sr, key_sr, sc = (pydicom.dcmread(demo_app_output / f, stop_before_pixels=True) for f in (
        "segmentations.dcm", "measurements_sr.dcm", "key_measurements_sr.dcm", "preview_sc.dcm"))
    assert seg.StudyInstanceUID == sr.StudyInstanceUID == key_sr.StudyInstanceUID == sc.StudyInstanceUID
    assert len({seg.SeriesInstanceUID, sr.SeriesInstanceUID, key_sr.SeriesInstanceUID, sc.SeriesInstanceUID}) == 4
    assert sr.Modality == key_sr.Modality == "SR" and sc.Modality in ("OT", "CT") and sc.BurnedInAnnotation == "YES"
    qc = json.loads((demo_app_output / "qc.json").read_text())
    assert qc["dicom_sr"]["sop_instance_uid"] == sr.SOPInstanceUID
    assert qc["dicom_key_sr"]["sop_instance_uid"] == key_sr.SOPInstanceUID
    assert qc["dicom_sc"]["sop_instance_uid"] == sc.SOPInstanceUID
    # the SR's evidence names the SEG it measures
    evidence = {item.ReferencedSOPInstanceUID for series in sr.CurrentRequestedProcedureEvidenceSequence
                for s in series.ReferencedSeriesSequence for item in s.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in evidence


def test_the_secondary_capture_is_the_preview(demo_app_output, dciodvfy):
    sc = pydicom.dcmread(demo_app_output / "preview_sc.dcm")
    png = np.asarray(Image.open(demo_app_output / "preview_liver_vessels.png").convert("RGB"))
    assert sc.PhotometricInterpretation == "RGB"
    assert np.array_equal(sc.pixel_array, png)
    assert dciodvfy_errors(dciodvfy, demo_app_output / "preview_sc.dcm") == []


def test_an_sr_is_refused_for_a_seg_of_another_series(demo_app_output, tmp_path):
    stats = json.loads((demo_app_output / "statistics.json").read_text())
    source = pydicom.dcmread(next((demo_app_output.parent.parent).glob("**/segmentations.dcm")),
                             stop_before_pixels=True)
    other = pydicom.Dataset()
    other.SeriesInstanceUID = pydicom.uid.generate_uid()
    other.StudyInstanceUID = source.StudyInstanceUID
    with pytest.raises(ValueError, match="does not reference the source series"):
        write_measurement_report(stats, {}, demo_app_output / "segmentations.dcm", [other], tmp_path / "sr.dcm",
                                 algorithm_name="test")
    with pytest.raises(ValueError, match="does not reference the source series"):
        write_key_measurements(stats, demo_app_output / "segmentations.dcm", [other], tmp_path / "key.dcm",
                               algorithm_name="test")


def test_the_sr_gives_the_future_liver_remnant_when_statistics_hold_one(demo_app_output, tmp_path, dciodvfy):
    from livervessels.outputs.dicom_reports import REMNANT_SHARE, REMNANT_VOLUME
    from livervessels.study import load_ct_study

    from conftest import DEMO_STUDY

    stats = json.loads((demo_app_output / "statistics.json").read_text())
    remnant = {"removed_segments": [5, 6, 7, 8], "remnant_ml": 552.3, "remnant_percent": 34.9}
    stats["couinaud_segments"] = {"method": "planes", "volumes": {}, "future_liver_remnant": remnant}
    sources = load_ct_study(DEMO_STUDY).series_volume.sorted_datasets
    out = write_measurement_report(stats, {}, demo_app_output / "segmentations.dcm", sources, tmp_path / "sr.dcm",
                                   algorithm_name="test")
    sr = hd.sr.srread(out.path)
    (group,) = [g for g in sr.content.get_image_measurement_groups()
                if g.tracking_identifier == "future liver remnant (resected 5,6,7,8)"]
    values = {m.name: (m.value, m.unit.value) for m in group.get_measurements()}
    assert values[REMNANT_VOLUME] == (pytest.approx(552.3), "ml")
    assert values[REMNANT_SHARE] == (pytest.approx(34.9), "%")
    assert dciodvfy_errors(dciodvfy, out.path) == []
    # a refused remnant (no volumes) adds no group
    stats["couinaud_segments"]["future_liver_remnant"] = {"refused": "no remnant"}
    out = write_measurement_report(stats, {}, demo_app_output / "segmentations.dcm", sources, tmp_path / "sr2.dcm",
                                   algorithm_name="test")
    assert not [g for g in hd.sr.srread(out.path).content.get_image_measurement_groups()
                if str(g.tracking_identifier).startswith("future liver remnant")]
