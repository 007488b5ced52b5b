"""Task registry: which nnU-Net models make up a task, how they are run, and their class maps.

Facts about TotalSegmentator's tasks (dataset names, trainers, spacings, class numbers, release
tags) are those of TotalSegmentator 2.18. Add a task by adding a Task here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from livervessels.errors import InputError

WEIGHTS_URL = "https://github.com/wasserth/TotalSegmentator/releases/download/{tag}/{dataset}.zip"


@dataclass(frozen=True)
class ModelPart:
    """One trained nnU-Net model, in the official results layout."""

    dataset: str  # e.g. Dataset291_TotalSegmentator_part1_organs_1559subj
    trainer: str
    classes: dict[int, str]  # the model's own label -> class name
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    fold: int = 0
    release_tag: str | None = None  # GitHub release holding <dataset>.zip; None: ships with this project

    @property
    def folder(self) -> str:
        """dataset/trainer__plans__configuration, relative to a results root."""
        return f"{self.dataset}/{self.trainer}__{self.plans}__{self.configuration}"

    @property
    def url(self) -> str | None:
        return WEIGHTS_URL.format(tag=self.release_tag, dataset=self.dataset) if self.release_tag else None


@dataclass(frozen=True)
class Task:
    """A segmentation task: its model parts and how TotalSegmentator runs them."""

    name: str
    parts: tuple[ModelPart, ...]
    # label offsets: part i's label l becomes l + offsets[i] in the task's class map
    offsets: tuple[int, ...] = ()
    # resampled by us to this spacing (one for all axes, or x, y, z of the RAS-canonical array);
    # None: nnU-Net's own
    resample_mm: float | tuple[float, float, float] | None = None
    step_size: float = 0.5
    mirroring: bool = False
    crop_to: str | None = None  # class whose bounding box the input is cropped to ("liver")
    crop_task: str | None = None  # task that provides that class
    robust_crop_task: str | None = None  # with --robust_crop
    crop_margin_mm: int = 20
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def classes(self) -> dict[int, str]:
        """The task's label -> class name over all parts."""
        out: dict[int, str] = {}
        offsets = self.offsets or (0,) * len(self.parts)
        for part, offset in zip(self.parts, offsets):
            out.update({label + offset: name for label, name in part.classes.items()})
        return dict(sorted(out.items()))

    def parts_for(self, class_names: list[str] | None) -> list[int]:
        """Indices of the parts that predict any of class_names (all parts when None)."""
        if not class_names:
            return list(range(len(self.parts)))
        return [i for i, p in enumerate(self.parts) if set(p.classes.values()) & set(class_names)]


def _numbered(names: list[str], start: int = 1) -> dict[int, str]:
    return {i + start: n for i, n in enumerate(names)}


_VERTEBRAE = ["sacrum", "vertebrae_S1"] + [f"vertebrae_L{i}" for i in range(5, 0, -1)] + [
    f"vertebrae_T{i}" for i in range(12, 0, -1)
] + [f"vertebrae_C{i}" for i in range(7, 0, -1)]

TOTAL_PART_CLASSES = (
    _numbered([
        "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
        "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
        "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
        "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
        "kidney_cyst_left", "kidney_cyst_right",
    ]),
    _numbered(_VERTEBRAE),
    _numbered([
        "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right",
        "subclavian_artery_left", "common_carotid_artery_right", "common_carotid_artery_left",
        "brachiocephalic_vein_left", "brachiocephalic_vein_right", "atrial_appendage_left",
        "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein", "iliac_artery_left",
        "iliac_artery_right", "iliac_vena_left", "iliac_vena_right",
    ]),
    _numbered([
        "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right",
        "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left",
        "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left",
        "gluteus_minimus_right", "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right",
        "brain", "skull",
    ]),
    _numbered([f"rib_left_{i}" for i in range(1, 13)] + [f"rib_right_{i}" for i in range(1, 13)] + [
        "sternum", "costal_cartilages"
    ]),
)
TOTAL_OFFSETS = (0, 24, 50, 68, 91)  # parts own labels 1-24, 25-50, 51-68, 69-91, 92-117
TOTAL_CLASSES: dict[int, str] = {}
for _classes, _offset in zip(TOTAL_PART_CLASSES, TOTAL_OFFSETS):
    TOTAL_CLASSES.update({k + _offset: v for k, v in _classes.items()})

