"""nnU-Net's inference preprocessing with at most one full-resolution working copy of the image.

nnunetv2's DefaultPreprocessor.run_case_npy, as predict_single_npy_array runs it, holds several
full-resolution copies of a scan: a float32 copy, a float64 copy for resampling, the float64 spline
coefficients of that copy, and a float64 mask per label of the nonzero map it resamples too (which
prediction then drops). On a 512 x 512 x 1500 CT that is over 10 GB.

preprocess_for_prediction runs the same steps with nnunetv2's own functions (transpose, crop to the
nonzero box, the plan's normalisation) on views of the caller's image and resamples with the same
skimage resize call nnunetv2 makes, computed by livervessels.lean_resize: skimage computes in
float64 either way and rounds once to float32, which is where nnunetv2's result ends as well, so
the image is bit-identical (tests/test_nnunet_preprocess.py compares the two). For CT plans
(nnunetv2's CTNormalization, voxel by voxel with fixed statistics) the scan is normalised a slab at
a time straight into the resampling's float64 coefficients, so the only full-resolution working
array is those coefficients; other normalisations work on one float32 copy. Cases that path does
not cover (anisotropic spacing resampled slice by slice, another preprocessor or resampling
function) go through nnunetv2's run_case_npy unchanged.

Research use only; not a medical device.
"""
from __future__ import annotations

import numpy as np


def preprocess_for_prediction(predictor, image: np.ndarray, properties: dict) -> tuple[np.ndarray, dict]:
    """(preprocessed float32 image, properties) for nnU-Net prediction, as run_case_npy returns them.

    image: (channels, z, y, x) in any numeric dtype (a view is fine: it is not modified);
    properties: {"spacing": [z, y, x]}, completed here as nnunetv2 completes it.
    """
    from nnunetv2.preprocessing.cropping.cropping import crop_to_nonzero
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
    from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

    plans, config = predictor.plans_manager, predictor.configuration_manager
    preprocessor = config.preprocessor_class(verbose=False)
    properties = dict(properties)
    if not _lean_path_applies(preprocessor, config, DefaultPreprocessor):
        data, _, properties = preprocessor.run_case_npy(image, None, properties, plans, config,
                                                        predictor.dataset_json)
        return data, properties

    # Transposed and cropped views of the caller's image: the nonzero map and its box are the same
    # on the stored dtype as on its float32 copy (zero stays zero).
    view = image.transpose([0, *[i + 1 for i in plans.transpose_forward]])
    original_spacing = [properties["spacing"][i] for i in plans.transpose_forward]
    properties["shape_before_cropping"] = view.shape[1:]
    view, nonzero, bbox = crop_to_nonzero(view, None)
    properties["bbox_used_for_cropping"] = bbox
    properties["shape_after_cropping_and_before_resampling"] = view.shape[1:]
    target_spacing = list(config.spacing)
    if len(target_spacing) < len(view.shape[1:]):  # 2d configurations keep the slice spacing
        target_spacing = [original_spacing[0]] + target_spacing
    new_shape = tuple(int(s) for s in compute_new_shape(view.shape[1:], original_spacing, target_spacing))
    resample = bool(np.any(np.array(view.shape[1:]) != np.array(new_shape)))
    separate_z = _separate_z(config, original_spacing, target_spacing)
    order = config.configuration.get("resampling_fn_data_kwargs", {}).get("order", 3)
    if resample and not separate_z and _slab_normalisation_applies(config, view.shape[1:], new_shape):
        del nonzero
        return _normalise_and_resize_by_slab(view, config, plans, new_shape, order), properties

    data = view.astype(np.float32)  # the one full-resolution copy (run_case_npy makes it too)
    del view
    data = preprocessor._normalize(data, nonzero, config, plans.foreground_intensity_properties_per_channel)
    del nonzero
    if separate_z and resample:
        data = config.resampling_fn_data(data, new_shape, original_spacing, target_spacing)
    elif resample:
        holder = [data]
        del data
        data = _resize_float32(holder, new_shape, order)
    return data, properties


