"""Load nnU-Net v2 models once per process and run them on arrays in memory.

We build the network from plans.json and hand it to nnunetv2's predictor through its manual
initialisation. That skips nnunetv2's trainer lookup, which imports every trainer module (and
through them timm and torchvision) only to learn which class built the network: slower start-up
and a hard dependency on a torchvision build matching torch.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from livervessels.errors import InputError

log = logging.getLogger(__name__)

_CACHE: dict[tuple[str, int, str, float, bool], "LoadedModel"] = {}
_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    predictor: object  # nnunetv2 nnUNetPredictor
    folder: Path
    spacing_zyx: tuple[float, ...]
    patch_size: tuple[int, ...]
    labels: dict[str, int]
    settings: tuple = ()  # (fold, step_size, mirroring, cpu_bf16): to reload elsewhere after a CUDA OOM


def resolve_device(device: str | None) -> torch.device:
    """'gpu', 'gpu:N', 'cuda', 'cpu' or None (GPU when present)."""
    if device in (None, "", "auto"):
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    name = device.lower()
    if name == "cpu":
        return torch.device("cpu")
    if name in ("gpu", "cuda") or name.startswith(("gpu:", "cuda:")):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available():
            if ":" in name:
                raise InputError(f"--device {device} asked for a GPU but none is available; use --device cpu")
            log.warning("no GPU available: running on the CPU (slow for large CTs)")
            return torch.device("cpu")
        if index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) present")
        return torch.device("cuda", index)
    raise InputError(f"unknown device '{device}'; use gpu, gpu:N or cpu")


class _CpuBf16(torch.nn.Module):
    """Runs the wrapped network under bfloat16 autocast on the CPU (nnunetv2 autocasts only on CUDA)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.net(x).float()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)


def load_model(folder: Path, fold: int = 0, device: torch.device | None = None, step_size: float = 0.5,
               mirroring: bool = False, cpu_bf16: bool = False) -> LoadedModel:
    """The model in an nnU-Net trainer folder, loaded once per process and settings."""
    device = device or torch.device("cpu")
    key = (str(Path(folder).resolve()), fold, str(device), step_size, cpu_bf16)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(Path(folder), fold, device, step_size, mirroring, cpu_bf16)
        return _CACHE[key]


def _load(folder: Path, fold: int, device: torch.device, step_size: float, mirroring: bool,
          cpu_bf16: bool) -> LoadedModel:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads((folder / "dataset.json").read_text())
    plans = json.loads((folder / "plans.json").read_text())
    checkpoint = torch.load(folder / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    plans_manager = PlansManager(plans)  # also converts the older plans format (UNet_class_name)
    configuration = checkpoint.get("init_args", {}).get("configuration", "3d_fullres")
    config = plans_manager.get_configuration(configuration)
    label_manager = plans_manager.get_label_manager(dataset_json)
    network = get_network_from_plans(
        config.network_arch_class_name,
        config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import,
        determine_num_input_channels(plans_manager, config, dataset_json),
        label_manager.num_segmentation_heads,
        allow_init=False,
        deep_supervision=False,
    )
    network.load_state_dict(checkpoint["network_weights"])
    if cpu_bf16 and device.type == "cpu":
        network = _CpuBf16(network)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a CUDA-only notice on every CPU run
        predictor = nnUNetPredictor(
            tile_step_size=step_size,
            use_gaussian=True,
            use_mirroring=mirroring,
            perform_everything_on_device=device.type == "cuda",
            device=device,
            verbose=False,
            verbose_preprocessing=False,
            allow_tqdm=False,
        )
    predictor.manual_initialization(
        network,
        plans_manager,
        config,
        [checkpoint["network_weights"]],
        dataset_json,
        checkpoint.get("trainer_name", "nnUNetTrainer"),
        checkpoint.get("inference_allowed_mirroring_axes") if mirroring else None,
    )
    network.to(device).eval()
    log.info("loaded %s (fold %d) on %s", folder, fold, device)
    return LoadedModel(
        predictor=predictor,
        folder=folder,
        spacing_zyx=tuple(config.spacing),
        patch_size=tuple(config.patch_size),
        labels={k: v for k, v in dataset_json["labels"].items() if isinstance(v, int)},
        settings=(fold, step_size, mirroring, cpu_bf16),
    )


def predict_labels(model: LoadedModel, image_xyz: np.ndarray, spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """Run the model on an image in RAS voxel order; returns its labels on the same grid.

    nnU-Net expects (z, y, x) arrays with spacing in the same order (SimpleITK's convention), so
    the canonical (x, y, z) image is transposed in and the labels transposed back. On CUDA
    out-of-memory it retries with the results accumulated on the CPU, then on the CPU, warning.
    """
    data = np.ascontiguousarray(image_xyz.transpose(2, 1, 0)[None], dtype=np.float32)
    # float32 spacing: what nnU-Net reads from a NIfTI header when TotalSegmentator hands it a file
    props = {"spacing": [float(np.float32(s)) for s in spacing_xyz[::-1]]}

    def run(predictor) -> np.ndarray:
        with torch.inference_mode():
            return predictor.predict_single_npy_array(data, props)

    try:
        seg = run(model.predictor)
    except torch.OutOfMemoryError:
        seg = None
        _free_cuda()
        if getattr(model.predictor, "perform_everything_on_device", False):
            log.warning("GPU out of memory: retrying %s with results accumulated on the CPU", model.folder.name)
            model.predictor.perform_everything_on_device = False  # stays lighter for later calls too
            try:
                seg = run(model.predictor)
            except torch.OutOfMemoryError:
                _free_cuda()
        if seg is None:
            log.warning("GPU out of memory again: running %s on the CPU (slow)", model.folder.name)
            fold, step_size, mirroring, cpu_bf16 = model.settings or (0, 0.5, False, False)
            seg = run(load_model(model.folder, fold, torch.device("cpu"), step_size, mirroring, cpu_bf16).predictor)
    return np.ascontiguousarray(np.asarray(seg).transpose(2, 1, 0)).astype(np.uint8)


def _free_cuda() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
