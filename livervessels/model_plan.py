"""Model choice: which installed models make the support labels and the raw vessel mask, and
loading them ahead of time."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from livervessels import model_store, nnunet_runner
from livervessels.compute import as_compute
from livervessels.errors import InputError, ModelNotFoundError
from livervessels.stage_types import ModelPlan
from livervessels.tasks import TASKS, Task

log = logging.getLogger(__name__)

# the support labels the split needs from TotalSegmentator's total task
SUPPORT_CLASSES = ["liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"]
# read only for the contrast phase (livervessels.contrast_phase), where the support model has them;
# in total they come from the same two parts as the support classes, so they cost no network
PHASE_CLASSES = ["aorta", "spleen"]
OFFICIAL_PLAN = ModelPlan("official", "total", "liver_vessels")
DEMO_PLAN = ModelPlan("demo", "demo_liver", "demo_liver",
                      "demo model trained on synthetic phantoms: not meaningful on real anatomy; empty or "
                      "wrong segments are expected on real CT")


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
    official, demo = OFFICIAL_PLAN, DEMO_PLAN
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
    parts = plan_model_parts(OFFICIAL_PLAN)
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