_TOTAL_PART_DATASETS = (
    "Dataset291_TotalSegmentator_part1_organs_1559subj",
    "Dataset292_TotalSegmentator_part2_vertebrae_1532subj",
    "Dataset293_TotalSegmentator_part3_cardiac_1559subj",
    "Dataset294_TotalSegmentator_part4_muscles_1559subj",
    "Dataset295_TotalSegmentator_part5_ribs_1559subj",
)

DEMO_CLASSES = {1: "liver", 2: "inferior_vena_cava", 3: "portal_vein_and_splenic_vein", 4: "liver_vessels"}
DEMO_DATASET = "Dataset990_LiverVesselsDemo"

TASKS: dict[str, Task] = {
    "total": Task(
        name="total",
        parts=tuple(
            ModelPart(d, "nnUNetTrainerNoMirroring", c, release_tag="v2.0.0-weights")
            for d, c in zip(_TOTAL_PART_DATASETS, TOTAL_PART_CLASSES)
        ),
        offsets=TOTAL_OFFSETS,
        resample_mm=1.5,
        step_size=0.8,
        description="117 classes, 5 models at 1.5 mm",
    ),
    "total_fast": Task(
        name="total_fast",
        parts=(ModelPart("Dataset297_TotalSegmentator_total_3mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring",
                         TOTAL_CLASSES, release_tag="v2.0.0-weights"),),
        resample_mm=3.0,
        step_size=0.8,
        description="117 classes, one model at 3 mm (--fast)",
    ),
    "total_fastest": Task(
        name="total_fastest",
        parts=(ModelPart("Dataset298_TotalSegmentator_total_6mm_1559subj", "nnUNetTrainer_4000epochs_NoMirroring",
                         TOTAL_CLASSES, release_tag="v2.0.0-weights"),),
        resample_mm=6.0,
        step_size=0.8,
        description="117 classes, one model at 6 mm (--fastest)",
    ),
    "body": Task(
        name="body",
        parts=(ModelPart("Dataset299_body_1559subj", "nnUNetTrainer",
                         {1: "body_trunc", 2: "body_extremities", 3: "skin"}, release_tag="v2.0.0-weights"),),
        resample_mm=1.5,
        step_size=0.8,
    ),
    "body_fast": Task(
        name="body_fast",
        parts=(ModelPart("Dataset300_body_6mm_1559subj", "nnUNetTrainer",
                         {1: "body_trunc", 2: "body_extremities", 3: "skin"}, release_tag="v2.0.0-weights"),),
        resample_mm=6.0,
        step_size=0.8,
    ),
    "liver_vessels": Task(
        name="liver_vessels",
        parts=(ModelPart("Dataset008_HepaticVessel", "nnUNetTrainer", {1: "liver_vessels", 2: "liver_tumor"},
                         release_tag="v2.4.0-weights"),),
        resample_mm=None,
        step_size=0.5,
        crop_to="liver",
        crop_task="total_fastest",
        robust_crop_task="total_fast",
        description="liver vessels and tumour (MSD Task08), input cropped to the liver + 20 mm",
    ),
    "liver_segments": Task(
        name="liver_segments",
        parts=(ModelPart("Dataset570_ct_liver_segments", "nnUNetTrainerNoMirroring",
                         _numbered([f"liver_segment_{i}" for i in range(1, 9)]), release_tag="v2.5.0-weights"),),
        # TotalSegmentator's task config lists [0.8046879768371582] * 2 + [1.5] and crop_addon 10, but
        # its python_api replaces the addon by 20 whenever the task has no crop model of its own
        resample_mm=(0.8046879768371582, 0.8046879768371582, 1.5),
        step_size=0.5,
        crop_to="liver",
        crop_task="total_fastest",
        robust_crop_task="total_fast",
        description="Couinaud segments 1-8 from intensities, input cropped to the liver + 20 mm",
    ),
    "demo_liver": Task(
        name="demo_liver",
        parts=(ModelPart(DEMO_DATASET, "nnUNetTrainer", DEMO_CLASSES),),
        resample_mm=None,
        step_size=0.5,
        description="small demo model trained by this project on synthetic phantoms (not for clinical images)",
    ),
}

# TotalSegmentator's flags select variants of a task.
FAST_VARIANTS = {("total", "fast"): "total_fast", ("total", "fastest"): "total_fastest", ("body", "fast"): "body_fast",
                 ("body", "fastest"): "body_fast"}


def get_task(name: str) -> Task:
    """The registered task, or InputError listing the valid names.

    Raises:
        InputError: name is not a registered task.
    """
    try:
        return TASKS[name]
    except KeyError:
        raise InputError(f"unknown task '{name}'; valid tasks: {', '.join(sorted(TASKS))}") from None
