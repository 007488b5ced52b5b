"""Where model weights live and how a missing model is reported.

Search order: folders given explicitly (-m, HOLOSCAN_MODEL_PATH; in a MAP /opt/holoscan/models),
then TotalSegmentator's own locations (TOTALSEG_WEIGHTS_PATH, TOTALSEG_HOME_DIR/nnunet/results,
~/.totalsegmentator/nnunet/results), then the demo model bundled with this project.
"""
from __future__ import annotations

import os
from pathlib import Path

from livervessels.errors import InputError, ModelNotFoundError
from livervessels.tasks import ModelPart

BUNDLED_MODELS = Path(__file__).resolve().parent.parent / "models"


def totalseg_results_dir() -> Path:
    """The folder TotalSegmentator itself reads and writes weights in."""
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    if os.environ.get("TOTALSEG_HOME_DIR"):
        return Path(os.environ["TOTALSEG_HOME_DIR"]) / "nnunet" / "results"
    return Path.home() / ".totalsegmentator" / "nnunet" / "results"


def model_roots(explicit: list[str | Path] | None = None) -> list[Path]:
    """Folders searched for models, first match wins."""
    roots = [Path(p) for p in (explicit or []) if p]
    if not roots and os.environ.get("HOLOSCAN_MODEL_PATH"):
        roots.append(Path(os.environ["HOLOSCAN_MODEL_PATH"]))
    roots.append(totalseg_results_dir())
    roots.append(BUNDLED_MODELS)
    unique: list[Path] = []
    for r in roots:
        if r not in unique:
            unique.append(r)
    return unique


# Clinical mode: the bundled demo model (trained on synthetic phantoms) must never segment a patient.
CLINICAL_ENV = "LIVERVESSELS_CLINICAL"
ALLOW_DEMO_ENV = "LIVERVESSELS_ALLOW_DEMO_MODEL"
_TRUE = {"1", "true", "yes", "on"}


def demo_model_policy() -> tuple[bool, str]:
    """(allowed, why) for running on the bundled demo model.

    Refused inside a MAP (its package manifest, HOLOSCAN_PKG_MANIFEST_PATH, exists: a MAP is what a
    hospital deploys, and demo-model SEGs of real patients must not reach a PACS) and wherever
    LIVERVESSELS_CLINICAL=1 asks for clinical mode; LIVERVESSELS_ALLOW_DEMO_MODEL=1 allows it
    anyway (trying a MAP on the demo study), and wins over both.
    """
    if os.environ.get(ALLOW_DEMO_ENV, "").strip().lower() in _TRUE:
        return True, f"{ALLOW_DEMO_ENV}=1"
    if os.environ.get(CLINICAL_ENV, "").strip().lower() in _TRUE:
        return False, f"clinical mode ({CLINICAL_ENV}=1)"
    manifest = os.environ.get("HOLOSCAN_PKG_MANIFEST_PATH")
    if manifest and Path(manifest).is_file():
        return False, "running as a MONAI Application Package"
    return True, "research mode"


def checkpoint_path(model_folder: Path, part: ModelPart) -> Path:
    return model_folder / f"fold_{part.fold}" / "checkpoint_final.pth"


def find_model_folder(part: ModelPart, roots: list[Path], task_name: str = "") -> Path:
    """The trainer folder (holding plans.json, dataset.json, fold_N/) for a model part.

    A root may be a results folder (holding DatasetNNN_*/), a dataset folder or a trainer folder,
    so a MAP's model path can point at a single model too.

    Raises:
        ModelNotFoundError: no root holds the part's trainer folder with the fold's checkpoint, or the
            folder found lacks its dataset.json.
    """
    dataset, trainer_dir = part.folder.split("/")
    for root in roots:
        for candidate in (root / part.folder, root / trainer_dir, root):
            # most models share the trainer folder's name: only this dataset's folder is this model
            if candidate.name != trainer_dir or candidate.parent.name != dataset:
                continue
            if (candidate / "plans.json").is_file() and checkpoint_path(candidate, part).is_file():
                if not (candidate / "dataset.json").is_file():  # its label map: without it no labels are known
                    raise ModelNotFoundError(f"model folder {candidate} has no dataset.json (the model's label "
                                             f"map); reinstall it: {_install_hint(part, task_name)}")
                return candidate
    expected = roots[0] / part.folder / f"fold_{part.fold}" / "checkpoint_final.pth"
    raise ModelNotFoundError(
        f"weights for {task_name or part.dataset} not found: expected {expected} "
        f"(searched {', '.join(str(r) for r in roots)}); {_install_hint(part, task_name)}"
    )


def _install_hint(part: ModelPart, task_name: str) -> str:
    if part.release_tag:
        return f"get them with: TotalSegmentator weights --task {task_name or part.dataset}"
    return "it ships with this project (models/); reinstall or pass -m path/to/models"


def check_model_dirs(explicit: list[str | Path] | None, task=None) -> None:
    """Folders the user named for models must exist and hold at least one nnU-Net model
    (plans.json beside fold_N/checkpoint_final.pth, at most three levels down): a wrong -m must
    not fall back silently to other weights. task (a tasks.Task), when known, makes the message
    name the model folder expected and the command that installs it.

    Raises:
        InputError: a named folder is missing, not a folder, or holds no model.
    """
    for folder in [Path(p) for p in (explicit or []) if p]:
        if not folder.is_dir():
            raise InputError(f"model folder {folder} does not exist or is not a folder; pass the folder that holds "
                             "the models (e.g. ~/.totalsegmentator/nnunet/results) or leave -m out")
        candidates = [folder, *folder.glob("*"), *folder.glob("*/*")]
        if not any((c / "plans.json").is_file() and any(c.glob("fold_*/checkpoint_final.pth")) for c in candidates):
            part = task.parts[0] if task is not None else None
            expected = (f"{folder / part.folder}/plans.json with fold_{part.fold}/checkpoint_final.pth" if part
                        else "DatasetNNN_*/TRAINER__PLANS__CONFIG/plans.json with fold_0/checkpoint_final.pth")
            install = (f"TotalSegmentator weights --task {task.name} --dest {folder}" if part and part.release_tag
                       else "TotalSegmentator weights --task TASK --dest FOLDER")
            raise InputError(f"model folder {folder} holds no nnU-Net model (expected {expected}); install weights "
                             f"with `{install}` or leave -m out")
