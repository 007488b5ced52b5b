"""The liver vessel pipeline as plain functions: the app's operators, the CLI and the API call these.

study folder -> CT series -> volume -> support labels + raw vessels (nnU-Net) -> enhancement ->
portal/hepatic split -> outputs (DICOM SEG, NIfTI, QC JSON).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livervessels import model_store
from livervessels.dicom.scan import DicomScan, scan_dicom_folder
from livervessels.dicom.selection import SeriesSelection, select_ct_series
from livervessels.dicom.volume import SeriesVolume, build_volume
from livervessels.enhancement import enhance_liver_vessels
from livervessels.errors import ModelNotFoundError
from livervessels.geometry import Volume
from livervessels.inference import segment
from livervessels.outputs import qc as qc_report
from livervessels.outputs.dicom_seg import SEG_FILE, SegResult, write_dicom_seg
from livervessels.outputs.nifti import write_masks
from livervessels.portal_hepatic import HEPATIC, PORTAL, split_portal_hepatic
from livervessels.tasks import TASKS

log = logging.getLogger(__name__)

SUPPORT_CLASSES = ["liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"]
LABEL_MAPS = {"liver_vessels_labeled", "liver_vessels_skeleton_labeled"}  # 1 portal / 2 hepatic, not masks


@dataclass
class CtStudy:
    """The selected CT series of a DICOM folder, decoded."""

    scan: DicomScan
    selection: SeriesSelection
    series_volume: SeriesVolume

    @property
    def volume(self) -> Volume:
        return self.series_volume.volume

    def input_report(self) -> dict:
        return {
            "files_ignored": [{"file": f, "reason": r} for f, r in self.scan.ignored_files],
            "series_found": [v.as_dict() for v in self.selection.verdicts],
            "selected_series": {
                **{k: v for k, v in self.volume.meta.items() if k != "sop_instance_uids"},
                "instances": len(self.series_volume.sorted_datasets),
                "shape": list(self.volume.shape),
                "spacing_mm": [round(s, 4) for s in self.volume.spacing],
                "affine_ras": np.round(self.volume.affine, 5).tolist(),
            },
            "uid_repairs": self.scan.repairs.as_dict(),
        }


def load_ct_study(folder: str | Path) -> CtStudy:
    """Scan a DICOM folder, select the CT series, build its volume (InputError when impossible)."""
    scan = scan_dicom_folder(folder)
    selection = select_ct_series(scan)
    return CtStudy(scan, selection, build_volume(selection.selected))


@dataclass
class ModelPlan:
    """Which tasks provide the support labels and the raw vessel mask."""

    name: str  # "official" or "demo"
    support_task: str
    vessel_task: str
    note: str = ""


def choose_model_plan(model_dirs: list | None = None, prefer: str | None = None) -> ModelPlan:
    """Official TotalSegmentator weights when installed, else the bundled demo model."""
    roots = model_store.model_roots(model_dirs)
    official = ModelPlan("official", "total", "liver_vessels")
    demo = ModelPlan("demo", "demo_liver", "demo_liver",
                     "demo model trained on synthetic phantoms: not meaningful on real anatomy; empty or "
                     "wrong segments are expected on real CT")

    def available(plan: ModelPlan) -> bool:
        try:
            for task in {plan.support_task, plan.vessel_task}:
                t = TASKS[task]
                for i in t.parts_for(SUPPORT_CLASSES if task == "total" else None):
                    model_store.find_model_folder(t.parts[i], roots, task)
            if plan.vessel_task == "liver_vessels":
                crop = TASKS[TASKS["liver_vessels"].crop_task]
                model_store.find_model_folder(crop.parts[0], roots, crop.name)
            return True
        except ModelNotFoundError:
            return False

    if prefer == "demo":
        return demo
    if prefer == "official" or available(official):
        return official
    if available(demo):
        return demo
    return official  # segment() then raises the error naming the folder the official weights belong in


@dataclass
class LiverVesselResult:
    masks: dict[str, np.ndarray]  # every output mask on the volume grid
    enhancement: dict
    split_qc: dict
    plan: ModelPlan
    timings: dict[str, float] = field(default_factory=dict)


def segment_liver_support(volume: Volume, plan: ModelPlan, *, model_dirs=None, device=None,
                          robust_crop: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """liver, inferior_vena_cava, portal_vein_and_splenic_vein and raw liver_vessels masks."""
    t0 = time.perf_counter()
    support = segment(volume, plan.support_task, model_dirs=model_dirs, device=device,
                      roi_subset=SUPPORT_CLASSES if plan.support_task == "total" else None)
    masks = {name: support.mask(name).astype(np.uint8) for name in SUPPORT_CLASSES}
    if plan.vessel_task == plan.support_task:
        masks["liver_vessels"] = support.mask("liver_vessels").astype(np.uint8)
    else:
        vessels = segment(volume, plan.vessel_task, model_dirs=model_dirs, device=device, robust_crop=robust_crop)
        masks["liver_vessels"] = vessels.mask("liver_vessels").astype(np.uint8)
    return masks, {"segment": round(time.perf_counter() - t0, 3)}


def add_enhanced_vessels(volume: Volume, masks: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus enhanced_liver_vessels, and the enhancement metadata."""
    enhanced, metadata = enhance_liver_vessels(masks["liver_vessels"], masks.get("liver"), volume.array,
                                               volume.spacing)
    return {**masks, "enhanced_liver_vessels": enhanced}, metadata


