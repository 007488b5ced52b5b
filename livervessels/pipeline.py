"""The liver vessel pipeline as plain functions: the app's operators, the CLI and the API call these.

study folder -> CT series -> volume -> support labels + raw vessels (nnU-Net) -> enhancement ->
portal/hepatic split -> outputs (DICOM SEG, NIfTI, QC JSON).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import highdicom as hd
import numpy as np

from livervessels import model_store, nnunet_runner
from livervessels.compute import as_compute
from livervessels.dicom.scan import DicomScan, scan_dicom_folder
from livervessels.dicom.selection import SeriesSelection, select_ct_series
from livervessels.dicom.volume import SeriesVolume, build_volume
from livervessels.enhancement import METHOD as ENHANCEMENT_METHOD
from livervessels.enhancement import enhance_liver_vessels
from livervessels.errors import InputError, ModelNotFoundError
from livervessels.geometry import CanonicalFrame, Volume, reorient_to_grid
from livervessels.inference import segment
from livervessels.outputs import qc as qc_report
from livervessels.outputs.dicom_reports import (
    KEY_SR_FILE,
    SC_FILE,
    SR_FILE,
    DicomObject,
    write_key_measurements,
    write_measurement_report,
    write_preview_capture,
)
from livervessels.outputs.dicom_seg import SEG_FILE, SegResult, write_dicom_seg
from livervessels.outputs.nifti import write_masks
from livervessels.plausibility import WARNINGS_KEY
from livervessels.portal_hepatic import HEPATIC, PORTAL, split_portal_hepatic
from livervessels.tasks import TASKS, Task
from livervessels.versions import software_versions

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
    return CtStudy(scan, selection, build_volume(selection.selected, scan.unreadable_files))


@dataclass
class ModelPlan:
    """Which tasks provide the support labels and the raw vessel mask."""

    name: str  # "official" or "demo"
    support_task: str
    vessel_task: str
    note: str = ""


# every mask came from a support folder: no model ran
SUPPORT_FILES_PLAN = ModelPlan("support files", "none", "none")


def choose_model_plan(model_dirs: list | None = None, prefer: str | None = None,
                      allow_demo: bool | None = None) -> ModelPlan:
    """Official TotalSegmentator weights when installed, else the bundled demo model.

    allow_demo: whether the demo model may be used; None asks model_store.demo_model_policy
    (refused in a MAP and in clinical mode).

    Raises:
        InputError: a folder named in model_dirs is missing or holds no model; or the official
            weights are missing where the demo model is not allowed.
    """
    model_store.check_model_dirs(model_dirs)
    roots = model_store.model_roots(model_dirs)
    official = ModelPlan("official", "total", "liver_vessels")
    demo = ModelPlan("demo", "demo_liver", "demo_liver",
                     "demo model trained on synthetic phantoms: not meaningful on real anatomy; empty or "
                     "wrong segments are expected on real CT")
    why = "allowed by the caller"
    if allow_demo is None:
        allow_demo, why = model_store.demo_model_policy()

    def missing(plan: ModelPlan) -> str | None:
        """The first missing model's message, or None when the plan can run."""
        try:
            for task in {plan.support_task, plan.vessel_task}:
                t = TASKS[task]
                for i in t.parts_for(SUPPORT_CLASSES if task == "total" else None):
                    model_store.find_model_folder(t.parts[i], roots, task)
            if plan.vessel_task == "liver_vessels":
                crop = TASKS[TASKS["liver_vessels"].crop_task]
                model_store.find_model_folder(crop.parts[0], roots, crop.name)
            return None
        except ModelNotFoundError as exc:
            return str(exc)

    official_missing = missing(official) if prefer != "official" else None
    if not allow_demo and (prefer == "demo" or official_missing):
        needed = ", ".join(dict.fromkeys(t.parts[i].folder.split("/")[0] for t, i in plan_model_parts(official)))
        raise InputError(
            f"the demo model may not be used here ({why}): it was trained on synthetic phantoms only; "
            f"install TotalSegmentator's official weights ({needed}) in {roots[0]}, or bake them into the "
            f"MAP with scripts/package_map.sh --weights DIR" + (f"; {official_missing}" if official_missing else ""))
    if prefer == "demo":
        return demo
    if prefer == "official" or official_missing is None:
        return official
    if missing(demo) is None:
        return demo
    return official  # segment() then raises the error naming the folder the official weights belong in


