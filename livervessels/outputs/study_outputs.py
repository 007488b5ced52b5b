"""The study's outputs from a LiverVesselResult: DICOM SEG, SR and SC, NIfTI masks, statistics,
preview, meshes, metadata and qc.json."""
from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd

from livervessels.contrast_phase import phase_warning
from livervessels.couinaud import LABEL_MAP_NAME, segment_masks
from livervessels.field_of_view import field_of_view_warnings
from livervessels.geometry import Volume
from livervessels.outputs import qc as qc_report
from livervessels.outputs.dicom_reports import (
    KEY_SR_FILE,
    SC_FILE,
    SR_FILE,
    write_key_measurements,
    write_measurement_report,
    write_preview_capture,
)
from livervessels.outputs.dicom_seg import SEG_FILE, write_dicom_seg
from livervessels.outputs.nifti import write_masks
from livervessels.outputs.structures import COUINAUD_STRUCTURES, SEG_STRUCTURES
from livervessels.plausibility import WARNINGS_KEY
from livervessels.stage_types import CtStudy, DicomObject, DicomReports, LiverVesselResult, SegResult
from livervessels.versions import software_versions

# label maps, not masks: 1 portal / 2 hepatic; Couinaud segments 1-8
LABEL_MAPS = {"liver_vessels_labeled", "liver_vessels_skeleton_labeled", LABEL_MAP_NAME}
PREVIEW_FILE = "preview_liver_vessels.png"
STATISTICS_FILE = "statistics.json"


def seg_series_description(split_qc: dict, enhancement: dict | None = None) -> str:
    """Series description carrying the split's QC headline, so a PACS user sees it in the series list;
    when no vessel analysis was made (no liver in view) it says so whether or not the split ran."""
    text = "Liver vessels RUO"
    if split_qc.get("skipped") or (enhancement or {}).get("skipped"):
        return text + " NO LIVER CHECK QC"
    if split_qc.get("total_vessel_voxels"):
        text += f" portal {split_qc.get('portal_fraction', 0):.0%} hepatic {split_qc.get('hepatic_fraction', 0):.0%}"
        confidence = split_qc.get("confidence")
        if isinstance(confidence, dict):
            confidence = confidence.get("overall")
        if isinstance(confidence, (int, float)):
            text += f" conf {confidence:.2f}"
        if split_qc.get("flags"):
            text += " CHECK QC"
    return text[:64]


def reported_masks(result: LiverVesselResult) -> dict:
    """The masks the SEG and statistics report: every mask, not the label maps, and the Couinaud
    segments one mask each."""
    masks = {k: v for k, v in result.masks.items() if k not in LABEL_MAPS}
    if LABEL_MAP_NAME in result.masks:
        masks.update(segment_masks(result.masks[LABEL_MAP_NAME]))
    return masks


def write_study_seg(out_dir: Path, study: CtStudy, result: LiverVesselResult) -> SegResult:
    """The DICOM SEG of all non-empty structures, referencing the selected series."""
    plan = result.plan
    return write_dicom_seg(
        reported_masks(result), study.series_volume.sorted_datasets, Path(out_dir) / SEG_FILE,
        structures=SEG_STRUCTURES + COUINAUD_STRUCTURES,
        algorithm_name=plan.algorithm_name,
        series_description=seg_series_description(result.split_qc, result.enhancement),
        unreferenceable_uids=study.selection.selected.derived_sop_uids,
    )


def write_dicom_reports(out_dir: Path, study: CtStudy, result: LiverVesselResult, seg: SegResult) -> DicomReports:
    """The SRs from out_dir/statistics.json and the SC from the preview PNG, beside the SEG; each is
    skipped (with the reason) when what it is made of was not written."""
    out_dir = Path(out_dir)
    plan = result.plan
    datasets = study.series_volume.sorted_datasets
    stats_path, preview_path = out_dir / STATISTICS_FILE, out_dir / PREVIEW_FILE
    algorithm_name = plan.algorithm_name
    if seg.path is None:
        sr = key_sr = DicomObject(None, skipped_reason=f"no DICOM SEG to reference ({seg.skipped_reason})")
    elif not stats_path.is_file():
        sr = key_sr = DicomObject(None, skipped_reason="statistics were not computed (--statistics)")
    else:
        statistics = json.loads(stats_path.read_text())
        written = hd.seg.segread(seg.path)  # read once for both reports
        sr = write_measurement_report(statistics, result.split_qc, written, datasets, out_dir / SR_FILE,
                                      algorithm_name=algorithm_name)
        key_sr = write_key_measurements(statistics, written, datasets, out_dir / KEY_SR_FILE,
                                        algorithm_name=algorithm_name)
    if seg.path is None:  # the same reason: sources whose UIDs had to be invented cannot be referenced
        sc = DicomObject(None, skipped_reason=f"not written without a SEG ({seg.skipped_reason})")
    elif not preview_path.is_file():
        sc = DicomObject(None, skipped_reason="no preview was rendered (--preview)")
    else:
        sc = write_preview_capture(preview_path, datasets, out_dir / SC_FILE)
    return DicomReports(sr, sc, key_sr)


