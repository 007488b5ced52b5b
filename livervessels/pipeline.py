"""The liver vessel analysis as plain functions: the app's operators, the CLI and the API call these.

volume -> support labels + raw vessels (nnU-Net, or a support folder) -> repair -> portal/hepatic
split, each stage adding to a LiverVesselResult. Study loading (livervessels.study), model choice
(livervessels.model_plan) and the outputs (livervessels.outputs.study_outputs) live beside it.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from livervessels.compute import as_compute
from livervessels.contrast_phase import contrast_phase_of_scan
from livervessels.couinaud import LABEL_MAP_NAME, couinaud_segments
from livervessels.enhancement import METHOD as ENHANCEMENT_METHOD
from livervessels.enhancement import repair_vessel_mask
from livervessels.errors import InputError
from livervessels.field_of_view import liver_absent_reason
from livervessels.geometry import CanonicalFrame, Volume, reorient_to_grid
from livervessels.inference import segment
from livervessels.model_plan import PHASE_CLASSES, SUPPORT_CLASSES, choose_model_plan
from livervessels.portal_hepatic import HEPATIC, PORTAL, split_portal_hepatic
from livervessels.resection import check_segments_to_remove, future_liver_remnant
from livervessels.stage_types import SUPPORT_FILES_PLAN, LiverVesselResult, ModelPlan
from livervessels.tasks import TASKS
from livervessels.timing import timed

SUPPORT_FILES = SUPPORT_CLASSES + ["liver_vessels"]
OPTIONAL_SUPPORT_FILES = PHASE_CLASSES  # read for the contrast phase when a support folder has them
COUINAUD_AGREEMENT_MIN_DICE = 0.5  # a segment on which the vessel-derived and model segments agree less is flagged


def load_support_dir(folder: str | Path, volume: Volume) -> dict[str, np.ndarray]:
    """The support masks present in folder (liver, portal_vein_and_splenic_vein, inferior_vena_cava,
    liver_vessels as the raw vessel mask, and aorta and spleen for the contrast phase), brought onto
    the volume's grid.

    Raises:
        InputError: folder is not a folder, or a mask in it cannot be brought onto the volume's grid.
    """
    import nibabel as nib

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--split_support_dir {folder} is not a folder; it must hold "
                         f"{', '.join(n + '.nii.gz' for n in SUPPORT_FILES)}")
    masks = {}
    for name in SUPPORT_FILES + OPTIONAL_SUPPORT_FILES:
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
    if support_dir is None:
        plan = plan or choose_model_plan(model_dirs)
        masks, details = segment_liver_support(volume, plan, model_dirs=model_dirs, device=device,
                                               robust_crop=robust_crop)
        sources = {"support": f"model ({plan.support_task})", "vessels": f"model ({plan.vessel_task})",
                   "compute": as_compute(device).describe(), "checkpoints": details["checkpoints"]}
        masks, phase = _take_contrast_phase(volume, masks)
        return LiverVesselResult(masks, plan=plan, timings={"segment": details["segment"]}, sources=sources,
                                 contrast_phase=phase)
    timings: dict[str, float] = {}
    with timed(timings, "segment", ndigits=3):
        masks = load_support_dir(support_dir, volume)
        sources = {name: f"file {Path(support_dir) / (name + '.nii.gz')}" for name in masks}
        generate = [n for n in SUPPORT_CLASSES if n not in masks] if generate_support else []
        need_vessels = "liver_vessels" not in masks
        used = SUPPORT_FILES_PLAN
        if generate or need_vessels:
            used = plan or choose_model_plan(model_dirs)
            generated, details = segment_liver_support(volume, used, model_dirs=model_dirs, device=device,
                                                       robust_crop=robust_crop, support=generate,
                                                       vessels=need_vessels)
            sources["checkpoints"] = details["checkpoints"]
            for name, mask in generated.items():
                masks[name] = mask
                sources[name] = f"model ({used.vessel_task if name == 'liver_vessels' else used.support_task})"
            sources["compute"] = as_compute(device).describe()
        masks, phase = _take_contrast_phase(volume, masks)
    return LiverVesselResult(masks, plan=used, timings=timings, sources=sources, contrast_phase=phase)


def _take_contrast_phase(volume: Volume, masks: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict]:
    """The contrast phase (ContrastPhase.as_qc()) from the support masks, and the masks without the
    ones read only for it (aorta, spleen: not outputs of this product)."""
    phase = contrast_phase_of_scan(volume.array, masks, volume.spacing).as_qc()
    return {k: v for k, v in masks.items() if k not in PHASE_CLASSES}, phase


def segment_liver_support(volume: Volume, plan: ModelPlan, *, model_dirs=None, device=None,
                          robust_crop: bool = False, support: list[str] | None = None,
                          vessels: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Masks of the requested support classes (default all three) and of the raw liver_vessels, and
    {"segment": seconds, "checkpoints": [{task, folder, sha256} of every model used]}."""
    support = SUPPORT_CLASSES if support is None else support
    timings: dict[str, float] = {}
    with timed(timings, "segment", ndigits=3):
        masks: dict[str, np.ndarray] = {}
        checkpoints: list[dict] = []
        same_model = plan.vessel_task == plan.support_task
        if support or (vessels and same_model):
            task = TASKS[plan.support_task]
            # the aorta and spleen for the contrast phase, where this model has them (total does)
            phase_classes = [c for c in PHASE_CLASSES if c in task.classes.values()] if support else []
            total = plan.support_task == "total"
            labels = segment(volume, task, model_dirs=model_dirs, device=device,
                             roi_subset=support if total else None, also_keep=phase_classes if total else None)
            masks.update({name: labels.mask(name).astype(np.uint8) for name in support + phase_classes})
            checkpoints += labels.models
            if vessels and same_model:
                masks["liver_vessels"] = labels.mask("liver_vessels").astype(np.uint8)
        if vessels and not same_model:
            labels = segment(volume, plan.vessel_task, model_dirs=model_dirs, device=device, robust_crop=robust_crop)
            masks["liver_vessels"] = labels.mask("liver_vessels").astype(np.uint8)
            checkpoints += labels.models
        unique = list({c["folder"]: c for c in checkpoints}.values())
    return masks, {"segment": timings["segment"], "checkpoints": unique}


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
    enhanced, metadata = repair_vessel_mask(frame.to(masks["liver_vessels"]), frame.to(masks.get("liver")),
                                            frame.to(volume.array), frame.spacing, exclude=frame.to(exclude),
                                            **options)
    enhanced = frame.back(enhanced)
    return {**masks, "enhanced_liver_vessels": enhanced}, metadata