def add_portal_hepatic_split(volume: Volume, masks: dict[str, np.ndarray], *, use_skeleton: bool = True,
                             min_component_size: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus portal_vein_branches, hepatic_veins, liver_vessels_labeled (and the labelled
    skeleton when computed), and the split QC."""
    split = split_portal_hepatic(
        masks["enhanced_liver_vessels"], volume.array, volume.spacing, liver=masks.get("liver"),
        portal_vein=masks.get("portal_vein_and_splenic_vein"), ivc=masks.get("inferior_vena_cava"),
        use_skeleton=use_skeleton, min_component_size=min_component_size)
    out = {
        **masks,
        "portal_vein_branches": (split.labels == PORTAL).astype(np.uint8),
        "hepatic_veins": (split.labels == HEPATIC).astype(np.uint8),
        "liver_vessels_labeled": split.labels,
    }
    if split.skeleton_labels is not None:
        out["liver_vessels_skeleton_labeled"] = split.skeleton_labels
    return out, split.qc


def run_liver_vessels(volume: Volume, *, model_dirs=None, device=None, plan: ModelPlan | None = None,
                      robust_crop: bool = False) -> LiverVesselResult:
    """All masks for a volume."""
    plan = plan or choose_model_plan(model_dirs)
    masks, timings = segment_liver_support(volume, plan, model_dirs=model_dirs, device=device,
                                           robust_crop=robust_crop)
    t = time.perf_counter()
    masks, enhancement = add_enhanced_vessels(volume, masks)
    masks, split_qc = add_portal_hepatic_split(volume, masks)
    timings["enhance_and_split"] = round(time.perf_counter() - t, 3)
    return LiverVesselResult(masks, enhancement, split_qc, plan, timings)


def write_study_seg(out_dir: Path, study: CtStudy, result: LiverVesselResult) -> SegResult:
    """The DICOM SEG of all non-empty structures, referencing the selected series."""
    plan = result.plan
    return write_dicom_seg(
        result.masks, study.series_volume.sorted_datasets, Path(out_dir) / SEG_FILE,
        algorithm_name=f"livervessels {plan.name} ({plan.support_task}+{plan.vessel_task})",
        unreferenceable_uids=study.selection.selected.derived_sop_uids,
    )


def write_reports(out_dir: Path, study: CtStudy, result: LiverVesselResult, seg: SegResult) -> dict:
    """qc.json and enhanced_liver_vessels_metadata.json; returns the QC report."""
    out_dir = Path(out_dir)
    qc_report.write_json({**result.enhancement, "portal_hepatic_split_qc": result.split_qc},
                         out_dir / "enhanced_liver_vessels_metadata.json")
    report = build_qc(study, result, seg)
    qc_report.write_json(report, out_dir / qc_report.QC_FILE)
    return report


def write_study_outputs(out_dir: Path, study: CtStudy, result: LiverVesselResult, *,
                        write_seg: bool = True, write_nifti: bool = True) -> dict:
    """SEG, NIfTI masks, enhancement metadata and QC JSON into out_dir (a staging folder)."""
    seg = write_study_seg(out_dir, study, result) if write_seg else SegResult(None, skipped_reason="not requested")
    if write_nifti:
        write_masks(result.masks, study.volume.affine, out_dir)
    return write_reports(out_dir, study, result, seg)


def build_qc(study: CtStudy, result: LiverVesselResult, seg: SegResult) -> dict:
    structures = qc_report.structure_summary(
        {k: v for k, v in result.masks.items() if k not in LABEL_MAPS}, study.volume.spacing)
    warnings = []
    if result.plan.note:
        warnings.append(result.plan.note)
    if study.scan.repairs.any():
        warnings.append("source series lacked UIDs: derived stable replacements (see input.uid_repairs); "
                        "the SEG references source instances by the SOP Instance UIDs of their file meta")
    if study.scan.ignored_files:
        warnings.append(f"{len(study.scan.ignored_files)} non-DICOM or unreadable file(s) ignored")
    empty = [k for k, v in structures.items() if v["empty"]]
    if empty:
        warnings.append(f"empty structures: {', '.join(empty)}")
    return {
        "software": qc_report.software_versions(),
        "research_use_only": True,
        "input": study.input_report(),
        "models": {"plan": result.plan.name, "support_task": result.plan.support_task,
                   "vessel_task": result.plan.vessel_task},
        "structures": structures,
        "dicom_seg": {"file": seg.path.name if seg.path else None, "segments": seg.segments,
                      "empty_segments_omitted": seg.empty_segments, "skipped_reason": seg.skipped_reason,
                      "sop_instance_uid": seg.sop_instance_uid},
        "enhancement": {k: result.enhancement.get(k) for k in ("method", "voxels", "fallbacks_used")},
        "portal_hepatic_split": result.split_qc,
        "timings_s": result.timings,
        "warnings": warnings,
    }