def write_reports(out_dir: Path, input_report: dict, spacing, result: LiverVesselResult, seg: SegResult,
                  dicom_reports: DicomReports | None = None, run_timings: dict | None = None) -> dict:
    """qc.json and enhanced_liver_vessels_metadata.json, and the provenance stamped on statistics.json
    (written before the DICOM objects' UIDs were known); returns the QC report.

    run_timings: the caller's stage timings ({"stages": {name: s}, "total": s}), for qc.json.
    """
    out_dir = Path(out_dir)
    uids = {"seg": seg.sop_instance_uid,
            "sr": dicom_reports.sr.sop_instance_uid if dicom_reports else None,
            "sc": dicom_reports.sc.sop_instance_uid if dicom_reports else None,
            "key_sr": dicom_reports.key_sr.sop_instance_uid if dicom_reports else None}
    prov = qc_report.provenance(input_report, uids)
    qc_report.write_json(qc_report.stamp({**result.enhancement, "portal_hepatic_split_qc": result.split_qc}, prov),
                         out_dir / "enhanced_liver_vessels_metadata.json")
    stats_path = out_dir / STATISTICS_FILE
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        for key in ("schema_version", "provenance"):
            stats.pop(key, None)
        qc_report.write_json(qc_report.stamp(stats, prov), stats_path)
    report = qc_report.stamp(build_qc(input_report, spacing, result, seg, dicom_reports, run_timings), prov)
    qc_report.write_json(report, out_dir / qc_report.QC_FILE)
    return report


def write_study_artifacts(out_dir: Path, volume: Volume, result: LiverVesselResult, *, statistics: bool = True,
                          preview: bool = True, meshes: bool = True) -> list[Path]:
    """statistics.json, the preview PNG and meshes/<structure>.stl."""
    from livervessels.outputs.measurements import structure_statistics
    from livervessels.outputs.meshes import export_meshes
    from livervessels.outputs.preview import COUINAUD_PREVIEW_FILE, render_couinaud_preview, render_preview

    out_dir = Path(out_dir)
    masks = {k: v for k, v in result.masks.items() if k not in LABEL_MAPS}
    written = []
    if statistics:
        stats = structure_statistics(reported_masks(result), volume)
        if result.couinaud.get("volumes"):
            stats["couinaud_segments"] = {"method": result.couinaud["method"], "volumes": result.couinaud["volumes"]}
            if "future_liver_remnant" in result.couinaud:
                stats["couinaud_segments"]["future_liver_remnant"] = result.couinaud["future_liver_remnant"]
        written.append(qc_report.write_json(stats, out_dir / STATISTICS_FILE))
    if preview:
        written.append(render_preview(volume, masks, out_dir / PREVIEW_FILE, title="Liver vessels",
                                      split_qc=result.split_qc))
        if LABEL_MAP_NAME in result.masks:
            hilum = (result.couinaud.get("landmarks") or {}).get("hilum_mm")
            written.append(render_couinaud_preview(
                volume, result.masks[LABEL_MAP_NAME],
                {k: result.masks[k] for k in ("portal_vein_branches", "hepatic_veins") if k in result.masks},
                out_dir / COUINAUD_PREVIEW_FILE, hilum_z_mm=None if hilum is None else hilum[2]))
    if meshes:
        written += export_meshes({k: v for k, v in masks.items() if k != "liver_vessels"}, volume.affine,
                                 out_dir / "meshes")
    return written


