"""Labels from class scores on the model's grid, one class resampled at a time.

When a model's spacing differs from the scan's, nnunetv2 (convert_predicted_logits_to_segmentation_
with_correct_shape) resamples the scores of every class to the scan's grid in half precision and
then takes the argmax: classes x voxels x 2 bytes, plus a float64 image per class on the way. On a
512 x 512 x 1500 CT that alone is several GB per class.

labels_from_scores resamples each class with the same skimage call, rounds it to half precision
as nnunetv2 stores it, and keeps a running maximum and its class (the first class on ties, as
argmax), so it returns the same labels while holding one class at a time; with
livervessels.lean_resize it does so a block of rows at a time, so only the labels are full size.
Regions (sigmoid outputs), resampling slice by slice and other resampling functions go through
nnunetv2.

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

    from livervessels import lean_resize

    if not classwise_export_applies(predictor, properties):
        raise ValueError("class-wise export needs label outputs resampled in 3D by nnunetv2's default function")
    scores = scores.cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    stored = scores.dtype  # nnunetv2 keeps the resampled scores in the dtype they came in
    order = predictor.configuration_manager.configuration.get("resampling_fn_probabilities_kwargs", {}).get("order", 1)
    shape = tuple(properties["shape_after_cropping_and_before_resampling"])
    dtype = np.uint8 if len(predictor.label_manager.foreground_labels) < 255 else np.uint16
    labels = np.zeros(shape, dtype)
    blocks, zooms = [(0, shape[0])], None
    if scores.shape[1:] != shape and lean_resize.reproduces(scores.shape[1:], shape):
        # nnunetv2 resamples each class in float64 (exact from the stored scores)
        zooms = [lean_resize.SkimageZoom(scores[c].astype(float), shape, order) for c in range(scores.shape[0])]
        blocks = list(zooms[0].row_blocks())
    for start, stop in blocks:
        best = None
        for c in range(scores.shape[0]):
            if zooms is not None:
                values = zooms[c].rows(start, stop)
            elif scores.shape[1:] != shape:
                values = resize(scores[c].astype(float), shape, order, mode="edge", anti_aliasing=False)
            else:  # same grid: nnunetv2's float64 round trip gives the stored values back
                values = scores[c]
            values = values.astype(stored)
            if best is None:
                best = values
                continue
            higher = values > best
            labels[start:stop][higher] = c
            np.maximum(best, values, out=best)
            del values, higher
    full = np.zeros(properties["shape_before_cropping"], dtype=dtype)
    full = insert_crop_into_image(full, labels, properties["bbox_used_for_cropping"])
    return full.transpose(predictor.plans_manager.transpose_backward)
