"""Load nnU-Net v2 models once per process and run them on arrays in memory.

We build the network from plans.json and hand it to nnunetv2's predictor through its manual
initialisation. That skips nnunetv2's trainer lookup, which imports every trainer module (and
through them timm and torchvision) only to learn which class built the network: slower start-up
and a hard dependency on a torchvision build matching torch.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from livervessels.errors import InputError
from livervessels.nnunet_export import classwise_export_applies, labels_from_scores
from livervessels.nnunet_preprocess import preprocess_for_prediction
from livervessels.sliding_window import predict_labels_in_slabs, slab_prediction_applies

log = logging.getLogger(__name__)

# folder, fold, device, tile step, mirroring, precision -> the loaded model
_CACHE: dict[tuple[str, int, str, float, bool, str], "LoadedModel"] = {}
_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    predictor: object  # nnunetv2 nnUNetPredictor
    folder: Path
    spacing_zyx: tuple[float, ...]
    patch_size: tuple[int, ...]
    labels: dict[str, int]
    settings: tuple = ()  # (fold, step_size, mirroring): to reload on the CPU after a CUDA OOM
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    checkpoint_sha256: str = ""  # of fold_N/checkpoint_final.pth, for the QC report


class _Autocast(torch.nn.Module):
    """Runs the wrapped network under a fixed autocast setting.

    nnunetv2 autocasts to float16 on CUDA and not at all on the CPU; this wrapper's own autocast
    context (inner contexts win) gives bfloat16 on the CPU, bfloat16 on CUDA, or true fp32 on CUDA
    (dtype None: autocast disabled).
    """

    def __init__(self, net: torch.nn.Module, device_type: str, dtype: torch.dtype | None):
        super().__init__()
        self.net = net
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype is None:
            with torch.autocast(self.device_type, enabled=False):
                return self.net(x.float())
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.net(x).float()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)


def _with_precision(network: torch.nn.Module, device: torch.device, precision: str) -> torch.nn.Module:
    """The network wrapped so it runs in `precision` on `device` (fp16 on CUDA: nnunetv2's own autocast)."""
    if device.type == "cuda":
        if precision == "fp16":
            return network
        return _Autocast(network, "cuda", torch.bfloat16 if precision == "bf16" else None)
    if precision == "bf16":
        return _Autocast(network, "cpu", torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision {precision} is not available on {device}")
    return network


def load_model(folder: Path, fold: int = 0, device: torch.device | None = None, step_size: float = 0.5,
               mirroring: bool = False, precision: str = "fp32") -> LoadedModel:
    """The model in an nnU-Net trainer folder, loaded once per process and settings.

    device: a resolved torch device (livervessels.compute); precision: fp32, bf16 or fp16 (CUDA).

    Raises:
        InputError: the checkpoint cannot be read or does not fit the network its plans describe.
    """
    device = device or torch.device("cpu")
    key = (str(Path(folder).resolve()), fold, str(device), step_size, mirroring, precision)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load(Path(folder), fold, device, step_size, mirroring, precision)
        return _CACHE[key]


def _load(folder: Path, fold: int, device: torch.device, step_size: float, mirroring: bool,
          precision: str) -> LoadedModel:
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    dataset_json = json.loads((folder / "dataset.json").read_text())
    plans = json.loads((folder / "plans.json").read_text())
    checkpoint_path = folder / f"fold_{fold}" / "checkpoint_final.pth"
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, ImportError) as exc:  # truncated, corrupt or unreadable
        raise InputError(f"model checkpoint {checkpoint_path} cannot be read ({type(exc).__name__}); "
                         f"reinstall that model (TotalSegmentator weights --task ...)") from exc
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
    try:
        network.load_state_dict(checkpoint["network_weights"])
    except (KeyError, RuntimeError) as exc:  # weights of another network than plans.json describes
        raise InputError(f"model checkpoint {checkpoint_path} does not fit the network in {folder / 'plans.json'} "
                         f"({type(exc).__name__}); reinstall that model (TotalSegmentator weights --task ...)"
                         ) from exc
    network = _with_precision(network, device, precision)
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
    log.info("loaded %s (fold %d) on %s, %s", folder, fold, device, precision)
    return LoadedModel(
        predictor=predictor,
        folder=folder,
        spacing_zyx=tuple(config.spacing),
        patch_size=tuple(config.patch_size),
        labels={k: v for k, v in dataset_json["labels"].items() if isinstance(v, int)},
        settings=(fold, step_size, mirroring),
        device=device,
        precision=precision,
        checkpoint_sha256=_sha256(checkpoint_path),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def predict_labels(model: LoadedModel, image_xyz: np.ndarray, spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """Run the model on an image in RAS voxel order; returns its labels on the same grid.

    nnU-Net expects (z, y, x) arrays with spacing in the same order (SimpleITK's convention), so
    the canonical (x, y, z) image is transposed in and the labels transposed back. On CUDA
    out-of-memory it retries with the results accumulated on the CPU, then on the CPU, warning.

    Raises:
        torch.cuda.OutOfMemoryError: only when the CPU fallback also runs out of memory.
    """
    data = image_xyz.transpose(2, 1, 0)[None]  # a view: preprocessing makes the one float32 copy
    # float32 spacing: what nnU-Net reads from a NIfTI header when TotalSegmentator hands it a file
    props = {"spacing": [float(np.float32(s)) for s in spacing_xyz[::-1]]}

    def run(predictor) -> np.ndarray:
        with torch.inference_mode():
            return _predict(predictor, data, props)

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
            fold, step_size, mirroring = model.settings or (0, 0.5, False)
            # the CPU has no fp16 autocast worth using: fp32 there (bf16 stays bf16)
            precision = "bf16" if model.precision == "bf16" else "fp32"
            seg = run(load_model(model.folder, fold, torch.device("cpu"), step_size, mirroring, precision).predictor)
    return np.ascontiguousarray(np.asarray(seg).transpose(2, 1, 0)).astype(np.uint8)


def _predict(predictor, data: np.ndarray, props: dict) -> np.ndarray:
    """nnunetv2's predict_single_npy_array with bounded host memory and the same labels: one
    full-resolution copy in preprocessing (livervessels.nnunet_preprocess), class scores held one
    slab at a time where the model's grid is the scan's (livervessels.sliding_window), else one
    class resampled at a time (livervessels.nnunet_export); other cases run nnunetv2's own code."""
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape

    image, props = preprocess_for_prediction(predictor, data, props)
    image = torch.from_numpy(image)
    if slab_prediction_applies(predictor, tuple(image.shape[1:]), props):
        return predict_labels_in_slabs(predictor, image, props)
    scores = predictor.predict_logits_from_preprocessed_data(image).cpu()
    del image
    if classwise_export_applies(predictor, props):
        return labels_from_scores(predictor, scores, props)
    return convert_predicted_logits_to_segmentation_with_correct_shape(
        scores, predictor.plans_manager, predictor.configuration_manager, predictor.label_manager, props)


def _free_cuda() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