def write_study_outputs(out_dir: Path, study: CtStudy, result: LiverVesselResult, *,
                        statistics: bool = True, preview: bool = True, meshes: bool = True,
                        run_timings: dict | None = None) -> dict:
    """Everything the app writes: SEG, NIfTI masks, metadata, QC, statistics, preview, meshes."""
    seg = write_study_seg(out_dir, study, result)
    write_masks(result.masks, study.volume.affine, out_dir)
    write_study_artifacts(out_dir, study.volume, result, statistics=statistics, preview=preview, meshes=meshes)
    reports = write_dicom_reports(out_dir, study, result, seg)
    return write_reports(out_dir, study.input_report(), study.volume.spacing, result, seg, reports, run_timings)


def build_qc(input_report: dict, spacing, result: LiverVesselResult, seg: SegResult,
             dicom_reports: DicomReports | None = None, run_timings: dict | None = None) -> dict:
    structures = qc_report.structure_summary(
        {k: v for k, v in result.masks.items() if k not in LABEL_MAPS}, spacing)
    warnings = []
    if result.plan.note:
        warnings.append(result.plan.note)
    repairs = input_report.get("uid_repairs", {})
    if any(repairs.values()):
        warnings.append("source series lacked UIDs: derived stable replacements (see input.uid_repairs); "
                        "the SEG references source instances by the SOP Instance UIDs of their file meta")
    # the plausibility check's warnings (coarse voxels, replaced NaN): NIfTI report or selected series
    warnings += input_report.get(WARNINGS_KEY, []) + input_report.get("selected_series", {}).get(WARNINGS_KEY, [])
    if input_report.get("files_ignored"):
        warnings.append(f"{len(input_report['files_ignored'])} non-DICOM or unreadable file(s) ignored")
    if result.split_qc.get("flags") and not result.split_qc.get("skipped"):  # skipped: said below
        warnings.append(f"portal/hepatic split flags: {', '.join(result.split_qc['flags'])}; review the split "
                        "(confidence and least confident branches in portal_hepatic_split) before use")
    warnings += field_of_view_warnings(result.masks, spacing)
    if phase_warning(result.contrast_phase):
        warnings.append(phase_warning(result.contrast_phase))
    if result.couinaud.get("refused"):
        warnings.append(f"Couinaud segments not derived: {result.couinaud['refused']}")
    remnant = result.couinaud.get("future_liver_remnant") or {}
    if remnant.get("refused"):
        warnings.append(f"future liver remnant not given: {remnant['refused']}")
    agreement = result.couinaud.get("agreement_with_liver_segments_model") or {}
    if agreement.get("segments_below"):
        warnings.append(f"Couinaud segments {', '.join(agreement['segments_below'])} from the veins and from the "
                        f"liver_segments model disagree (Dice below {agreement['min_dice']}): check the segments "
                        "before planning with them")
    empty = [k for k, v in structures.items() if v["empty"]]
    if empty:
        warnings.append(f"empty structures: {', '.join(empty)}")
    return {
        "software": software_versions(),
        "research_use_only": True,
        "input": input_report,
        "models": {"plan": result.plan.name, "support_task": result.plan.support_task,
                   "vessel_task": result.plan.vessel_task,
                   "mask_sources": {k: v for k, v in result.sources.items() if k not in ("compute", "checkpoints")},
                   "compute": result.sources.get("compute"),  # device and network precision used
                   "checkpoints": result.sources.get("checkpoints", [])},  # folder and SHA-256 of each model
        "structures": structures,
        "dicom_seg": {"file": seg.path.name if seg.path else None, "segments": seg.segments,
                      "empty_segments_omitted": seg.empty_segments, "skipped_reason": seg.skipped_reason,
                      "sop_instance_uid": seg.sop_instance_uid},
        **({f"dicom_{kind}": {"file": obj.path.name if obj.path else None, "skipped_reason": obj.skipped_reason,
                              "sop_instance_uid": obj.sop_instance_uid, "series_instance_uid": obj.series_instance_uid}
            for kind, obj in (("sr", dicom_reports.sr), ("key_sr", dicom_reports.key_sr), ("sc", dicom_reports.sc))}
           if dicom_reports else {}),
        "enhancement": {k: result.enhancement[k]
                        for k in ("method", "voxels", "fallbacks_used", "skipped", "raw_vessel_voxels_not_written")
                        if k in result.enhancement},
        "portal_hepatic_split": result.split_qc,
        "contrast_phase": result.contrast_phase,
        **({"couinaud": result.couinaud} if result.couinaud else {}),
        # the analysis steps, and the run's stages up to this report as the caller timed them
        "timings_s": {"analysis": result.timings, **(run_timings or {})},
        "warnings": warnings,
    }
