"""Labels from class scores on the model's grid, one class resampled at a time.

When a model's spacing differs from the scan's, nnunetv2 (convert_predicted_logits_to_segmentation_
with_correct_shape) resamples the scores of every class to the scan's grid in half precision and
then takes the argmax: classes x voxels x 2 bytes, plus a float64 image per class on the way. On a
512 x 512 x 1500 CT that alone is several GB per class.

labels_from_scores resamples each class with the same skimage call, rounds it to half precision
as nnunetv2 stores it, and keeps a running maximum and its class (the first class on ties, as
argmax), so it returns the same labels while holding one class at a time. Regions (sigmoid
outputs), resampling slice by slice and other resampling functions go through nnunetv2.

Research use only; not a medical device.
"""
from __future__ import annotations

import numpy as np
import torch


def classwise_export_applies(predictor, properties: dict) -> bool:
    """Whether labels_from_scores gives nnunetv2's labels for this case (see the module docstring)."""
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    config, plans = predictor.configuration_manager, predictor.plans_manager
    kwargs = config.configuration.get("resampling_fn_probabilities_kwargs", {})
    if (predictor.label_manager.has_regions or kwargs.get("is_seg", False)
            or config.configuration.get("resampling_fn_probabilities") != "resample_data_or_seg_to_shape"
            or len(config.spacing) != len(properties["shape_after_cropping_and_before_resampling"])):
        return False
    target = [properties["spacing"][i] for i in plans.transpose_forward]
    separate, _ = determine_do_sep_z_and_axis(kwargs.get("force_separate_z", False), config.spacing, target)
    return not separate


def labels_from_scores(predictor, scores: torch.Tensor | np.ndarray, properties: dict) -> np.ndarray:
    """Labels on the scan's grid (nnU-Net's axis order before transpose_forward, as nnunetv2's
    convert_predicted_logits_to_segmentation_with_correct_shape returns them).

    Raises:
        ValueError: classwise_export_applies is false for this case.
    """
    from acvl_utils.cropping_and_padding.bounding_boxes import insert_crop_into_image
    from skimage.transform import resize

    if not classwise_export_applies(predictor, properties):
        raise ValueError("class-wise export needs label outputs resampled in 3D by nnunetv2's default function")
    scores = scores.cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    stored = scores.dtype  # nnunetv2 keeps the resampled scores in the dtype they came in
    order = predictor.configuration_manager.configuration.get("resampling_fn_probabilities_kwargs", {}).get("order", 1)
    shape = tuple(properties["shape_after_cropping_and_before_resampling"])
    dtype = np.uint8 if len(predictor.label_manager.foreground_labels) < 255 else np.uint16
    best = labels = None
    for c in range(scores.shape[0]):
        channel = scores[c].astype(float)  # nnunetv2 resamples the scores in float64
        if channel.shape != shape:
            channel = resize(channel, shape, order, mode="edge", anti_aliasing=False)
        channel = channel.astype(stored)
        if best is None:
            best, labels = channel, np.zeros(shape, dtype)
            continue
        higher = channel > best
        labels[higher] = c
        np.maximum(best, channel, out=best)
        del channel, higher
    full = np.zeros(properties["shape_before_cropping"], dtype=dtype)
    full = insert_crop_into_image(full, labels, properties["bbox_used_for_cropping"])
    return full.transpose(predictor.plans_manager.transpose_backward)
