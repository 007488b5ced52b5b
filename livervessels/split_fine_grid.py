"""The split's working grid: voxels coarser than max_working_spacing_mm are subdivided (masks by
linear interpolation keeping the input's connectivity, the CT by interpolation) so thin vessels
get a clean centerline, and the labels are brought back to the input grid by block majority."""
from __future__ import annotations

import itertools

import cc3d
import numpy as np
from scipy import ndimage

from livervessels.split_types import HEPATIC, PORTAL
from livervessels.vessel_graph import feature_indices


def repeat_voxels(m: np.ndarray, scale) -> np.ndarray:
    for ax, k in enumerate(scale):
        m = np.repeat(m, int(k), axis=ax)
    return m


def upsample_ct(ct: np.ndarray, scale) -> np.ndarray:
    """ndimage.zoom(ct as float32, scale, order=1, grid_mode=True, mode="nearest"). For a 16-bit
    integer CT and power-of-two factors every interpolated value is a short binary fraction, exact
    in float32 (each factor 2^m adds m + 1 fraction bits), which zoom returns too: interpolating
    axis by axis gives the same values, several times faster."""
    scale = [int(k) for k in scale]
    bits = 16 + sum(int(np.log2(k)) + 1 for k in scale if k > 1)
    if (not np.issubdtype(ct.dtype, np.integer) or ct.dtype.itemsize > 2 or bits > 24
            or any(k & (k - 1) for k in scale)):
        return ndimage.zoom(ct.astype(np.float32), scale, order=1, grid_mode=True, mode="nearest")
    out = ct.astype(np.float32)
    for ax, k in enumerate(scale):
        if k == 1:
            continue
        n = out.shape[ax]
        at = (np.arange(n * k) + 0.5) / k - 0.5  # input coordinate of each output voxel
        lo = np.floor(at).astype(np.int64)
        w = (at - lo).astype(np.float32).reshape([-1 if a == ax else 1 for a in range(out.ndim)])
        out = (np.take(out, np.clip(lo, 0, n - 1), axis=ax) * (1 - w)
               + np.take(out, np.clip(lo + 1, 0, n - 1), axis=ax) * w)  # "nearest": edges repeat
    return out


def upsample_mask(v: np.ndarray, scale) -> np.ndarray:
    """The mask on a grid `scale` times finer: linear interpolation kept where >= 0.5 (smooth walls;
    two vessels touching only at a voxel corner or edge come apart), then the input's connectivity
    restored where interpolation broke it: a vessel voxel keeps at least its block centre, and two
    touching input voxels whose blocks ended up in different components are joined by a line
    between their block centres. Only links the input has no other path for are restored."""
    scale = np.asarray(scale, np.int64)
    if (scale > 1).sum() == 1:
        # One axis subdivided (thick slices): a sub-voxel's own input voxel weighs more than 0.5 in
        # the interpolation and its neighbour less, so this is the input repeated, bit for bit,
        # with the input's connectivity (nothing to restore).
        return repeat_voxels(v, scale)
    out = ndimage.zoom(v.astype(np.float32), scale, order=1, grid_mode=True, mode="nearest") >= 0.5
    idx = np.argwhere(v)
    centre = idx * scale + scale // 2
    lost = ~block_majority(out.astype(np.uint8), scale).astype(bool)[tuple(idx.T)]
    out[tuple(centre[lost].T)] = True
    comp = cc3d.connected_components(out, connectivity=26)
    # component of each input voxel's block (any one; a block split between two is rare and the
    # repair below joins it to its neighbours all the same)
    block_comp = None
    for sub in _sub_voxels(comp, scale):
        block_comp = sub.copy() if block_comp is None else np.maximum(block_comp, sub)
    parent = np.arange(int(comp.max()) + 1)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    steps = np.linspace(0.0, 1.0, 2 * int(scale.max()) + 1)
    pairs, offs = [], []
    for off in _HALF_NEIGHBOURHOOD:
        nb = idx + off
        ok = np.all((nb >= 0) & (nb < v.shape), axis=1)
        ok[ok] = v[tuple(nb[ok].T)]
        ok[ok] = block_comp[tuple(idx[ok].T)] != block_comp[tuple(nb[ok].T)]  # joined before any repair
        pairs.append(np.flatnonzero(ok))
        offs.append(np.full(len(pairs[-1]), len(offs)))
    i_all, o_all = np.concatenate(pairs), np.concatenate(offs)
    off_all = np.asarray(_HALF_NEIGHBOURHOOD, np.int64)[o_all]
    ca_all = block_comp[tuple(idx[i_all].T)].astype(np.int64)
    cb_all = block_comp[tuple((idx[i_all] + off_all).T)].astype(np.int64)
    # Only the first link between two components (in this order) can join them: skip the repeats.
    key = np.minimum(ca_all, cb_all) * (int(comp.max()) + 1) + np.maximum(ca_all, cb_all)
    first = np.sort(np.unique(key, return_index=True)[1])
    for t in first:
        ca, cb = find(ca_all[t]), find(cb_all[t])
        if ca == cb:
            continue
        line = np.rint(centre[i_all[t]][None] + steps[:, None] * (off_all[t] * scale)[None]).astype(np.int64)
        out[tuple(line.T)] = True
        parent[ca] = cb
    return out


_HALF_NEIGHBOURHOOD = [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                       if (i, j, k) > (0, 0, 0)]


def block_majority(m: np.ndarray, scale) -> np.ndarray:
    """Per input voxel: the most frequent non-zero label among its sub-voxels (0 if none)."""
    counts = [np.zeros(tuple(n // k for n, k in zip(m.shape, scale)), np.int32) for _ in (PORTAL, HEPATIC)]
    for sub in _sub_voxels(m, scale):
        for c, lab in zip(counts, (PORTAL, HEPATIC)):
            c += sub == lab
    return np.where(counts[0] + counts[1] == 0, 0, np.where(counts[0] >= counts[1], PORTAL, HEPATIC)).astype(np.uint8)


def _sub_voxels(m: np.ndarray, scale):
    """Views of `m` (on a grid `scale` times finer) holding one sub-voxel of every input voxel each
    (strided views: faster than reducing a 6-axis reshape)."""
    for a, b, c in itertools.product(*(range(int(k)) for k in scale)):
        yield m[a::int(scale[0]), b::int(scale[1]), c::int(scale[2])]


def downsample_labels(lab_w: np.ndarray, scale, v: np.ndarray, spacing) -> np.ndarray:
    """Input-grid labels: block majority; vessel voxels whose block lost every labelled sub-voxel
    take the nearest labelled voxel's label."""
    lab = block_majority(lab_w, scale) * v
    missing = v & (lab == 0)
    if missing.any() and lab.any():
        where = np.nonzero(missing)
        ind = feature_indices(lab == 0, spacing)
        lab[where] = lab[tuple(i[where] for i in ind)]
    return lab