# Normalisations that act voxel by voxel with fixed statistics, so a slab at a time gives the same
# float32 values as the whole image.
_VOXELWISE_NORMALISATIONS = ("CTNormalization",)
_SLAB_BYTES = 256 << 20


def _slab_normalisation_applies(config, shape, new_shape) -> bool:
    from livervessels import lean_resize

    return all(s in _VOXELWISE_NORMALISATIONS for s in config.normalization_schemes) and \
        lean_resize.reproduces(shape, new_shape)


def _normalise_and_resize_by_slab(view: np.ndarray, config, plans, new_shape, order: int) -> np.ndarray:
    """The plan's CT normalisation and the resize per channel, the image normalised a slab of rows at
    a time straight into the resize's float64 coefficients: no float32 copy of the whole scan. The
    normaliser is nnunetv2's own class, applied as its _normalize applies it."""
    from nnunetv2.preprocessing.normalization.default_normalization_schemes import CTNormalization

    from livervessels import lean_resize

    out = np.zeros((view.shape[0], *new_shape), np.float32)
    rows = max(1, _SLAB_BYTES // (4 * int(np.prod(view.shape[2:], dtype=np.int64))))
    for c in range(view.shape[0]):
        normaliser = CTNormalization(use_mask_for_norm=config.use_mask_for_norm[c],
                                     intensityproperties=plans.foreground_intensity_properties_per_channel[str(c)])
        # a float32 copy of each slab: the normaliser works in place and the caller's image stays as it is
        slabs = ((a, normaliser.run(np.array(view[c, a:a + rows], np.float32), None))
                 for a in range(0, view.shape[1], rows))
        lean_resize.SkimageZoom.from_row_blocks(view.shape[1:], np.float32, slabs, new_shape, order).fill(out[c])
    return out


def _lean_path_applies(preprocessor, config, default_class) -> bool:
    """nnunetv2's default preprocessor with its default image resampling (order 3, not a label map)."""
    kwargs = config.configuration.get("resampling_fn_data_kwargs", {})
    return (type(preprocessor) is default_class
            and config.configuration.get("resampling_fn_data") == "resample_data_or_seg_to_shape"
            and not kwargs.get("is_seg", False))


def _separate_z(config, original_spacing, target_spacing) -> bool:
    """Whether nnunetv2 would resample slice by slice (then its own function runs)."""
    from nnunetv2.preprocessing.resampling.default_resampling import determine_do_sep_z_and_axis

    kwargs = config.configuration.get("resampling_fn_data_kwargs", {})
    separate, _ = determine_do_sep_z_and_axis(kwargs.get("force_separate_z", False), original_spacing,
                                              target_spacing)
    return bool(separate)


def _resize_float32(holder: list[np.ndarray], new_shape, order: int) -> np.ndarray:
    """nnunetv2's resample_data_or_seg (not slice by slice) on the float32 image in holder (taken
    out of it, so it is freed while the spline coefficients are built): the same skimage resize per
    channel, whose float64 result nnunetv2 stores as float32; here the resize returns the float32
    rounding of the same float64 values itself, and clips against the same minimum and maximum
    (exact in float32), so the values agree bit for bit. livervessels.lean_resize computes that
    resize with one float64 array of coefficients instead of skimage's padded copy beside it."""
    from skimage.transform import resize

    from livervessels import lean_resize

    data = holder.pop()
    new_shape = tuple(int(s) for s in new_shape)
    out = np.zeros((data.shape[0], *new_shape), np.float32)
    lean = lean_resize.reproduces(data.shape[1:], new_shape)
    channels = data.shape[0]
    for c in range(channels):
        if lean:
            channel = [data[c]]
            if channels == 1:
                del data  # the channel view is then the last reference: freed once its coefficients exist
            lean_resize.SkimageZoom(channel, new_shape, order).fill(out[c])
        else:
            out[c] = resize(data[c], new_shape, order, mode="edge", anti_aliasing=False)
    return out
