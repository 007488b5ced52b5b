"""livervessels/model_plan.py: the official and demo plans, the models each plan runs, and the check that
a MAP's weights folder holds every official model itself, and the demo model's refusal in a MAP and in
clinical mode (tests/test_pipeline.py covers preloading).

The official weights are faked in tmp_path in nnU-Net's results layout
(DatasetNNN_Name/Trainer__Plans__Configuration/{plans.json, dataset.json, fold_0/checkpoint_final.pth});
the files are empty, since only the layout is read.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from livervessels import cli
from livervessels.errors import InputError
from livervessels.model_plan import (
    DEMO_PLAN,
    OFFICIAL_PLAN,
    SUPPORT_CLASSES,
    check_official_weights,
    choose_model_plan,
    plan_model_parts,
)
from livervessels.stage_types import SUPPORT_FILES_PLAN, ModelPlan
from livervessels.tasks import TASKS, ModelPart

from conftest import MODELS

# the official models the liver-vessel run needs, named by hand: total's part 1 (liver) and part 3 (IVC,
# portal vein), the 6 mm total model that crops both, and the hepatic vessel model
NEEDED = {
    "liver": TASKS["total"].parts[0],
    "veins": TASKS["total"].parts[2],
    "crop": TASKS["total_fastest"].parts[0],
    "vessels": TASKS["liver_vessels"].parts[0],
}


def _install(root: Path, part: ModelPart) -> Path:
    folder = root / part.folder
    (folder / f"fold_{part.fold}").mkdir(parents=True)
    (folder / "plans.json").write_text("{}")
    (folder / "dataset.json").write_text("{}")
    (folder / f"fold_{part.fold}" / "checkpoint_final.pth").write_bytes(b"")
    return folder


@pytest.fixture
def official(tmp_path) -> Path:
    root = tmp_path / "weights"
    for part in NEEDED.values():
        _install(root, part)
    return root


@pytest.fixture
def no_other_weights(monkeypatch, tmp_path):
    """No official weights in TotalSegmentator's own locations, no model path from the environment."""
    for key in ("TOTALSEG_WEIGHTS_PATH", "HOLOSCAN_MODEL_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "totalseg_home"))


def test_the_official_plan_takes_support_labels_from_total_and_vessels_from_liver_vessels():
    assert (OFFICIAL_PLAN.name, OFFICIAL_PLAN.support_task, OFFICIAL_PLAN.vessel_task) == \
        ("official", "total", "liver_vessels")
    assert OFFICIAL_PLAN.note == ""  # nothing to warn about in qc.json
    assert set(SUPPORT_CLASSES) == {"liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"}


def test_the_demo_plan_runs_one_model_and_warns_that_it_is_synthetic():
    assert (DEMO_PLAN.name, DEMO_PLAN.support_task, DEMO_PLAN.vessel_task) == ("demo", "demo_liver", "demo_liver")
    assert "synthetic" in DEMO_PLAN.note and "not meaningful on real anatomy" in DEMO_PLAN.note
    assert plan_model_parts(DEMO_PLAN) == [(TASKS["demo_liver"], 0)]  # support and vessels: the same model, once


def test_the_support_files_plan_runs_no_model():
    assert plan_model_parts(SUPPORT_FILES_PLAN) == []


def test_the_official_plan_needs_exactly_the_four_models_named_by_hand():
    folders = [task.parts[i].folder for task, i in plan_model_parts(OFFICIAL_PLAN)]
    assert set(folders) == {part.folder for part in NEEDED.values()}
    # total's other parts (vertebrae, muscles, ribs) hold none of the support classes
    assert not set(folders) & {TASKS["total"].parts[i].folder for i in (1, 3, 4)}


def test_a_missing_weights_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="weights folder not found"):
        check_official_weights(tmp_path / "missing")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(InputError, match="weights folder not found"):
        check_official_weights(tmp_path / "a_file")


def test_an_empty_weights_folder_names_a_model_folder_expected_in_it(tmp_path):
    with pytest.raises(InputError) as err:
        check_official_weights(tmp_path)
    message = str(err.value)
    assert any(f"expected {tmp_path / part.folder}/fold_0/checkpoint_final.pth" in message for part in NEEDED.values())
    assert "TotalSegmentator weights --task" in message


def test_a_folder_with_the_official_layout_gives_each_trainer_folder_once(official):
    folders = check_official_weights(official)
    assert len(folders) == len(set(folders)) == 4  # the crop model is needed twice, listed once
    assert set(folders) == {official / part.folder for part in NEEDED.values()}
    assert all(f.is_relative_to(official) for f in folders)