def add_portal_hepatic_split(volume: Volume, masks: dict[str, np.ndarray], *, use_skeleton: bool = True,
                             min_component_size: int = 0,
                             contrast_phase: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus portal_vein_branches, hepatic_veins, liver_vessels_labeled (and the labelled
    skeleton when computed), and the split QC; all empty, with the flag no_liver_in_field_of_view,
    when the liver mask shows no liver (under NO_LIVER_ML). contrast_phase: the scan's
    (LiverVesselResult.contrast_phase["phase"]), for the split's intensity cue."""
    absent = liver_absent_reason(masks, volume.spacing)
    if absent is not None:
        empty = np.zeros(volume.shape, np.uint8)
        return {**masks, "portal_vein_branches": empty, "hepatic_veins": empty, "liver_vessels_labeled": empty}, {
            "skipped": absent, "total_vessel_voxels": 0, "flags": ["no_liver_in_field_of_view"]}
    split = split_portal_hepatic(
        masks["enhanced_liver_vessels"], volume.array, volume.spacing, liver=masks.get("liver"),
        portal_vein=masks.get("portal_vein_and_splenic_vein"), ivc=masks.get("inferior_vena_cava"),
        use_skeleton=use_skeleton, min_component_size=min_component_size, affine=volume.affine,
        contrast_phase=contrast_phase)
    out = {
        **masks,
        "portal_vein_branches": (split.labels == PORTAL).astype(np.uint8),
        "hepatic_veins": (split.labels == HEPATIC).astype(np.uint8),
        "liver_vessels_labeled": split.labels,
    }
    if split.skeleton_labels is not None:
        out["liver_vessels_skeleton_labeled"] = split.skeleton_labels
    return out, split.qc


def add_couinaud_segments(volume: Volume, masks: dict[str, np.ndarray], split_qc: dict, *, model_dirs=None,
                          device=None, resect: list[int] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """masks plus liver_segments_vessel (Couinaud segments 1-8 from the split's veins), and the
    segments' QC (livervessels.couinaud.CouinaudResult.as_qc()); without the label map, and with
    the reason in the QC, where the split or the landmarks do not allow it.

    Where TotalSegmentator's liver_segments weights are installed (model_dirs or the default
    locations), its segments are made too and the QC gives the Dice per segment between the two,
    flagging segments below 0.5 (the two methods disagree there: check before use). With resect
    (segment numbers), the QC adds the future liver remnant after resecting them
    (livervessels.resection.future_liver_remnant), or why it cannot be given.
    """
    if split_qc.get("skipped") or "portal_vein_branches" not in masks:
        return masks, {"refused": split_qc.get("skipped") or "no portal/hepatic split", "landmarks": None,
                       "volumes": {}}
    confidence = split_qc.get("confidence")
    if isinstance(confidence, dict):
        confidence = confidence.get("overall")
    liver = (masks["liver"] > 0) | (masks["portal_vein_branches"] > 0) | (masks["hepatic_veins"] > 0)
    if "inferior_vena_cava" in masks:
        liver &= masks["inferior_vena_cava"] == 0
    result = couinaud_segments(liver, masks["portal_vein_branches"], masks["hepatic_veins"],
                               masks.get("inferior_vena_cava"), volume.affine,
                               portal_trunk=masks.get("portal_vein_and_splenic_vein"),
                               split_confidence=confidence if isinstance(confidence, (int, float)) else None)
    if result.labels is None:
        return masks, result.as_qc()
    qc = result.as_qc()
    qc["agreement_with_liver_segments_model"] = _agreement_with_model(volume, result.labels, model_dirs, device)
    if resect:
        try:
            qc["future_liver_remnant"] = future_liver_remnant({int(k): v["ml"] for k, v in result.volumes.items()},
                                                              resect)
        except InputError as exc:  # e.g. every segment left holds no voxel: the segments still stand
            qc["future_liver_remnant"] = {"refused": str(exc)}
    return {**masks, LABEL_MAP_NAME: result.labels}, qc


def _agreement_with_model(volume: Volume, labels: np.ndarray, model_dirs, device) -> dict:
    """couinaud.agreement with the liver_segments model's answer, or why it was not made."""
    from livervessels import model_store
    from livervessels.couinaud import agreement
    from livervessels.errors import ModelNotFoundError

    task = TASKS["liver_segments"]
    try:
        folder = model_store.find_model_folder(task.parts[0], model_store.model_roots(model_dirs), task.name)
    except ModelNotFoundError:
        return {"made": False, "reason": "liver_segments weights not installed"}
    try:
        model = segment(volume, task, model_dirs=model_dirs, device=device)
    except ModelNotFoundError as exc:  # its crop model (total_fastest) missing: the segments stand without it
        return {"made": False, "reason": str(exc)}
    return {"made": True, "model": str(folder),
            **agreement(labels, np.asarray(model.array), min_dice=COUINAUD_AGREEMENT_MIN_DICE)}


def run_liver_vessels(volume: Volume, *, model_dirs=None, device=None, plan: ModelPlan | None = None,
                      robust_crop: bool = False, support_dir: str | Path | None = None,
                      generate_support: bool = False, enhance_options: dict | None = None, split: bool = True,
                      split_options: dict | None = None, couinaud: bool = False,
                      resect: list[int] | None = None) -> LiverVesselResult:
    """All masks for a volume: support labels, raw and enhanced vessels, (with split) the
    portal/hepatic labels and (with couinaud, which needs split) the vessel-derived Couinaud
    segments (resect: segments whose future liver remnant the QC and statistics give).

    device: a Compute or a device request (livervessels.compute), used by inference and the repair.

    Raises:
        InputError: bad input, device or support masks.
        ModelNotFoundError: no usable models.
    """
    if couinaud and not split:
        raise InputError("Couinaud segments are derived from the portal/hepatic split: add --split_portal_hepatic")
    if resect and not couinaud:
        raise InputError("the future liver remnant is computed on the vessel-derived Couinaud segments: add --couinaud")
    if resect:
        resect = check_segments_to_remove(resect)
    compute = as_compute(device)  # resolved once: the same device for inference and the repair
    enhance_options = {"device": compute.device, **(enhance_options or {})}
    timings: dict[str, float] = {}
    with timed(timings, "segment", ndigits=3):
        result = collect_masks(volume, plan=plan, model_dirs=model_dirs, device=compute, robust_crop=robust_crop,
                               support_dir=support_dir, generate_support=generate_support)
    with timed(timings, "enhance", ndigits=3):
        masks, enhancement = add_enhanced_vessels(volume, result.masks, **enhance_options)
    result = replace(result, masks=masks, enhancement=enhancement)
    if split:
        with timed(timings, "split", ndigits=3):
            masks, split_qc = add_portal_hepatic_split(volume, result.masks, **{
                "contrast_phase": result.contrast_phase.get("phase"), **(split_options or {})})
        result = replace(result, masks=masks, split_qc=split_qc)
    if couinaud:
        with timed(timings, "couinaud", ndigits=3):
            masks, couinaud_qc = add_couinaud_segments(volume, result.masks, result.split_qc, model_dirs=model_dirs,
                                                       device=compute, resect=resect)
        result = replace(result, masks=masks, couinaud=couinaud_qc)
    result.timings.update(timings)
    return result