def check_official_weights(folder: str | Path) -> list[Path]:
    """The trainer folders of every official model the liver-vessel run needs, all found in folder
    itself (no other location searched): what a MAP must carry.

    Raises:
        InputError: folder is missing, or a model is not in it in TotalSegmentator's layout.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"weights folder not found: {folder}")
    parts = plan_model_parts(ModelPlan("official", "total", "liver_vessels"))
    return list(dict.fromkeys(model_store.find_model_folder(t.parts[i], [folder], t.name) for t, i in parts))


def plan_model_parts(plan: ModelPlan) -> list[tuple[Task, int]]:
    """Every (task, part index) a plan's segmentation runs, crop models included."""
    parts: list[tuple[Task, int]] = []
    for name in dict.fromkeys((plan.support_task, plan.vessel_task)):
        if name not in TASKS:
            continue
        task = TASKS[name]
        parts += [(task, i) for i in task.parts_for(SUPPORT_CLASSES if name == "total" else None)]
        crop = task.crop_task or ("total_fastest" if name == "total" else None)  # roi_subset crop for total
        if crop:
            parts.append((TASKS[crop], 0))
    return parts


def preload_models(plan: ModelPlan, model_dirs=None, device=None) -> threading.Thread:
    """Load the plan's models on a background thread (into the per-process cache segment() uses), so
    loading overlaps reading and decoding the study. Missing or unreadable models are left for
    segment() to report."""
    compute = as_compute(device)

    def load() -> None:
        roots = model_store.model_roots(model_dirs)
        for task, i in plan_model_parts(plan):
            try:
                folder = model_store.find_model_folder(task.parts[i], roots, task.name)
                nnunet_runner.load_model(folder, task.parts[i].fold, compute.device, task.step_size, task.mirroring,
                                         compute.precision)
            except Exception as exc:  # noqa: BLE001  (segment() raises the clear error later)
                log.debug("preloading %s skipped: %s", task.name, exc)

    thread = threading.Thread(target=load, name="livervessels-model-preload", daemon=True)
    thread.start()
    return thread


SUPPORT_FILES = SUPPORT_CLASSES + ["liver_vessels"]


def load_support_dir(folder: str | Path, volume: Volume) -> dict[str, np.ndarray]:
    """The support masks present in folder (liver, portal_vein_and_splenic_vein, inferior_vena_cava,
    and liver_vessels as the raw vessel mask), brought onto the volume's grid."""
    import nibabel as nib

    from livervessels.errors import InputError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--split_support_dir {folder} is not a folder; it must hold "
                         f"{', '.join(n + '.nii.gz' for n in SUPPORT_FILES)}")
    masks = {}
    for name in SUPPORT_FILES:
        path = folder / f"{name}.nii.gz"
        if path.is_file():
            img = nib.load(str(path))
            masks[name] = reorient_to_grid(np.asanyarray(img.dataobj) > 0, img.affine, volume.shape, volume.affine,
                                           what=str(path)).astype(np.uint8)
    return masks


def collect_masks(volume: Volume, *, plan: ModelPlan | None = None, model_dirs=None, device=None,
                  robust_crop: bool = False, support_dir: str | Path | None = None,
                  generate_support: bool = False) -> LiverVesselResult:
    """Support labels and the raw vessel mask, from a support folder and/or the models: the first
    stage's result (no enhancement or split yet).

    With a support folder: its masks are used; liver_vessels.nii.gz there means no vessel model
    runs; missing support labels are produced by the models only with generate_support.
    Without one: everything comes from the models. The result's plan is the model plan used, or
    SUPPORT_FILES_PLAN when every mask came from the folder; its sources say where each mask came
    from.

    Raises:
        InputError: unreadable or mismatched support masks, or bad input.
        ModelNotFoundError: the models needed are not installed.
    """
    t = time.perf_counter()
    if support_dir is None:
        plan = plan or choose_model_plan(model_dirs)
        masks, details = segment_liver_support(volume, plan, model_dirs=model_dirs, device=device,
                                               robust_crop=robust_crop)
        sources = {"support": f"model ({plan.support_task})", "vessels": f"model ({plan.vessel_task})",
                   "compute": as_compute(device).describe(), "checkpoints": details["checkpoints"]}
        return LiverVesselResult(masks, plan=plan, timings={"segment": details["segment"]}, sources=sources)
    masks = load_support_dir(support_dir, volume)
    sources = {name: f"file {Path(support_dir) / (name + '.nii.gz')}" for name in masks}
    generate = [n for n in SUPPORT_CLASSES if n not in masks] if generate_support else []
    need_vessels = "liver_vessels" not in masks
    used = SUPPORT_FILES_PLAN
    if generate or need_vessels:
        used = plan or choose_model_plan(model_dirs)
        generated, details = segment_liver_support(volume, used, model_dirs=model_dirs, device=device,
                                                   robust_crop=robust_crop, support=generate, vessels=need_vessels)
        sources["checkpoints"] = details["checkpoints"]
        for name, mask in generated.items():
            masks[name] = mask
            sources[name] = f"model ({used.vessel_task if name == 'liver_vessels' else used.support_task})"
        sources["compute"] = as_compute(device).describe()
    return LiverVesselResult(masks, plan=used, timings={"segment": round(time.perf_counter() - t, 3)},
                             sources=sources)


