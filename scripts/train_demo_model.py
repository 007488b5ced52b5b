"""Train the small demo nnU-Net v2 model on synthetic phantoms and save it in nnU-Net's layout.

    python scripts/train_demo_model.py [--out models] [--iterations 700] [--seed 0]

Writes models/Dataset990_LiverVesselsDemo/nnUNetTrainer__nnUNetPlans__3d_fullres/
{dataset.json, plans.json, fold_0/checkpoint_final.pth}: the same files an official
nnU-Net/TotalSegmentator model has, so the demo goes through exactly the loading and inference
path the official weights use. The network is a PlainConvUNet as nnU-Net builds it, only narrow
and shallow, so it trains on a 2-core CPU in minutes and weighs about 2 MB. It predicts liver,
inferior vena cava, portal vein trunk and liver vessels on the phantoms; it knows nothing of real
anatomy and is not for clinical images.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from livervessels.synthetic.phantom import make_phantom
from livervessels.tasks import DEMO_CLASSES, DEMO_DATASET

SPACING_MM = 2.0
PATCH = (64, 64, 64)
FEATURES = (8, 16, 32, 64, 64)
FIELD_OF_VIEW_MM = (240.0, 240.0, 160.0)


def plans_json(intensity: dict) -> dict:
    n = len(FEATURES)
    return {
        "dataset_name": DEMO_DATASET,
        "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": [SPACING_MM] * 3,
        "original_median_shape_after_transp": [int(FIELD_OF_VIEW_MM[i] / SPACING_MM) for i in (2, 1, 0)],
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "configurations": {
            "3d_fullres": {
                "data_identifier": "nnUNetPlans_3d_fullres",
                "preprocessor_name": "DefaultPreprocessor",
                "batch_size": 2,
                "patch_size": list(PATCH),
                "median_image_size_in_voxels": [int(FIELD_OF_VIEW_MM[i] / SPACING_MM) for i in (2, 1, 0)],
                "spacing": [SPACING_MM] * 3,
                "normalization_schemes": ["CTNormalization"],
                "use_mask_for_norm": [False],
                "resampling_fn_data": "resample_data_or_seg_to_shape",
                "resampling_fn_seg": "resample_data_or_seg_to_shape",
                "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
                "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
                "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
                "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                       "force_separate_z": None},
                "architecture": {
                    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                    "arch_kwargs": {
                        "n_stages": n,
                        "features_per_stage": list(FEATURES),
                        "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[3, 3, 3]] * n,
                        "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
                        "n_conv_per_stage": [2] * n,
                        "n_conv_per_stage_decoder": [2] * (n - 1),
                        "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                        "dropout_op": None,
                        "dropout_op_kwargs": None,
                        "nonlin": "torch.nn.LeakyReLU",
                        "nonlin_kwargs": {"inplace": True},
                    },
                    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
                },
                "batch_dice": True,
            }
        },
        "experiment_planner_used": "train_demo_model.py (hand-written plans, nnU-Net v2 format)",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": intensity},
    }


def dataset_json(n_training: int) -> dict:
    labels = {"background": 0} | {name: label for label, name in DEMO_CLASSES.items()}
    return {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": n_training, "file_ending": ".nii.gz",
            "name": DEMO_DATASET, "description": "synthetic abdominal phantoms (livervessels project)"}


def make_cases(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Phantoms at the model spacing in nnU-Net's (z, y, x) order, with varied contrast and noise."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(f / SPACING_MM) for f in FIELD_OF_VIEW_MM)
    cases = []
    for i in range(n):
        ph = make_phantom(seed=seed * 1000 + i, shape=shape, spacing=(SPACING_MM,) * 3,
                          noise_hu=float(rng.uniform(6, 25)), contrast_hu=float(rng.uniform(120, 260)))
        cases.append((ph.ct.transpose(2, 1, 0).astype(np.float32), ph.labels.transpose(2, 1, 0).astype(np.int64)))
    return cases


def intensity_properties(cases) -> dict:
    fg = np.concatenate([img[lab > 0][::7] for img, lab in cases])
    return {"max": float(fg.max()), "min": float(fg.min()), "mean": float(fg.mean()), "std": float(fg.std()),
            "median": float(np.median(fg)), "percentile_00_5": float(np.percentile(fg, 0.5)),
            "percentile_99_5": float(np.percentile(fg, 99.5))}


def normalise(img: np.ndarray, p: dict) -> np.ndarray:
    """nnU-Net's CTNormalization: clip to the foreground percentiles, then z-score."""
    return ((np.clip(img, p["percentile_00_5"], p["percentile_99_5"]) - p["mean"]) / max(p["std"], 1e-8)).astype(
        np.float32)


def sample_patch(img, lab, rng, foreground_share=0.67):
    """A random patch; two thirds centred on a vessel or trunk voxel so thin structures are seen."""
    if rng.random() < foreground_share:
        fg = np.argwhere(lab >= 3)
        centre = fg[rng.integers(len(fg))]
    else:
        centre = np.array([rng.integers(n) for n in lab.shape])
    starts = [int(np.clip(c - p // 2, 0, max(n - p, 0))) for c, p, n in zip(centre, PATCH, lab.shape)]
    sl = tuple(slice(s, s + p) for s, p in zip(starts, PATCH))
    x, y = img[sl], lab[sl]
    pad = [(0, p - n) for p, n in zip(PATCH, x.shape)]
    return np.pad(x, pad, constant_values=x.min()), np.pad(y, pad)


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = F.cross_entropy(logits, target)
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)  # batch dice, as nnU-Net's default for 3d_fullres
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + 1e-5) / (denom + 1e-5)
    return ce + (1 - dice[1:].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models")
    ap.add_argument("--iterations", type=int, default=700)
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    cases = make_cases(args.cases, args.seed)
    props = intensity_properties(cases)
    plans = plans_json(props)
    cases = [(normalise(img, props), lab) for img, lab in cases]
    print(f"{len(cases)} phantoms in {time.time() - t0:.0f} s")

    arch = plans["configurations"]["3d_fullres"]["architecture"]
    net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1,
                                 len(DEMO_CLASSES) + 1, allow_init=True, deep_supervision=False)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=args.iterations, pct_start=0.1)
    net.train()
    for it in range(args.iterations):
        batch = [sample_patch(*cases[rng.integers(len(cases))], rng) for _ in range(2)]
        x = torch.from_numpy(np.stack([b[0] for b in batch])[:, None])
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        loss = dice_ce_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        opt.step()
        sched.step()
        if it % 50 == 0 or it == args.iterations - 1:
            print(f"iteration {it:4d}  loss {loss.item():.3f}  {time.time() - t0:.0f} s", flush=True)

    folder = Path(args.out) / DEMO_DATASET / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True, exist_ok=True)
    ds = dataset_json(len(cases))
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(ds, indent=2))
    (Path(args.out) / DEMO_DATASET / "dataset.json").write_text(json.dumps(ds, indent=2))
    checkpoint = {
        "network_weights": net.state_dict(),  # keeps the encoder weights shared with the decoder
        "trainer_name": "nnUNetTrainer",
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": ds},
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": args.iterations,
    }
    torch.save(checkpoint, folder / "fold_0" / "checkpoint_final.pth")
    print(f"saved {folder} after {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
