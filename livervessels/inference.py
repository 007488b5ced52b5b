"""Run a registered task on a volume and return labels exactly in the volume's grid.

Steps as TotalSegmentator: canonical (RAS) orientation; for tasks with a fixed spacing, resample
the image to it (order 1) and the labels back (order 0); otherwise nnU-Net resamples to the
model's plan spacing itself; optional crop to an organ's bounding box plus a margin; several model
parts merged with their label offsets (later parts win where they overlap).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from livervessels import model_store, nnunet_runner
from livervessels.errors import InputError
from livervessels.geometry import Volume, from_canonical, to_canonical, voxel_spacing
from livervessels.resample import resample_to_shape, zoom_to_spacing
from livervessels.tasks import Task, get_task

log = logging.getLogger(__name__)


@dataclass
class LabelMap:
    """Integer labels on a grid, with their class names."""

    array: np.ndarray
    affine: np.ndarray
    classes: dict[int, str]
    timings: dict[str, float] = field(default_factory=dict)

    def mask(self, name: str) -> np.ndarray:
        ids = [k for k, v in self.classes.items() if v == name]
        if not ids:
            return np.zeros(self.array.shape, bool)
        return self.array == ids[0]

    def names(self) -> list[str]:
        return list(self.classes.values())


def check_roi_subset(task: Task, roi_subset: list[str] | None) -> None:
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
    device: str | None = None,
    roi_subset: list[str] | None = None,
    robust_crop: bool = False,
    cpu_bf16: bool = False,
) -> LabelMap:
    """Labels of `task` for `volume`, on the volume's own grid (shape and affine)."""
    task = get_task(task) if isinstance(task, str) else task
    check_roi_subset(task, roi_subset)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    torch_device = nnunet_runner.resolve_device(device)
    roots = model_store.model_roots(model_dirs)
    part_ids = task.parts_for(roi_subset)
    models = [
        nnunet_runner.load_model(
            model_store.find_model_folder(task.parts[i], roots, task.name), task.parts[i].fold, torch_device,
            task.step_size, task.mirroring, cpu_bf16,
        )
        for i in part_ids
    ]
    timings["load"] = time.perf_counter() - t0

    image, affine, original = to_canonical(np.asarray(volume.array, np.float32), volume.affine)
    crop = None
    if task.crop_to:
        crop_task = task.robust_crop_task if robust_crop else task.crop_task
        organ = segment(Volume(image, affine), crop_task, model_dirs=model_dirs, device=device,
                        roi_subset=[task.crop_to], cpu_bf16=cpu_bf16).mask(task.crop_to)
        crop = _bounding_box(organ, task.crop_margin_voxels)
        if crop is None:
            log.warning("no %s found for cropping; running %s on the whole image", task.crop_to, task.name)
        else:
            image = image[crop]
    spacing = voxel_spacing(affine)

    t = time.perf_counter()
    work, work_spacing = image, spacing
    if task.resample_mm:
        work, work_spacing = zoom_to_spacing(image, spacing, task.resample_mm, order=1)
    timings["resample"] = time.perf_counter() - t

    t = time.perf_counter()
    merged = np.zeros(work.shape, np.uint8)
    offsets = task.offsets or (0,) * len(task.parts)
    for i, model in zip(part_ids, models):
        labels = nnunet_runner.predict_labels(model, work, work_spacing)
        nonzero = labels > 0
        merged[nonzero] = labels[nonzero] + offsets[i]  # later parts win where they overlap
    timings["predict"] = time.perf_counter() - t

    t = time.perf_counter()
    if task.resample_mm:
        merged = resample_to_shape(merged, image.shape, order=0)
    if crop is not None:
        full = np.zeros(volume.shape, np.uint8)
        full = to_canonical(full, volume.affine)[0]
        full[crop] = merged
        merged = full
    classes = task.classes
    if roi_subset:
        keep = [k for k, v in classes.items() if v in roi_subset]
        merged = np.where(np.isin(merged, keep), merged, 0).astype(np.uint8)
        classes = {k: classes[k] for k in keep}
    labels = from_canonical(merged, original)
    timings["resample_back"] = time.perf_counter() - t
    assert labels.shape == volume.shape
    return LabelMap(labels, volume.affine.copy(), classes, timings)


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    if not mask.any():
        return None
    idx = np.nonzero(mask)
    return tuple(
        slice(max(int(a.min()) - margin, 0), min(int(a.max()) + margin + 1, n)) for a, n in zip(idx, mask.shape)
    )
