"""Stand-in weights in TotalSegmentator's official layout, so TotalSegmentator 2.18 and this
project's engine load identical models (research use; no official weights are needed).

    .venv/bin/python bench/standin_weights.py                 # demo-derived 291-295, 297, 298, 008, 570
    .venv/bin/python bench/standin_weights.py --random        # random nnU-Net-sized 291-295, 297, 298, 008
    .venv/bin/python bench/standin_weights.py --random --tiny # the same, tiny networks (benchmark dry runs)

Writes <out>/nnunet/results/<DatasetNNN_...>/<trainer>__nnUNetPlans__3d_fullres/{plans.json,
dataset.json, fold_0/checkpoint_final.pth}; <out>/nnunet/results is what TOTALSEG_HOME_DIR/nnunet/results
(TotalSegmentator) and `-m` (this project) point at. Default out: build/standin_weights/{demo,random}
(build/ is git-ignored).

demo: the bundled Dataset990_LiverVesselsDemo network (2 mm, 5 outputs) re-saved under the
official names and class counts. The final 1x1x1 convolutions (every deep-supervision head, so the
state dict loads strictly) get one row per official output: rows of classes the demo knows are
copied from the demo's rows, every other row has zero weights and a bias of -100 (never the argmax;
nnU-Net sums Gaussian-weighted logits in fp16, so -1e4 would overflow to -inf and abort).
  * Dataset297_TotalSegmentator_total_3mm_1559subj, Dataset298_TotalSegmentator_total_6mm_1559subj
    (nnUNetTrainer_4000epochs_NoMirroring, 118 outputs): background<-bg, liver(5)<-liver,
    inferior_vena_cava(63)<-ivc, portal_vein_and_splenic_vein(64)<-portal vein; plans spacing 3 mm / 6 mm
    (TotalSegmentator resamples to that itself, so nnU-Net does not resample again).
  * the five `total` parts Dataset291-295 (nnUNetTrainerNoMirroring, 1.5 mm, 25/27/19/24/27 outputs):
    part 1 liver(5)<-liver, part 3 inferior_vena_cava(13)<-ivc and portal_vein_and_splenic_vein(14)
    <-portal vein, parts 2, 4, 5 background only (so `-ta total` runs all five models and merges them,
    the later part winning where part 1's liver and part 3's vessels overlap).
  * Dataset570_ct_liver_segments (nnUNetTrainerNoMirroring, 9 outputs): liver_segment_1<-liver, the other
    segments never; plans spacing the demo's 2 mm (TotalSegmentator resamples to 0.80 x 0.80 x 1.5 mm, then
    nnU-Net to the plans spacing, and both engines the same way back).
  * Dataset008_HepaticVessel (nnUNetTrainer, 3 outputs: background, liver_vessels, liver_tumor):
    liver_vessels<-demo liver_vessels, liver_tumor never; plans spacing stays the demo's 2 mm (TotalSegmentator
    runs 008 without resampling: nnU-Net resamples to the plans spacing itself). The demo has no
    "not vessel" class: demo background alone loses to liver_vessels in much of the liver. A 1x1x1
    conv is linear (no max), so background<-mean of the demo's bg, liver, ivc and portal vein rows
    plus a bias shift (--bg-shift, default 5: Dice 0.905 of the stand-in's vessels against the demo's
    own liver_vessels on a held-out phantom; 0: 0.26, 2: 0.58, 4: 0.86, 6: 0.86; --check prints it).

random: nnU-Net default plans for CT at 1.5 mm (PlainConvUNet, 6 stages, features 32..320, patch
128^3, kernels 3^3, strides 1,2,2,2,2,2) with nnU-Net's own random initialisation, for timing only:
the five `total` parts 291-295 (25, 27, 19, 24, 27 outputs), 297 (3 mm, 118), 298 (6 mm, 118) and 008
(1.5 mm here; the official 008 plans are not known offline, 3 outputs). About 120 MB per model.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.tasks import DEMO_CLASSES, TASKS, TOTAL_PART_CLASSES  # noqa: E402

DEMO_FOLDER = ROOT / "models" / "Dataset990_LiverVesselsDemo" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
NEVER_BIAS = -100.0  # nnU-Net accumulates Gaussian-weighted logits in fp16: -1e4 overflows
DEMO_ROW = {"background": 0, **{name: label for label, name in DEMO_CLASSES.items()}}

# CT intensity statistics for the random models' CTNormalization (typical whole-body values).
CT_INTENSITY = {"0": {"max": 3071.0, "min": -1024.0, "mean": 103.0, "std": 280.0, "median": 60.0,
                      "percentile_00_5": -958.0, "percentile_99_5": 1225.0}}


def _official_parts() -> dict[int, tuple[str, str, dict[int, str], float]]:
    """dataset id -> (dataset folder, trainer, classes, spacing in mm) as TotalSegmentator 2.18 names them."""
    out: dict[int, tuple[str, str, dict[int, str], float]] = {}
    for i, part in enumerate(TASKS["total"].parts):
        out[291 + i] = (part.dataset, part.trainer, part.classes, 1.5)
    for task, spacing in (("total_fast", 3.0), ("total_fastest", 6.0)):
        part = TASKS[task].parts[0]
        out[int(part.dataset[7:10])] = (part.dataset, part.trainer, part.classes, spacing)
    part = TASKS["liver_vessels"].parts[0]
    out[8] = (part.dataset, part.trainer, part.classes, 1.5)
    assert [len(c) for c in TOTAL_PART_CLASSES] == [len(out[291 + i][2]) for i in range(5)]
    return out


def _dataset_json(name: str, classes: dict[int, str], description: str) -> dict:
    labels = {"background": 0, **{v: k for k, v in sorted(classes.items())}}
    return {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 0, "file_ending": ".nii.gz",
            "name": name, "description": description}


def _write_model(results: Path, dataset: str, trainer: str, plans: dict, dataset_json: dict,
                 weights: dict[str, torch.Tensor], mirroring_axes) -> Path:
    folder = results / dataset / f"{trainer}__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    checkpoint = {
        "network_weights": weights,
        "trainer_name": trainer,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset_json},
        "inference_allowed_mirroring_axes": None if "NoMirroring" in trainer else (0, 1, 2),
        "current_epoch": 0,
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def _remap_heads(weights: dict[str, torch.Tensor], sources: dict[int, list[int] | int | None],
                 n_out: int, bg_shift: float = 0.0) -> dict[str, torch.Tensor]:
    """Deep-supervision heads with n_out rows: row r = demo row sources[r] (or the mean of a list of
    rows, + bg_shift on the bias), rows not in sources never win."""
    out = {}
    for key, value in weights.items():
        if not key.startswith("decoder.seg_layers."):
            out[key] = value  # not cloned: keys that share a tensor (conv / all_modules.0) keep sharing it
            continue
        new = torch.zeros((n_out,) + tuple(value.shape[1:]), dtype=value.dtype)
        if key.endswith(".bias"):
            new.fill_(NEVER_BIAS)
        for row, src in sources.items():
            if isinstance(src, list):
                new[row] = value[src].mean(0)
                if key.endswith(".bias"):
                    new[row] += bg_shift
            else:
                new[row] = value[src]
        out[key] = new
    return out


def write_demo(out: Path, bg_shift: float) -> list[Path]:
    plans = json.loads((DEMO_FOLDER / "plans.json").read_text())
    demo = torch.load(DEMO_FOLDER / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    weights = demo["network_weights"]
    parts = _official_parts()
    results = out / "nnunet" / "results"
    written = []
    for dataset_id in (297, 298, 291, 292, 293, 294, 295):
        dataset, trainer, classes, spacing = parts[dataset_id]
        inv = {v: k for k, v in classes.items()}
        sources = {0: DEMO_ROW["background"]}
        for name in ("liver", "inferior_vena_cava", "portal_vein_and_splenic_vein"):
            if name in inv:
                sources[inv[name]] = DEMO_ROW[name]
        p = _with_spacing(plans, dataset, spacing)
        dj = _dataset_json(dataset, classes, "stand-in: livervessels demo network under the official name")
        written.append(_write_model(results, dataset, trainer, p, dj,
                                    _remap_heads(weights, sources, len(classes) + 1), None))
    dataset, trainer, classes, _ = parts[8]
    inv = {v: k for k, v in classes.items()}
    sources = {0: [DEMO_ROW[n] for n in ("background", "liver", "inferior_vena_cava", "portal_vein_and_splenic_vein")],
               inv["liver_vessels"]: DEMO_ROW["liver_vessels"]}
    p = _with_spacing(plans, dataset, None)
    dj = _dataset_json(dataset, classes, "stand-in: livervessels demo network under the official name")
    written.append(_write_model(results, dataset, trainer, p, dj,
                                _remap_heads(weights, sources, len(classes) + 1, bg_shift), (0, 1, 2)))
    # liver_segments: the demo's liver as segment 1, segments 2-8 never
    part = TASKS["liver_segments"].parts[0]
    sources = {0: DEMO_ROW["background"], 1: DEMO_ROW["liver"]}
    dj = _dataset_json(part.dataset, part.classes, "stand-in: livervessels demo network under the official name")
    written.append(_write_model(results, part.dataset, part.trainer, _with_spacing(plans, part.dataset, None), dj,
                                _remap_heads(weights, sources, len(part.classes) + 1), None))
    return written


def _with_spacing(plans: dict, dataset: str, spacing: float | None) -> dict:
    p = copy.deepcopy(plans)
    p["dataset_name"] = dataset
    p["experiment_planner_used"] = "bench/standin_weights.py (stand-in for TotalSegmentator's model)"
    if spacing is not None:
        p["configurations"]["3d_fullres"]["spacing"] = [spacing] * 3
        p["original_median_spacing_after_transp"] = [spacing] * 3
    return p


def _random_plans(dataset: str, spacing: float, tiny: bool = False) -> dict:
    plans = json.loads((DEMO_FOLDER / "plans.json").read_text())
    p = _with_spacing(plans, dataset, spacing)
    config = p["configurations"]["3d_fullres"]
    # tiny: 3 stages, 8..32 features, patch 64^3 (the benchmark's dry run: plumbing, not speed)
    stages = 3 if tiny else 6
    config["patch_size"] = [64] * 3 if tiny else [128] * 3
    config["batch_size"] = 2
    arch = config["architecture"]["arch_kwargs"]
    arch.update({
        "n_stages": stages,
        "features_per_stage": [8, 16, 32] if tiny else [32, 64, 128, 256, 320, 320],
        "kernel_sizes": [[3, 3, 3]] * stages,
        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (stages - 1),
        "n_conv_per_stage": [2] * stages,
        "n_conv_per_stage_decoder": [2] * (stages - 1),
    })
    p["foreground_intensity_properties_per_channel"] = copy.deepcopy(CT_INTENSITY)
    return p


def write_random(out: Path, only: list[int] | None, seed: int, tiny: bool = False) -> list[Path]:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    results = out / "nnunet" / "results"
    written = []
    for dataset_id, (dataset, trainer, classes, spacing) in _official_parts().items():
        if only and dataset_id not in only:
            continue
        torch.manual_seed(seed + dataset_id)
        plans = _random_plans(dataset, spacing, tiny)
        config = plans["configurations"]["3d_fullres"]["architecture"]
        net = get_network_from_plans(config["network_class_name"], config["arch_kwargs"],
                                     config["_kw_requires_import"], 1, len(classes) + 1,
                                     allow_init=True, deep_supervision=True)
        dj = _dataset_json(dataset, classes, "stand-in: random weights for timing")
        weights = net.state_dict()  # keys sharing a tensor stay shared (a clone would double the file)
        written.append(_write_model(results, dataset, trainer, plans, dj, weights, None))
    return written


def check_demo_008(results: Path) -> float:
    """Dice of the 008 stand-in's liver_vessels against the demo model's own, on a held-out phantom."""
    import numpy as np

    from livervessels import nnunet_runner
    from livervessels.synthetic.phantom import make_phantom

    ph = make_phantom(seed=3, shape=(120, 120, 64), spacing=(2.0, 2.0, 2.5))
    image = ph.ct.astype(np.float32)
    demo = nnunet_runner.predict_labels(nnunet_runner.load_model(DEMO_FOLDER), image, ph.spacing)
    folder = results / "Dataset008_HepaticVessel" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    ours = nnunet_runner.predict_labels(nnunet_runner.load_model(folder), image, ph.spacing)
    a, b = demo == DEMO_ROW["liver_vessels"], ours == 1
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", action="store_true", help="random-weight nnU-Net-sized models for timing")
    ap.add_argument("--tiny", action="store_true",
                    help="with --random: 3-stage networks with a 64^3 patch (dry runs of the benchmarks)")
    ap.add_argument("--out", type=Path, help="default build/standin_weights/demo, .../random or .../tiny")
    ap.add_argument("--only", type=int, nargs="*", help="with --random: only these dataset ids (e.g. 297 298 8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bg-shift", type=float, default=5.0,
                    help="008 stand-in: added to the background bias (mean of demo bg/liver/ivc/pv rows)")
    ap.add_argument("--check", action="store_true", help="demo: print the 008 stand-in's agreement with the demo")
    args = ap.parse_args(argv)
    kind = ("tiny" if args.tiny else "random") if args.random else "demo"
    out = args.out or ROOT / "build" / "standin_weights" / kind
    t = time.perf_counter()
    written = write_random(out, args.only, args.seed, args.tiny) if args.random else write_demo(out, args.bg_shift)
    for folder in written:
        size = (folder / "fold_0" / "checkpoint_final.pth").stat().st_size / 2**20
        print(f"{folder.relative_to(out)}  ({size:.0f} MiB)")
    print(f"results folder: {out / 'nnunet' / 'results'}  ({time.perf_counter() - t:.1f} s)")
    if args.check and not args.random:
        dice = check_demo_008(out / "nnunet" / "results")
        print(f"008 stand-in liver_vessels vs demo liver_vessels: Dice {dice:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
