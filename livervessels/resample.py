"""Resampling between a volume's grid and a model's isotropic spacing.

Image order 1, labels order 0. On the CPU with scipy's zoom, exactly as TotalSegmentator 2.18's
change_spacing (resampling.py): zoom factors are the NIfTI header's float32 voxel sizes divided by
the target spacing, the output shape is round(shape * zoom) (scipy's own rule), corner voxel
centres stay aligned (grid_mode=False, mode "nearest"), and the resampled image is truncated to
integers (TotalSegmentator casts it to int32 before nnU-Net reads it) when truncate=True.
On a CUDA device the same mapping runs with torch on the GPU (resample_to_shape_torch), where
scipy on the CPU would cost seconds per large CT.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def zoom_factors(spacing: tuple[float, float, float], target_mm: float | tuple[float, ...]) -> np.ndarray:
    """TotalSegmentator's zoom: header zooms (float32 in a NIfTI header) / target spacing, in float64.
    target_mm: one spacing for every axis, or one per axis (liver_segments: 0.80 x 0.80 x 1.5 mm)."""
    target = np.broadcast_to(np.asarray(target_mm, np.float64), (len(spacing),))
    return np.asarray(spacing, np.float32) / target


def zoom_to_spacing(image: np.ndarray, spacing: tuple[float, float, float], target_mm: float | tuple[float, ...],
                    order: int = 1, truncate: bool = False,
                    device=None) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Resample to target_mm (isotropic, or per axis of the array); returns the array and its spacing
    as nnU-Net reads it back.

    The spacing returned is what TotalSegmentator writes into the resampled image's header (the
    float32 of spacing / zoom, i.e. target_mm up to rounding); nnU-Net only uses it to decide that
    no further resampling is needed. truncate: interpolate in float64 and truncate towards zero, as
    TotalSegmentator's astype(int32) (returned as float32, which holds those integers exactly).
    """
    zoom = zoom_factors(spacing, target_mm)
    shape = tuple(max(int(round(n * z)), 1) for n, z in zip(image.shape, zoom))
    if truncate:
        out = np.trunc(resample_to_shape(image, shape, order, output=np.float64, device=device)).astype(np.float32)
    else:
        out = resample_to_shape(image, shape, order, device=device)
    zooms32 = np.asarray(spacing, np.float32)
    new_spacing = tuple(float(np.float32(s / z)) for s, z in zip(zooms32.astype(np.float64), zoom))
    return out, new_spacing


def resample_to_shape_torch(array: np.ndarray, shape: tuple[int, ...], order: int, device) -> np.ndarray:
    """The same corner-aligned mapping as resample_to_shape, in torch on `device`: order 1 is
    trilinear with align_corners=True; order 0 picks the nearest source index of
    i * (n_in - 1) / (n_out - 1), rounding halves up."""
    import torch

    src = torch.as_tensor(np.ascontiguousarray(array), device=device)
    if order == 0:
        out = src
        for axis, (n_in, n_out) in enumerate(zip(array.shape, shape)):
            # float64 positions: in float32 a half-way position can round to the wrong side
            # (n_in 3, n_out 429). They run from 0 to n_in - 1 (up to 1e-12), so no index leaves the axis.
            pos = torch.arange(n_out, dtype=torch.float64, device=device) * ((n_in - 1) / max(n_out - 1, 1))
            out = out.index_select(axis, torch.floor(pos + 0.5).long())
        return out.cpu().numpy()
    out = torch.nn.functional.interpolate(src[None, None].to(torch.float32), size=tuple(shape), mode="trilinear",
                                          align_corners=True)[0, 0]
    return out.cpu().numpy().astype(np.result_type(array.dtype, np.float32))


def resample_to_shape(array: np.ndarray, shape: tuple[int, ...], order: int, output=None, device=None) -> np.ndarray:
    """Resample so corner voxel centres stay aligned (scipy zoom with grid_mode=False).

    output: dtype of the result (default: the input's). device: a CUDA device runs it in torch.
    """
    if device is not None and str(device).startswith("cuda") and tuple(array.shape) != tuple(shape):
        out = resample_to_shape_torch(array, shape, order, device)
        return out.astype(output or array.dtype, copy=False)
    if tuple(array.shape) == tuple(shape):
        return array.astype(output or array.dtype, copy=True)
    zoom = [t / s for t, s in zip(shape, array.shape)]
    # scipy's output shape is round(n * (t / n)), which is t: the rounding error of t / n is far below 0.5
    return ndimage.zoom(array, zoom, output=output, order=order, mode="nearest", prefilter=False)