@dataclass
class LiverVesselResult:
    """What the graph's computing nodes hand on, stage after stage (inference -> repair -> split),
    and what the writers read: each stage fills its own fields."""

    masks: dict[str, np.ndarray]  # every mask so far, on the volume grid
    plan: ModelPlan  # the models that made the masks (SUPPORT_FILES_PLAN: none, all from files)
    enhancement: dict = field(default_factory=dict)  # the repair's metadata (add_enhanced_vessels)
    split_qc: dict = field(default_factory=dict)  # the split's QC (add_portal_hepatic_split)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    sources: dict = field(default_factory=dict)  # where each input mask came from


def segment_liver_support(volume: Volume, plan: ModelPlan, *, model_dirs=None, device=None,
                          robust_crop: bool = False, support: list[str] | None = None,
                          vessels: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Masks of the requested support classes (default all three) and of the raw liver_vessels, and
    {"segment": seconds, "checkpoints": [{task, folder, sha256} of every model used]}."""
    support = SUPPORT_CLASSES if support is None else support
    t0 = time.perf_counter()
    masks: dict[str, np.ndarray] = {}
    checkpoints: list[dict] = []
    same_model = plan.vessel_task == plan.support_task
    if support or (vessels and same_model):
        labels = segment(volume, plan.support_task, model_dirs=model_dirs, device=device,
                         roi_subset=support if plan.support_task == "total" else None)
        masks.update({name: labels.mask(name).astype(np.uint8) for name in support})
        checkpoints += labels.models
        if vessels and same_model:
            masks["liver_vessels"] = labels.mask("liver_vessels").astype(np.uint8)
    if vessels and not same_model:
        labels = segment(volume, plan.vessel_task, model_dirs=model_dirs, device=device, robust_crop=robust_crop)
        masks["liver_vessels"] = labels.mask("liver_vessels").astype(np.uint8)
        checkpoints += labels.models
    unique = list({c["folder"]: c for c in checkpoints}.values())
    return masks, {"segment": round(time.perf_counter() - t0, 3), "checkpoints": unique}


def add_enhanced_vessels(volume: Volume, masks: dict[str, np.ndarray], **options) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus enhanced_liver_vessels, and the enhancement metadata (options go to the algorithm).

    When the liver mask shows no liver in the field of view (under NO_LIVER_ML) there is nothing to
    repair: the raw and enhanced vessel masks come back empty and the metadata says why.

    Raises:
        InputError: the liver mask is empty and options hold fallback_full_volume=False.
    """
    absent = liver_absent_reason(masks, volume.spacing)
    if absent is not None:
        if not options.get("fallback_full_volume", True) and not np.any(masks["liver"]):
            raise InputError("the liver mask is empty, so vessel enhancement cannot be restricted to the liver; "
                             "check that the scan covers the upper abdomen (or drop --no_fallback_full_liver)")
        raw_voxels = int(np.count_nonzero(masks.get("liver_vessels", 0)))
        empty = np.zeros(volume.shape, np.uint8)
        return {**masks, "liver_vessels": empty, "enhanced_liver_vessels": empty}, {
            "method": ENHANCEMENT_METHOD, "voxels": 0, "volume_ml": 0.0, "skipped": absent,
            "raw_vessel_voxels_not_written": raw_voxels, "fallbacks_used": [absent]}
    # the IVC and the portal / splenic vein trunk, where segmented: the vessels never grow into them
    trunks = [masks[k] > 0 for k in ("inferior_vena_cava", "portal_vein_and_splenic_vein") if k in masks]
    exclude = np.logical_or.reduce(trunks) if trunks else None
    # in the closest RAS orientation, as the split: the same repair however the slices were stored
    frame = CanonicalFrame(volume.affine, volume.shape, volume.spacing)
    enhanced, metadata = enhance_liver_vessels(frame.to(masks["liver_vessels"]), frame.to(masks.get("liver")),
                                               frame.to(volume.array), frame.spacing, exclude=frame.to(exclude),
                                               **options)
    enhanced = frame.back(enhanced)
    return {**masks, "enhanced_liver_vessels": enhanced}, metadata


def add_portal_hepatic_split(volume: Volume, masks: dict[str, np.ndarray], *, use_skeleton: bool = True,
                             min_component_size: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus portal_vein_branches, hepatic_veins, liver_vessels_labeled (and the labelled
    skeleton when computed), and the split QC; all empty, with the flag no_liver_in_field_of_view,
    when the liver mask shows no liver (under NO_LIVER_ML)."""
    absent = liver_absent_reason(masks, volume.spacing)
    if absent is not None:
        empty = np.zeros(volume.shape, np.uint8)
        return {**masks, "portal_vein_branches": empty, "hepatic_veins": empty, "liver_vessels_labeled": empty}, {
            "skipped": absent, "total_vessel_voxels": 0, "flags": ["no_liver_in_field_of_view"]}
    split = split_portal_hepatic(
        masks["enhanced_liver_vessels"], volume.array, volume.spacing, liver=masks.get("liver"),
        portal_vein=masks.get("portal_vein_and_splenic_vein"), ivc=masks.get("inferior_vena_cava"),
        use_skeleton=use_skeleton, min_component_size=min_component_size, affine=volume.affine)
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
                      robust_crop: bool = False, support_dir: str | Path | None = None,
                      generate_support: bool = False, enhance_options: dict | None = None, split: bool = True,
                      split_options: dict | None = None) -> LiverVesselResult:
    """All masks for a volume: support labels, raw and enhanced vessels, and (with split) the
    portal/hepatic labels.

    device: a Compute or a device request (livervessels.compute), used by inference and the repair.

    Raises:
        InputError: bad input, device or support masks.
        ModelNotFoundError: no usable models.
    """
    compute = as_compute(device)  # resolved once: the same device for inference and the repair
    enhance_options = {"device": compute.device, **(enhance_options or {})}
    t = time.perf_counter()
    result = collect_masks(volume, plan=plan, model_dirs=model_dirs, device=compute, robust_crop=robust_crop,
                           support_dir=support_dir, generate_support=generate_support)
    result.timings["segment"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    masks, enhancement = add_enhanced_vessels(volume, result.masks, **enhance_options)
    result = replace(result, masks=masks, enhancement=enhancement)
    result.timings["enhance"] = round(time.perf_counter() - t, 3)
    if split:
        t = time.perf_counter()
        masks, split_qc = add_portal_hepatic_split(volume, result.masks, **(split_options or {}))
        result = replace(result, masks=masks, split_qc=split_qc)
        result.timings["split"] = round(time.perf_counter() - t, 3)
    return result


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


def write_study_seg(out_dir: Path, study: CtStudy, result: LiverVesselResult) -> SegResult:
    """The DICOM SEG of all non-empty structures, referencing the selected series."""
    plan = result.plan
    return write_dicom_seg(
        result.masks, study.series_volume.sorted_datasets, Path(out_dir) / SEG_FILE,
        algorithm_name=f"livervessels {plan.name} ({plan.support_task}+{plan.vessel_task})",
        series_description=seg_series_description(result.split_qc, result.enhancement),
        unreferenceable_uids=study.selection.selected.derived_sop_uids,
    )


@dataclass
class DicomReports:
    """The SR measurement report, its image-anchored key measurements and the preview secondary capture
    written into the study."""

    sr: DicomObject
    sc: DicomObject
    key_sr: DicomObject


def write_dicom_reports(out_dir: Path, study: CtStudy, result: LiverVesselResult, seg: SegResult) -> DicomReports:
    """The SRs from out_dir/statistics.json and the SC from the preview PNG, beside the SEG; each is
    skipped (with the reason) when what it is made of was not written."""
    out_dir = Path(out_dir)
    plan = result.plan
    datasets = study.series_volume.sorted_datasets
    stats_path, preview_path = out_dir / STATISTICS_FILE, out_dir / PREVIEW_FILE
    algorithm_name = f"livervessels {plan.name} ({plan.support_task}+{plan.vessel_task})"
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


PREVIEW_FILE = "preview_liver_vessels.png"
STATISTICS_FILE = "statistics.json"


def write_study_artifacts(out_dir: Path, volume: Volume, result: LiverVesselResult, *, statistics: bool = True,
                          preview: bool = True, meshes: bool = True) -> list[Path]:
    """statistics.json, the preview PNG and meshes/<structure>.stl."""
    from livervessels.outputs.measurements import structure_statistics
    from livervessels.outputs.meshes import export_meshes
    from livervessels.outputs.preview import render_preview

    out_dir = Path(out_dir)
    masks = {k: v for k, v in result.masks.items() if k not in LABEL_MAPS}
    written = []
    if statistics:
        written.append(qc_report.write_json(structure_statistics(masks, volume), out_dir / STATISTICS_FILE))
    if preview:
        written.append(render_preview(volume, masks, out_dir / PREVIEW_FILE, title="Liver vessels",
                                      split_qc=result.split_qc))
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


def nifti_input_report(path, volume: Volume) -> dict:
    return {"file": str(path), "shape": list(volume.shape), "spacing_mm": [round(s, 4) for s in volume.spacing],
            "affine_ras": np.round(volume.affine, 5).tolist(),
            WARNINGS_KEY: list(volume.meta.get(WARNINGS_KEY, []))}


# A whole adult liver is 1-2 l; under this much found, the scan holds only part of it (or none).
MIN_LIVER_ML = 300.0
# Under this much (a tenth of a small adult liver) the scan holds at most the dome or the tip: neither
# the hilum nor the hepatic vein confluence is there, so no vessel analysis is made at all.
NO_LIVER_ML = 100.0
# Over this much the liver mask almost surely holds other tissue: even gross hepatomegaly rarely passes
# 5 l (polycystic livers can, and then the warning is a prompt to look, not a refusal). The repair works
# on the liver mask's box, so such a mask also costs time and memory in proportion.
MAX_LIVER_ML = 5000.0


def liver_volume_ml(masks: dict[str, np.ndarray], spacing) -> float | None:
    """The liver mask's volume in ml, or None when there is no liver mask."""
    liver = masks.get("liver")
    return None if liver is None else float(np.count_nonzero(liver)) * float(np.prod(spacing)) / 1000.0


def liver_absent_reason(masks: dict[str, np.ndarray], spacing) -> str | None:
    """Why no vessel analysis can be made (the liver mask holds under NO_LIVER_ML), else None.
    Without a liver mask at all the repair works on the whole volume instead (its own fallback)."""
    volume_ml = liver_volume_ml(masks, spacing)
    if volume_ml is None or volume_ml >= NO_LIVER_ML:
        return None
    return (f"no liver in the field of view ({volume_ml:.0f} ml of liver found, under {NO_LIVER_ML:.0f} ml): no "
            "vessel analysis was made and the vessel outputs are empty; check that the scan covers the upper abdomen")
# A liver cross-section this large in the first or last slice: the liver continues beyond the scan.
CUT_LIVER_CM2 = 5.0


def field_of_view_warnings(masks: dict[str, np.ndarray], spacing) -> list[str]:
    """Warnings when the scan holds no liver, too little of it, implausibly much, or cuts it at its
    first or last slice (array axis 2): the vessel outputs and statistics then cover only what was scanned."""
    volume_ml = liver_volume_ml(masks, spacing)
    if volume_ml is None:
        return []
    absent = liver_absent_reason(masks, spacing)
    if absent is not None:
        return [absent]
    liver = np.asarray(masks["liver"]) > 0
    warnings = []
    if volume_ml > MAX_LIVER_ML:
        warnings.append(f"{volume_ml / 1000.0:.1f} l of liver found (a whole liver is 1-2 l, rarely over "
                        f"{MAX_LIVER_ML / 1000.0:.0f} l): the liver mask likely holds other tissue; check it and the "
                        "segmentation model before using the vessel outputs")
    if volume_ml < MIN_LIVER_ML:
        warnings.append(f"only {volume_ml:.0f} ml of liver found (a whole liver is 1-2 l): the scan covers part of "
                        "it, and the vessel outputs and statistics only that part")
    pixel_cm2 = float(spacing[0] * spacing[1]) / 100.0
    for name, index in (("first", 0), ("last", liver.shape[2] - 1)):
        area = float(np.count_nonzero(liver[:, :, index])) * pixel_cm2
        if area > CUT_LIVER_CM2:
            warnings.append(f"the liver is cut by the scan's {name} slice ({area:.0f} cm2 of liver there): it "
                            "continues beyond the scanned range, and so do its vessels")
    return warnings


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
        # the analysis steps, and the run's stages up to this report as the caller timed them
        "timings_s": {"analysis": result.timings, **(run_timings or {})},
        "warnings": warnings,
    }
