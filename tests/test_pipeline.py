"""The pipeline's model plan and model preloading (livervessels/pipeline.py)."""
from __future__ import annotations

import numpy as np

from conftest import MODELS
from livervessels import nnunet_runner
from livervessels.geometry import Volume
from livervessels.pipeline import ModelPlan, choose_model_plan, plan_model_parts, preload_models, run_liver_vessels


def test_the_official_plan_runs_the_support_parts_the_vessel_model_and_the_crop_model():
    datasets = {task.parts[i].dataset.split("_")[0] for task, i in plan_model_parts(ModelPlan("official", "total",
                                                                                              "liver_vessels"))}
    # liver in part 1, IVC and portal vein in part 3, the 6 mm crop model, the hepatic vessel model
    assert datasets == {"Dataset291", "Dataset293", "Dataset298", "Dataset008"}


def test_preloaded_models_are_the_ones_the_run_uses(monkeypatch, small_phantom):
    nnunet_runner._CACHE.clear()
    plan = choose_model_plan([MODELS])
    preload_models(plan, [MODELS], "cpu").join()
    assert len(nnunet_runner._CACHE) == 1  # the demo model
    loads = []
    real = nnunet_runner._load
    monkeypatch.setattr(nnunet_runner, "_load", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    result = run_liver_vessels(Volume(small_phantom.ct, small_phantom.affine), model_dirs=[MODELS], device="cpu",
                               plan=plan, split=False)
    assert loads == []  # nothing loaded twice
    assert np.any(result.masks["liver"])
