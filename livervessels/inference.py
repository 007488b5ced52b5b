"""Run a registered task on a volume and return labels exactly in the volume's grid.

Steps as TotalSegmentator 2.18 (checked voxel for voxel against it by bench/parity_totalseg.py):
canonical (RAS) orientation; optional crop to the bounding box of an organ (liver_vessels: liver)
or of the roi_subset classes (total tasks), predicted by the 6 mm model (3 mm with robust_crop),
plus 20 mm per side (int(20 / voxel size) voxels), empty result when that organ is absent; for
tasks with a fixed spacing, resample the image to it (order 1, truncated to integers as
TotalSegmentator's int32 cast) and the labels back (order 0); otherwise nnU-Net resamples to the
model's plan spacing itself; several model parts merged with their label offsets (later parts win
where they overlap).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from livervessels import model_store, nnunet_runner
from livervessels.compute import Compute, as_compute, resolve
from livervessels.errors import InputError, ModelNotFoundError
from livervessels.geometry import Volume, from_canonical, to_canonical, voxel_spacing
from livervessels.masks import padded_box
from livervessels.resample import resample_to_shape, zoom_to_spacing
from livervessels.tasks import Task, get_task
from livervessels.timing import timed

log = logging.getLogger(__name__)


@dataclass
class LabelMap:
    """Integer labels on a grid, with their class names."""

    array: np.ndarray
    affine: np.ndarray
    classes: dict[int, str]
    timings: dict[str, float] = field(default_factory=dict)
    models: list[dict] = field(default_factory=list)  # folder and checkpoint SHA-256 of every model used

    def mask(self, name: str) -> np.ndarray:
        ids = [k for k, v in self.classes.items() if v == name]
        if not ids:
            return np.zeros(self.array.shape, bool)
        return self.array == ids[0]

    def names(self) -> list[str]:
        return list(self.classes.values())


def check_roi_subset(task: Task, roi_subset: list[str] | None) -> None:
    """Check that every name in roi_subset is a class of the task (None or empty: nothing to check).

    Raises:
        InputError: a name is not a class of the task (the message lists the valid ones).
    """
    if not roi_subset:
        return
    unknown = [r for r in roi_subset if r not in task.classes.values()]
    if unknown:
        raise InputError(
            f"unknown class(es) for task {task.name}: {', '.join(unknown)}; valid: {', '.join(task.classes.values())}"
        )


def segment(
    volume: Volume,
    task: str | Task,
    *,
    model_dirs: list | None = None,
    device: Compute | str | None = None,
    roi_subset: list[str] | None = None,
    robust_crop: bool = False,
    precision: str | None = None,
    also_keep: list[str] | None = None,
) -> LabelMap:
    """Labels of `task` for `volume`, on the volume's own grid (shape and affine).

    device: a Compute (livervessels.compute) or a device request (auto, cpu, gpu, gpu:N, cuda:N);
    precision: with a device request, the network precision (auto, fp32, bf16, fp16).
    also_keep: with a roi_subset, classes of the parts it runs that are kept in the output too; they
    widen neither the crop nor the set of parts (the contrast phase reads the aorta and spleen so).

    Raises:
        InputError: unknown classes, device or precision; unreadable models; a named model folder
            (model_dirs) is missing or holds no model.
        ModelNotFoundError: the task's weights are not installed.
    """
    task = get_task(task) if isinstance(task, str) else task
    check_roi_subset(task, roi_subset)
    check_roi_subset(task, also_keep)
    compute = resolve(device, precision) if precision is not None else as_compute(device)
    timings: dict[str, float] = {}
    torch_device = compute.device
    gpu = torch_device if compute.on_gpu else None  # resampling on the GPU when there is one
    model_store.check_model_dirs(model_dirs, task)  # a wrong -m never falls back to other weights
    roots = model_store.model_roots(model_dirs)
    part_ids = task.parts_for(roi_subset)
    with timed(timings, "load"):  # from the cache after the first call in a process
        models = [
            nnunet_runner.load_model(
                model_store.find_model_folder(task.parts[i], roots, task.name), task.parts[i].fold, torch_device,
                task.step_size, task.mirroring, compute.precision,
            )
            for i in part_ids
        ]
    used = [{"task": task.name, "folder": str(m.folder), "sha256": m.checkpoint_sha256} for m in models]

    # the scan as stored (int16 HU from DICOM / NIfTI): every step below reads it as float32 or
    # float64 where it computes, and a float32 copy of a long scan here would cost GBs for nothing
    image, affine, original = to_canonical(np.asarray(volume.array), volume.affine)
    crop = None
    crop_classes, crop_task = _crop_plan(task, roi_subset, robust_crop, model_dirs)
    if crop_classes:
        # As TotalSegmentator: the crop model predicts all its classes on the whole image (no
        # roi_subset, so no nested crop), the box is the union of the wanted classes plus a margin.
        with timed(timings, "crop_model"):
            organs = segment(Volume(image, affine), crop_task, model_dirs=model_dirs, device=compute)
            ids = [k for k, v in organs.classes.items() if v in crop_classes]
            crop = padded_box(np.isin(organs.array, ids),
                                 _crop_margin(task.crop_margin_mm, voxel_spacing(affine)))
        used = organs.models + used
        if crop is None:  # TotalSegmentator returns an empty segmentation when the crop is empty
            log.warning("no %s found for cropping: %s gives an empty segmentation", ", ".join(crop_classes), task.name)
            classes = _selected_classes(task, roi_subset)
            return LabelMap(np.zeros(volume.shape, np.uint8), volume.affine.copy(), classes, timings, used)
        # TotalSegmentator crops with dtype int32: float HU truncate, integer HU stay as they are
        image = image[crop] if np.issubdtype(image.dtype, np.integer) else np.trunc(image[crop])
    spacing = voxel_spacing(affine)

    with timed(timings, "resample"):
        work, work_spacing = image, spacing
        if task.resample_mm:
            # TotalSegmentator casts the resampled image to int32 before nnU-Net reads it
            work, work_spacing = zoom_to_spacing(image, spacing, task.resample_mm, order=1, truncate=True,
                                                 device=gpu)

    merged = np.zeros(work.shape, np.uint8)
    offsets = task.offsets or (0,) * len(task.parts)
    timings["predict"] = timings["merge"] = 0.0
    for i, model in zip(part_ids, models):
        with timed(timings, "predict", add=True):
            labels = nnunet_runner.predict_labels(model, work, work_spacing)
        with timed(timings, "merge", add=True):
            nonzero = labels > 0
            merged[nonzero] = labels[nonzero] + offsets[i]  # later parts win where they overlap

    with timed(timings, "resample_back"):
        if task.resample_mm:
            merged = resample_to_shape(merged, image.shape, order=0, device=gpu)
        if crop is not None:
            full = np.zeros(volume.shape, np.uint8)
            full = to_canonical(full, volume.affine)[0]
            full[crop] = merged
            merged = full
        kept = roi_subset and roi_subset + [c for c in also_keep or [] if c not in roi_subset]
        classes = _selected_classes(task, kept)
        if roi_subset:
            merged = np.where(np.isin(merged, list(classes)), merged, 0).astype(np.uint8)
        labels = from_canonical(merged, original)
    assert labels.shape == volume.shape
    return LabelMap(labels, volume.affine.copy(), classes, timings, used)


def _selected_classes(task: Task, roi_subset: list[str] | None) -> dict[int, str]:
    classes = task.classes
    return {k: v for k, v in classes.items() if v in roi_subset} if roi_subset else classes


def _crop_plan(task: Task, roi_subset: list[str] | None, robust_crop: bool,
               model_dirs: list | None) -> tuple[list[str] | None, str | None]:
    """(classes to crop to, task predicting them), as TotalSegmentator 2.18's python_api:

    a task with a crop organ (liver_vessels: liver) crops to it; a `total*` task with a roi_subset
    crops to the union of those classes (crop_addon 20 mm too). The crop model is total_fastest
    (298, 6 mm), or total_fast (297, 3 mm) with robust_crop. TotalSegmentator downloads a missing
    crop model; for a roi_subset without it installed we warn and skip the crop instead.
    """
    if task.crop_to:
        return [task.crop_to], task.robust_crop_task if robust_crop else task.crop_task
    if roi_subset and task.name.startswith("total"):
        crop_task = "total_fast" if robust_crop else "total_fastest"
        try:
            part = get_task(crop_task).parts[0]
            model_store.find_model_folder(part, model_store.model_roots(model_dirs), crop_task)
        except ModelNotFoundError:
            log.warning("%s weights not installed: --roi_subset runs on the whole image (TotalSegmentator would "
                        "crop to the subset with them)", crop_task)
            return None, None
        return list(roi_subset), crop_task
    return None, None


def _crop_margin(margin_mm: float, spacing: tuple[float, float, float]) -> tuple[int, ...]:
    """Voxels per axis for a crop margin, as TotalSegmentator's crop_to_mask: its crop_addon
    (20 for liver_vessels; Task.crop_margin_mm holds that number) is in millimetres, turned
    into voxels by int(addon / zoom) with the NIfTI header's float32 zooms: 20 mm at 0.8 mm gives
    24 voxels (float32(0.8) is a bit above 0.8), at 1.5 mm 13."""
    zooms = np.asarray(spacing, np.float32)
    return tuple(int(v) for v in np.full(3, margin_mm) / zooms)