@pytest.mark.parametrize("left_out", sorted(NEEDED))
def test_every_needed_model_must_be_in_the_folder(tmp_path, left_out):
    root = tmp_path / "weights"
    for name, part in NEEDED.items():
        if name != left_out:
            _install(root, part)
    with pytest.raises(InputError, match=NEEDED[left_out].dataset):
        check_official_weights(root)


def test_weights_elsewhere_do_not_count_for_the_folder_checked(official, tmp_path, monkeypatch):
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(official))
    monkeypatch.setenv("HOLOSCAN_MODEL_PATH", str(official))
    (tmp_path / "map_weights").mkdir()
    with pytest.raises(InputError, match="not found"):
        check_official_weights(tmp_path / "map_weights")


def test_with_the_official_weights_installed_the_official_plan_is_chosen(official, no_other_weights):
    assert choose_model_plan([official], allow_demo=True) is OFFICIAL_PLAN
    assert choose_model_plan([official, MODELS], allow_demo=True, prefer="demo") is DEMO_PLAN
    assert choose_model_plan([official], allow_demo=False) is OFFICIAL_PLAN  # no demo needed: nothing refused


def test_without_the_crop_model_the_official_plan_cannot_run_and_the_demo_is_taken(tmp_path, no_other_weights):
    root = tmp_path / "weights"
    for name, part in NEEDED.items():
        if name != "crop":
            _install(root, part)
    assert choose_model_plan([root, MODELS], allow_demo=True) is DEMO_PLAN
    with pytest.raises(InputError, match="Dataset298"):
        choose_model_plan([root, MODELS], allow_demo=False)


def test_the_official_plan_runs_the_support_parts_the_vessel_model_and_the_crop_model():
    datasets = {task.parts[i].dataset.split("_")[0] for task, i in plan_model_parts(ModelPlan("official", "total",
                                                                                              "liver_vessels"))}
    # liver in part 1, IVC and portal vein in part 3, the 6 mm crop model, the hepatic vessel model
    assert datasets == {"Dataset291", "Dataset293", "Dataset298", "Dataset008"}


def test_a_named_model_folder_without_models_is_refused_not_replaced_by_the_demo(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for folder, message in ((tmp_path / "empty", "holds no nnU-Net model"), (tmp_path / "missing", "does not exist")):
        with pytest.raises(InputError, match=message):
            choose_model_plan([folder])
    rc = cli.enhanced_main(["-i", str(MODELS.parent / "demo" / "study"), "-o", str(tmp_path / "out"),
                            "--mode", "enhanced_liver", "-m", str(tmp_path / "empty"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "holds no nnU-Net model" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("env, refused", [
    ({}, False),
    ({"LIVERVESSELS_CLINICAL": "1"}, True),
    ({"MAP_MANIFEST": "1"}, True),  # a MAP: its package manifest exists
    ({"MAP_MANIFEST": "1", "LIVERVESSELS_ALLOW_DEMO_MODEL": "1"}, False),
    ({"LIVERVESSELS_CLINICAL": "1", "LIVERVESSELS_ALLOW_DEMO_MODEL": "true"}, False),
])
def test_the_demo_model_is_refused_in_a_map_and_in_clinical_mode(monkeypatch, tmp_path, env, refused):
    for key in ("LIVERVESSELS_CLINICAL", "LIVERVESSELS_ALLOW_DEMO_MODEL", "HOLOSCAN_PKG_MANIFEST_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(tmp_path / "no_official_weights"))
    for key, value in env.items():
        if key == "MAP_MANIFEST":
            (tmp_path / "pkg.json").write_text("{}")
            monkeypatch.setenv("HOLOSCAN_PKG_MANIFEST_PATH", str(tmp_path / "pkg.json"))
        else:
            monkeypatch.setenv(key, value)
    if refused:
        with pytest.raises(InputError, match="demo model may not be used here") as err:
            choose_model_plan([MODELS])
        # the message names the official models needed and how to bake them in
        assert "Dataset008_HepaticVessel" in str(err.value) and "package_map.sh --weights" in str(err.value)
        with pytest.raises(InputError):
            choose_model_plan([MODELS], prefer="demo")  # asking for the demo by name does not get round it
    else:
        assert choose_model_plan([MODELS]).name == "demo"
    # a caller's explicit decision wins over the environment
    assert choose_model_plan([MODELS], allow_demo=True).name == "demo"
    with pytest.raises(InputError):
        choose_model_plan([MODELS], allow_demo=False)
