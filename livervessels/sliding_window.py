"""nnU-Net sliding-window inference that holds the class scores for one slab of slices at a time.

nnunetv2 accumulates the scores of every class over the whole image before taking the argmax:
classes x voxels in half precision, then the conversion to labels. For a `total` part (25 classes)
on a 512 x 512 x 1500 scan resampled to 1.5 mm that is several GB, which is why TotalSegmentator
splits large images into three overlapping pieces (and its labels then change near the seams).

Here the same tiles run in the same order, and a voxel's scores are final once the tiles have
moved past it along the first axis (nnunetv2 orders its tiles by that axis first). Those slices are
divided by the summed Gaussian weights, turned into labels with nnunetv2's own conversion, and
dropped. Every voxel sees the same additions in the same order as in nnunetv2's whole-image run,
so the labels are identical to it, while the scores held are at most one tile deep.

Used where that identity holds without resampling the scores: one fold, labels (not regions), and
a preprocessed image on the model's own grid, as in TotalSegmentator's flow (it resamples to the
model's spacing before nnU-Net). Anything else goes through nnunetv2's own path.

Research use only; not a medical device.
"""
from __future__ import annotations

import numpy as np
import torch


def slab_prediction_applies(predictor, preprocessed_shape: tuple[int, ...], properties: dict) -> bool:
    """Whether predict_labels_in_slabs gives nnunetv2's labels for this case (see the module docstring)."""
    label_manager = predictor.label_manager
    return (len(predictor.list_of_parameters) == 1 and not label_manager.has_regions
            and len(predictor.configuration_manager.patch_size) == 3
            and tuple(properties["shape_after_cropping_and_before_resampling"]) == tuple(preprocessed_shape))


@torch.inference_mode()
def predict_labels_in_slabs(predictor, data: torch.Tensor, properties: dict) -> np.ndarray:
    """Labels of a preprocessed image (channels, z, y, x in nnU-Net's order) on the image's original
    grid, as nnunetv2's predict_single_npy_array returns them, holding only one slab of scores.

    Raises:
        ValueError: slab_prediction_applies is false for this case.
        RuntimeError: the scores overflowed half precision (as nnunetv2 raises).
    """
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    if not slab_prediction_applies(predictor, tuple(data.shape[1:]), properties):
        raise ValueError("slab-wise prediction needs one fold, label outputs and no resampling of the scores")
    config = predictor.configuration_manager
    label_manager = predictor.label_manager
    patch = tuple(config.patch_size)
    n_threads = torch.get_num_threads()  # as nnunetv2: at most its default process count for the network
    from nnunetv2.configuration import default_num_processes
    torch.set_num_threads(min(default_num_processes, n_threads))
    try:
        network = predictor.network
        if not hasattr(network, "_orig_mod"):
            network.load_state_dict(predictor.list_of_parameters[0])
        else:
            network._orig_mod.load_state_dict(predictor.list_of_parameters[0])
        predictor.network = network.to(predictor.device)
        predictor.network.eval()
        autocast = (torch.autocast(predictor.device.type, enabled=True) if predictor.device.type == "cuda"
                    else _no_autocast())
        with autocast:
            padded, unpad = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
            slicers = predictor._internal_get_sliding_window_slicers(padded.shape[1:])
            on_device = bool(predictor.perform_everything_on_device) and predictor.device.type != "cpu"
            results_device = predictor.device if on_device else torch.device("cpu")
            padded = padded.to(results_device)
            gaussian = (compute_gaussian(patch, sigma_scale=1. / 8, value_scaling_factor=10, device=results_device)
                        if predictor.use_gaussian else 1)
            labels_cropped = _stream(predictor, padded, slicers, gaussian, patch[0], results_device, unpad,
                                     label_manager)
    finally:
        torch.set_num_threads(n_threads)

    dtype = np.uint8 if len(label_manager.foreground_labels) < 255 else np.uint16
    labels = np.zeros(properties["shape_before_cropping"], dtype=dtype)
    labels = insert_crop_into_image(labels, labels_cropped, properties["bbox_used_for_cropping"])
    return labels.transpose(predictor.plans_manager.transpose_backward)


def _stream(predictor, padded: torch.Tensor, slicers, gaussian, depth: int, results_device: torch.device,
            unpad: tuple, label_manager) -> np.ndarray:
    """The tile loop: scores for [start, start + depth) slices of the padded image at a time."""
    n_classes = label_manager.num_segmentation_heads
    _, z_size, y_size, x_size = padded.shape
    keep = unpad[1]  # the unpadded image's slices along the first axis
    keep_start = keep.start or 0
    keep_stop = z_size if keep.stop is None else keep.stop
    out = np.zeros((keep_stop - keep_start, *_sizes(unpad[2:], (y_size, x_size))), np.uint8)
    scores = torch.zeros((n_classes, depth, y_size, x_size), dtype=torch.half, device=results_device)
    weights = torch.zeros((depth, y_size, x_size), dtype=torch.half, device=results_device)
    starts = sorted({s[1].start for s in slicers})
    by_start: dict[int, list] = {s: [] for s in starts}
    for s in slicers:
        by_start[s[1].start].append(s)
    for k, start in enumerate(starts):
        for sl in by_start[start]:
            tile = torch.clone(padded[sl][None], memory_format=torch.contiguous_format).to(predictor.device)
            prediction = predictor._internal_maybe_mirror_and_predict(tile)[0].to(results_device)
            if predictor.use_gaussian:
                prediction *= gaussian
            local = (slice(None), slice(0, depth), sl[2], sl[3])
            scores[local] += prediction
            weights[local[1:]] += gaussian
        stop = starts[k + 1] if k + 1 < len(starts) else z_size  # slices no later tile reaches
        done = stop - start
        final = torch.div(scores[:, :done], weights[:done])
        if torch.any(torch.isinf(final)):
            raise RuntimeError("Encountered inf in predicted array (half-precision overflow of the class scores)")
        lo, hi = max(start, keep_start), min(stop, keep_stop)
        if hi > lo:
            part = final[(slice(None), slice(lo - start, hi - start), *unpad[2:])]
            # nnunetv2 passes the half scores through its resampling (an identity copy here) as numpy
            out[lo - keep_start:hi - keep_start] = np.asarray(
                label_manager.convert_logits_to_segmentation(part.cpu().numpy()))
        # carry the slices the next tiles still add to; clear the rest
        if done < depth:
            scores[:, :depth - done] = scores[:, done:].clone()
            weights[:depth - done] = weights[done:].clone()
        scores[:, depth - done:] = 0
        weights[depth - done:] = 0
    return out


def _sizes(slicer: tuple, full: tuple[int, int]) -> tuple[int, ...]:
    return tuple((s.stop if s.stop is not None else n) - (s.start or 0) for s, n in zip(slicer, full))


class _no_autocast:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
