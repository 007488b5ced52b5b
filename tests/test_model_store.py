"""livervessels/model_store.py: where weights are looked for, which folder counts as a model, and
how a wrong model folder or the demo model's use is refused.

Model folders are laid out here in tmp_path the way nnU-Net v2 writes its results
(DatasetNNN_Name/Trainer__Plans__Configuration/plans.json beside fold_N/checkpoint_final.pth); the
files are empty, since only the layout is read.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from livervessels.errors import InputError, ModelNotFoundError
from livervessels.model_store import (
    check_model_dirs,
    demo_model_policy,
    find_model_folder,
    model_roots,
    totalseg_results_dir,
)
from livervessels.tasks import TASKS, ModelPart

from conftest import MODELS

PART = ModelPart("Dataset123_Liver", "nnUNetTrainer", {1: "liver"}, release_tag="v9-weights")
TRAINER_DIR = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _model(folder: Path, fold: int = 0, checkpoint: bool = True) -> Path:
    """An nnU-Net trainer folder: plans.json, dataset.json and fold_N/checkpoint_final.pth."""
    (folder / f"fold_{fold}").mkdir(parents=True)
    (folder / "plans.json").write_text("{}")
    (folder / "dataset.json").write_text("{}")
    if checkpoint:
        (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    return folder


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in ("TOTALSEG_WEIGHTS_PATH", "TOTALSEG_HOME_DIR", "HOLOSCAN_MODEL_PATH", "LIVERVESSELS_CLINICAL",
                "LIVERVESSELS_ALLOW_DEMO_MODEL", "HOLOSCAN_PKG_MANIFEST_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_totalsegmentator_locations_in_its_own_order(clean_env, tmp_path):
    # as TotalSegmentator resolves them: TOTALSEG_WEIGHTS_PATH, then TOTALSEG_HOME_DIR/nnunet/results,
    # then ~/.totalsegmentator/nnunet/results
    assert totalseg_results_dir() == tmp_path / "home" / ".totalsegmentator" / "nnunet" / "results"
    clean_env.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "ts_home"))
    assert totalseg_results_dir() == tmp_path / "ts_home" / "nnunet" / "results"
    clean_env.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "weights"))
    assert totalseg_results_dir() == tmp_path / "weights"


def test_roots_are_searched_explicit_first_then_totalsegmentator_then_the_bundled_models(clean_env, tmp_path):
    clean_env.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "ts"))
    clean_env.setenv("HOLOSCAN_MODEL_PATH", str(tmp_path / "map"))
    a, b = tmp_path / "a", tmp_path / "b"
    # explicit folders win over HOLOSCAN_MODEL_PATH; empty entries and repeats are dropped
    assert model_roots([a, "", str(b), a]) == [a, b, tmp_path / "ts", MODELS]
    assert model_roots(None) == [tmp_path / "map", tmp_path / "ts", MODELS]
    clean_env.setenv("HOLOSCAN_MODEL_PATH", str(tmp_path / "ts"))
    assert model_roots([]) == [tmp_path / "ts", MODELS]  # the same folder is searched once


@pytest.mark.parametrize("root_kind", ["results", "dataset", "trainer"])
def test_a_root_may_be_a_results_a_dataset_or_a_trainer_folder(tmp_path, root_kind):
    trainer = _model(tmp_path / "results" / "Dataset123_Liver" / TRAINER_DIR)
    root = {"results": tmp_path / "results", "dataset": trainer.parent, "trainer": trainer}[root_kind]
    assert find_model_folder(PART, [root]) == trainer


def test_the_first_root_holding_the_model_wins(tmp_path):
    first = _model(tmp_path / "one" / PART.folder)
    _model(tmp_path / "two" / PART.folder)
    assert find_model_folder(PART, [tmp_path / "empty", tmp_path / "one", tmp_path / "two"]) == first


@pytest.mark.parametrize("layout", ["plans_without_checkpoint", "other_fold_only"])
def test_a_model_needs_plans_and_the_checkpoint_of_its_own_fold(tmp_path, layout):
    part = ModelPart("Dataset123_Liver", "nnUNetTrainer", {1: "liver"}, fold=1)  # bundled: no release tag
    if layout == "plans_without_checkpoint":
        _model(tmp_path / part.folder, fold=1, checkpoint=False)
    else:
        _model(tmp_path / part.folder, fold=0)
    with pytest.raises(ModelNotFoundError) as err:
        find_model_folder(part, [tmp_path])
    message = str(err.value)
    assert str(tmp_path / part.folder / "fold_1" / "checkpoint_final.pth") in message
    assert "ships with this project" in message


def test_a_model_without_its_label_map_is_refused_by_name(tmp_path):
    folder = _model(tmp_path / PART.folder)
    (folder / "dataset.json").unlink()
    with pytest.raises(ModelNotFoundError, match="has no dataset.json") as err:
        find_model_folder(PART, [tmp_path], "liver_vessels")
    assert str(folder) in str(err.value) and "reinstall" in str(err.value)


@pytest.mark.parametrize("root_kind", ["dataset", "trainer"])
def test_another_datasets_model_is_not_taken_for_this_one(tmp_path, root_kind):
    # a model of Dataset999 with the same (default) trainer, plans and configuration names
    other = _model(tmp_path / "Dataset999_Spleen" / TRAINER_DIR)
    root = other.parent if root_kind == "dataset" else other
    with pytest.raises(ModelNotFoundError):
        # every default nnU-Net model has this trainer folder name: another dataset's is not this model
        find_model_folder(PART, [root])


def test_the_bundled_demo_model_is_not_taken_for_the_official_liver_vessel_model():
    with pytest.raises(ModelNotFoundError):
        find_model_folder(TASKS["liver_vessels"].parts[0], [MODELS / "Dataset990_LiverVesselsDemo"])


def test_named_model_folders_must_exist_and_hold_a_model_near_the_top(tmp_path):
    check_model_dirs(None)
    check_model_dirs([])
    with pytest.raises(InputError, match="does not exist or is not a folder"):
        check_model_dirs([tmp_path / "missing"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="does not exist or is not a folder"):
        check_model_dirs([tmp_path / "file"])
    _model(tmp_path / "results" / PART.folder)
    check_model_dirs([tmp_path / "results"])  # results layout: plans.json three levels down
    check_model_dirs([tmp_path / "results" / "Dataset123_Liver"])
    check_model_dirs([tmp_path / "results" / PART.folder])
    # one level too high (nnunet/ instead of nnunet/results): refused, not silently replaced by other weights
    with pytest.raises(InputError, match="holds no nnU-Net model"):
        check_model_dirs([tmp_path])


def test_an_empty_model_folder_names_the_model_expected_and_how_to_install_it(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    task = TASKS["liver_vessels"]
    with pytest.raises(InputError) as err:
        check_model_dirs([folder], task)
    message = str(err.value)
    assert f"{folder}/Dataset008_HepaticVessel/{TRAINER_DIR}/plans.json with fold_0/checkpoint_final.pth" in message
    assert f"TotalSegmentator weights --task liver_vessels --dest {folder}" in message


@pytest.mark.parametrize("allow, clinical, allowed", [
    ("yes", "1", True),
    (" ON ", "1", True),  # any case, surrounding blanks ignored
    ("0", "1", False),  # "0" or "false" is not a permission
    ("false", "1", False),
    ("", "0", True),  # clinical mode only when asked for
])
def test_only_a_true_value_switches_the_demo_model_policy(clean_env, allow, clinical, allowed):
    clean_env.setenv("LIVERVESSELS_ALLOW_DEMO_MODEL", allow)
    clean_env.setenv("LIVERVESSELS_CLINICAL", clinical)
    assert demo_model_policy()[0] is allowed


def test_a_pkg_manifest_path_that_does_not_exist_is_not_a_map(monkeypatch, tmp_path):
    monkeypatch.delenv("LIVERVESSELS_CLINICAL", raising=False)
    monkeypatch.delenv("LIVERVESSELS_ALLOW_DEMO_MODEL", raising=False)
    monkeypatch.setenv("HOLOSCAN_PKG_MANIFEST_PATH", str(tmp_path / "missing.json"))
    assert demo_model_policy() == (True, "research mode")
