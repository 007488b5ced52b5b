"""Liver vessel enhancement: repair the network's raw intrahepatic vessel mask with the CT.

Networks trained on MSD Task08 miss thin branches, break branches into fragments and leave
false-positive blobs. This step, inside the liver dilated by a few mm:

1. measures the image: parenchyma HU and noise (robust median / spread of the smoothed liver away
   from the raw vessels) and the vessel contrast (90th percentile HU of the raw mask minus
   parenchyma), so every threshold below is a fraction of this patient's contrast or a multiple
   of this image's noise, not an absolute HU;
2. computes a multi-scale Hessian vesselness (torch, see vesselness.py), normalised so that an
   ideal cylinder of the measured contrast scores 1. The same Hessians give the dark-tube
   response, which in the liver is pure noise: its quantiles set the hysteresis thresholds;
3. drops raw components that have no bright core (false-positive blobs on parenchyma);
4. grows the tree by hysteresis: connected candidate voxels (tube-like, brighter than the
   parenchyma noise and above half of the local vessel peak, i.e. inside the vessel's full
   width at half maximum) are added only when they touch the existing tree and reach a clearly
   tubular response somewhere. Lumen wide enough to hold a 6 mm ball (IVC, portal trunk) is
   never grown into;
5. bridges gaps of a few mm between fragments along the cheapest high-vesselness path
   (skimage.graph.MCP_Geometric on a local crop), thickened to the local vessel radius;
6. trims boundary voxels clearly outside a clearly visible vessel (over-segmentation), fills
   enclosed holes, then prunes components that are not part of the main trees and are small,
   not tubular (skeleton length vs equivalent radius) or have no bright core.

Research use only; not a medical device.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import cc3d
import numpy as np
import torch
from scipy import ndimage
from scipy.stats import median_abs_deviation
from skimage.graph import MCP_Geometric
from skimage.morphology import skeletonize

from livervessels.compute import resolve_device
from livervessels.errors import InputError
from livervessels.masks import bounding_box, fill_holes, grow_box, padded_box, reach_voxels
from livervessels.timing import timed
from livervessels.versions import software_versions
from livervessels.vesselness import TUBE_PEAK_FRACTION, sigma_for_radius, vesselness

METHOD = ("multi-scale Hessian vesselness (torch) + hysteresis growth from the raw tree + "
          "MCP gap bridging + hole filling + component pruning, inside the dilated liver")


@dataclass(frozen=True)
class EnhancementParams:
    """Physical parameters (mm, mm^3) and fractions of the measured vessel contrast."""

    liver_margin_mm: float = 3.0  # work inside the liver dilated by this much
    # Liver pieces smaller than this x the largest piece do not widen the box of work: a network's
    # false-positive specks far from the liver (in air, bowel, heart) would otherwise stretch it
    # over the whole scan, and its memory with it.
    min_liver_piece_fraction: float = 0.05
    vessel_diameters_mm: tuple[float, ...] = (1.5, 3.0, 5.0, 8.0)  # vesselness scales: sigma = d / (2 sqrt 2)
    blob_beta: float = 0.5  # Frangi's blob suppression (a sphere keeps exp(-1 / 2 beta^2) = 14 %)
    smoothing_mm: float = 0.7  # Gaussian for intensity tests, about a CT point-spread
    peak_radius_mm: float = 2.0  # neighbourhood for the local vessel peak (half-maximum test)
    large_lumen_radius_mm: float = 6.0  # lumen holding a ball this wide is IVC / portal trunk: never grown into
    grow_low: float = 0.1  # hysteresis low threshold (floor), vesselness as a fraction of an ideal tube
    grow_high: float = 0.25  # an added piece must reach this somewhere (floor)
    null_low_quantile: float = 0.9  # thresholds also >= these quantiles of the dark-tube response
    null_high_quantile: float = 0.998  # in the parenchyma, i.e. of what noise alone produces
    noise_z: float = 2.0  # added voxels: smoothed HU >= parenchyma + noise_z * parenchyma spread
    min_contrast_fraction: float = 0.15  # ... and >= parenchyma + this * vessel contrast
    half_max_fraction: float = 0.5  # ... and >= parenchyma + this * (local peak - parenchyma)
    trim_boundary: bool = True  # remove boundary voxels noise_z spreads below the local half maximum
    gap_mm: float = 6.0  # bridge fragments closer than this
    bridge_min_vesselness: float = 0.1  # mean vesselness along the bridge (and >= the low threshold)
    bridge_min_contrast_fraction: float = 0.15  # mean smoothed contrast along the bridge / vessel contrast
    fill_holes: bool = True
    min_component_mm3: float = 30.0  # about a 1 mm radius branch 1 cm long
    main_tree_fraction: float = 0.1  # components >= this x the largest are main trees, never pruned
    min_elongation: float = 3.0  # other components >= 2 voxels in equivalent-sphere radius: skeleton length /
    # equivalent tube radius (a ball scores < 1, a branch >> 3)
    min_core_contrast_fraction: float = 0.25  # other components: 90th percentile HU above parenchyma must be
    core_noise_z: float = 1.5  # >= this x vessel contrast and >= core_noise_z parenchyma spreads (pure noise:
    # the 90th percentile is 1.28 spreads), i.e. a bright core
    lumen_percentile: float = 90.0  # vessel lumen HU = this percentile of the smoothed HU in the raw mask
    default_contrast_hu: float = 80.0  # used when the raw mask is too small to measure the contrast
    min_contrast_hu: float = 30.0  # below this the CT shows no vessel contrast: no image-based growth
    fallback_margin_mm: float = 30.0  # whole-volume fallback: computed within the raw mask's box + this
    max_noise_growth_ratio: float = 0.15  # no growth where noise alone (mirrored image) grows this x as much
    growth_backoff_factors: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)  # growth thresholds (x the usual) tried in turn


def _count(mask: np.ndarray) -> int:
    """Number of True voxels (count_nonzero: several times faster than a sum of booleans)."""
    return int(np.count_nonzero(mask))


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    lab, n = cc3d.connected_components(mask.view(np.uint8), connectivity=26, return_N=True)
    return lab, int(n)


def _liver_box(liver: np.ndarray, min_fraction: float, pad_vox) -> tuple[tuple[slice, ...], int, int]:
    """(bounding box of the liver pieces of at least min_fraction x the largest, padded by pad_vox and
    clipped to the grid; number and voxels of the smaller pieces not wholly inside it). liver:
    non-empty bool mask."""
    labels, n = cc3d.connected_components(liver.view(np.uint8), connectivity=26, return_N=True)
    if n <= 1:
        return padded_box(liver, pad_vox), 0, 0
    stats = cc3d.statistics(labels, no_slice_conversion=True)
    del labels
    counts = np.asarray(stats["voxel_counts"][1:], np.int64)
    keep = counts >= min_fraction * counts.max()
    boxes = np.asarray(stats["bounding_boxes"], np.int64)[1:]  # (x0, x1, y0, y1, z0, z1), ends inclusive
    pad = np.asarray(pad_vox, np.int64)
    lo = np.maximum(boxes[keep][:, 0::2].min(axis=0) - pad, 0)
    hi = np.minimum(boxes[keep][:, 1::2].max(axis=0) + pad, np.asarray(liver.shape) - 1)
    inside = np.all((boxes[:, 0::2] >= lo) & (boxes[:, 1::2] <= hi), axis=1)
    outside = np.flatnonzero(~inside)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi)), len(outside), int(counts[outside].sum())


def _shift_slices(offset, shape) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """(dst, src): out[dst] = a[src] moves a by offset voxels (out[p] = a[p - offset])."""
    dst = tuple(slice(min(max(o, 0), n), max(n + min(o, 0), 0)) for o, n in zip(offset, shape))
    src = tuple(slice(min(max(-o, 0), n), max(n - max(o, 0), 0)) for o, n in zip(offset, shape))
    return dst, src


def _shifted(a: np.ndarray, offset, fill: bool) -> np.ndarray:
    """a moved by offset voxels, fill where nothing moves in."""
    out = np.full(a.shape, fill, bool)
    dst, src = _shift_slices(offset, a.shape)
    out[dst] = a[src]
    return out


def _or_shifted(out: np.ndarray, a: np.ndarray, offset) -> None:
    """out |= a moved by offset voxels (nothing moves in from outside)."""
    dst, src = _shift_slices(offset, a.shape)
    out[dst] |= a[src]


def _cube_3(mask: np.ndarray, dilate: bool) -> np.ndarray:
    """binary_dilation (dilate) or binary_erosion by a 3x3x3 cube, outside the array False, one
    axis at a time."""
    out = mask
    for axis in range(3):
        step = [0, 0, 0]
        new = out.copy()
        for o in (-1, 1):
            step[axis] = o
            if dilate:
                _or_shifted(new, out, step)
            else:
                new &= _shifted(out, step, False)
        out = new
    return out


def _dilate_3(mask: np.ndarray) -> np.ndarray:
    return _cube_3(mask, True)


def _erode_3(mask: np.ndarray) -> np.ndarray:
    return _cube_3(mask, False)


def _ball_runs(spacing, radius_mm: float, strict: bool = False) -> dict[tuple[int, int], int]:
    """{(dx, dz): J}: voxel offsets (dx, dy, dz) within radius_mm (closer than it if strict), |dy| <= J,
    by the arithmetic of ndimage.distance_transform_edt (float64 sqrt((dx s0)^2 + (dy s1)^2 +
    (dz s2)^2), summed in that order), so a dilation by these offsets equals thresholding the
    transform voxel for voxel."""
    s0, s1, s2 = (float(s) for s in spacing)

    def within(i: int, j: int, k: int) -> bool:
        a, b, c = i * s0, j * s1, k * s2
        d = math.sqrt(a * a + b * b + c * c)
        return d < radius_mm if strict else d <= radius_mm

    runs = {}
    for i in range(-int(radius_mm / s0) - 1, int(radius_mm / s0) + 2):
        for k in range(-int(radius_mm / s2) - 1, int(radius_mm / s2) + 2):
            j = -1
            while within(i, j + 1, k):
                j += 1
            if j >= 0:
                runs[(i, k)] = j
    return runs


def _or_shifted_bits(out: np.ndarray, packed: np.ndarray, k: int) -> None:
    """out |= packed moved by k voxels along the last axis; both np.packbits(..., axis=2) (big-endian
    bits: voxel z is bit 7 - z % 8 of byte z // 8), zeros move in."""
    q, r = divmod(abs(k), 8)
    n = packed.shape[2]
    if q >= n:
        return
    if k > 0:  # towards higher z: bits move right, and into the next byte
        out[..., q:] |= packed[..., :n - q] >> r if r else packed[..., :n - q]
        if r and q + 1 < n:
            out[..., q + 1:] |= packed[..., :n - q - 1] << (8 - r)
    else:
        out[..., :n - q] |= packed[..., q:] << r if r else packed[..., q:]
        if r and q + 1 < n:
            out[..., :n - q - 1] |= packed[..., q + 1:] >> (8 - r)


def _dilate_ball(mask: np.ndarray, spacing, radius_mm: float, strict: bool = False) -> np.ndarray:
    """distance_transform_edt(~mask, sampling=spacing) <= radius_mm (< if strict), voxel for voxel,
    without the transform: OR of shifted copies within the mask's box, on bits packed along the last
    axis (8 voxels a byte): rows along the second axis, then the disc of each |dz| along the first,
    then the discs moved along the last axis."""
    if not mask.any():  # the transform of an input without zeros is ill-defined: keep its answer
        d = ndimage.distance_transform_edt(~mask, sampling=spacing)
        return d < radius_mm if strict else d <= radius_mm
    runs = _ball_runs(spacing, radius_mm, strict)
    reach = [max(abs(i) for i, _ in runs), max(runs.values()), max(abs(k) for _, k in runs)]
    box = padded_box(mask, reach)
    m = np.packbits(mask[box], axis=2)
    rows = [m]  # rows[j]: m dilated by |dy| <= j
    for j in range(1, reach[1] + 1):
        r = rows[-1].copy()
        _or_shifted(r, m, (0, j, 0))
        _or_shifted(r, m, (0, -j, 0))
        rows.append(r)
    grown = np.zeros(m.shape, np.uint8)
    for dz in range(reach[2] + 1):  # the ball's section at +-dz is the same disc
        disc = np.zeros(m.shape, np.uint8)
        for (i, k), j in runs.items():
            if k == dz:
                _or_shifted(disc, rows[j], (i, 0, 0))
        for k in {dz, -dz}:
            _or_shifted_bits(grown, disc, k)
    out = np.zeros(mask.shape, bool)
    out[box] = np.unpackbits(grown, axis=2, count=out[box].shape[2]).view(bool)
    return out


def _check_inputs(vessels, liver, ct, spacing) -> tuple[float, float, float]:
    if np.ndim(vessels) != 3 or np.shape(vessels) != np.shape(ct):
        raise InputError(f"vessel mask {np.shape(vessels)} and CT {np.shape(ct)} must be 3-D arrays on the same grid")
    if liver is not None and np.shape(liver) != np.shape(ct):
        raise InputError(f"liver mask {np.shape(liver)} is not on the CT grid {np.shape(ct)}")
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise InputError(f"voxel spacing must be three positive numbers in mm, got {spacing}")
    return sp


# ---------------------------------------------------------------------------------------------
# Image statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class _Stats:
    parenchyma_hu: float
    parenchyma_sd_hu: float  # robust spread of the smoothed parenchyma
    vessel_hu: float
    contrast_hu: float
    low: float = 0.0  # hysteresis thresholds on the normalised vesselness
    high: float = 0.0


def _robust(values: np.ndarray) -> tuple[float, float]:
    med = float(np.median(values))
    return med, float(median_abs_deviation(values, scale="normal"))


def _measure(smooth: np.ndarray, raw: np.ndarray, background: np.ndarray, p: EnhancementParams,
             fallbacks: list[str]) -> _Stats:
    bg = smooth[background] if background.any() else smooth.ravel()
    par, sd = _robust(bg)
    if _count(raw) >= 20:
        # Lumen HU: a high percentile, because a mask's boundary voxels are partial volume.
        vessel = float(np.percentile(smooth[raw], p.lumen_percentile))
        contrast = vessel - par
    else:
        contrast = p.default_contrast_hu
        vessel = par + contrast
        fallbacks.append("raw vessel mask too small to measure the vessel contrast: "
                         f"{p.default_contrast_hu} HU assumed")
    return _Stats(par, max(sd, 1.0), vessel, contrast)


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------


def _local_peak(smooth: np.ndarray, spacing, radius_mm: float, within: tuple[slice, ...]) -> np.ndarray:
    """ndimage.maximum_filter(smooth, size)[within]: the filter is computed on within grown by its reach.

    The reflecting border of maximum_filter only repeats values already in the window, so this is the
    maximum over the window's part inside the array: one axis at a time, by maxima of shifted copies
    (exact, and a few times faster than the filter's running-maximum lines).
    """
    size = [2 * max(1, int(round(radius_mm / s))) + 1 for s in spacing]
    ext = grow_box(within, [k // 2 for k in size], smooth.shape)
    peak = smooth[ext]
    for axis, k in enumerate(size):
        src, peak = peak, peak.copy()
        for t in range(1, k // 2 + 1):
            for o in (-t, t):
                dst, sl = _shift_slices([o if a == axis else 0 for a in range(3)], src.shape)
                np.maximum(peak[dst], src[sl], out=peak[dst])
    return peak[tuple(slice(w.start - e.start, w.stop - e.start) for w, e in zip(within, ext))]


def _candidates(tubeness: np.ndarray, smooth: np.ndarray, peak: np.ndarray, st: _Stats,
                p: EnhancementParams) -> np.ndarray:
    """Voxels that look like contrast-filled vessel lumen."""
    floor = st.parenchyma_hu + max(p.noise_z * st.parenchyma_sd_hu, p.min_contrast_fraction * st.contrast_hu)
    half_max = st.parenchyma_hu + p.half_max_fraction * (peak - st.parenchyma_hu)
    return (tubeness >= st.low) & (smooth >= floor) & (smooth >= half_max)


def _large_lumen(ct: np.ndarray, st: _Stats, spacing, radius_mm: float) -> np.ndarray:
    """Bright lumen wide enough to hold a ball of radius_mm: the IVC or portal trunk, not a branch.

    A morphological opening by a ball, with distance transforms in mm (anisotropy-safe), of the
    lumen seen at a third of that radius (smooth enough that noise does not punch holes in it).
    """
    smooth = ndimage.gaussian_filter(ct, sigma=radius_mm / 3.0 / np.asarray(spacing))
    bright = smooth >= st.parenchyma_hu + 0.5 * st.contrast_hu
    # core: no non-bright voxel of the array closer than radius_mm (distance_transform_edt(bright)
    # >= radius_mm). Only voxels bright along each axis for nearly radius_mm can be core, so the
    # test runs, piece by piece, on their box grown by radius_mm, which holds every closer
    # non-bright voxel; the opening is then the union of the pieces' dilations.
    cand = bright.copy()
    for axis, s in enumerate(spacing):
        reach = int(math.ceil(radius_mm * (1.0 - 1e-6) / s)) - 1  # t * s < radius_mm for t <= reach
        if reach < 1:
            continue
        # AND over |t| <= reach along the axis (outside the array counts as bright), by doubling.
        width = 2 * reach + 1
        run = np.pad(bright, [(reach, reach) if a == axis else (0, 0) for a in range(3)], constant_values=True)
        lead = (slice(None),) * axis
        n = run.shape[axis]
        covered = 1
        while covered < width:
            step = min(covered, width - covered)
            run[lead + (slice(0, n - step),)] &= run[lead + (slice(step, n),)]
            covered += step
        cand &= run[lead + (slice(0, bright.shape[axis]),)]
    large = np.zeros(bright.shape, bool)
    if not cand.any():
        return large
    if bright.all():  # no non-bright voxel at all: keep the transforms' own answer
        core = ndimage.distance_transform_edt(bright, sampling=spacing) >= radius_mm
        return ndimage.distance_transform_edt(~core, sampling=spacing) <= radius_mm if core.any() else core
    reach = reach_voxels(spacing, radius_mm)
    lab, _ = _components(cand)
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        sub = grow_box(sl, reach, bright.shape)
        piece = lab[sub] == i
        b = bright[sub]
        # A box without non-bright voxels: nothing within radius_mm of the piece is non-bright.
        core = piece if b.all() else piece & ~_dilate_ball(~b, spacing, radius_mm, strict=True)
        if core.any():
            large[sub] |= _dilate_ball(core, spacing, radius_mm)
    return large


class _GrowthPieces:
    """Candidate components touching the tree, with their peak vesselness: hysteresis growth at
    any high threshold without relabelling."""

    def __init__(self, mask: np.ndarray, cand: np.ndarray, tubeness: np.ndarray):
        self.pieces, n = _components(cand & ~mask)
        inside = self.pieces > 0
        self.touching = np.unique(self.pieces[_dilate_3(mask) & inside]) if n else np.zeros(0, int)
        self.peaks = np.full(n + 1, -np.inf, tubeness.dtype)
        np.maximum.at(self.peaks, self.pieces[inside], tubeness[inside])
        self.n = n

    def kept(self, high: float) -> np.ndarray:
        """Labels of the pieces hysteresis keeps at this high threshold."""
        return self.touching[self.peaks[self.touching] >= high]

    def voxels(self, keep: np.ndarray, within: np.ndarray | None = None) -> int:
        sizes = np.bincount(self.pieces[within] if within is not None else self.pieces.ravel(), minlength=self.n + 1)
        return int(sizes[keep].sum())

    def grown(self, mask: np.ndarray, keep: np.ndarray) -> np.ndarray:
        lut = np.zeros(self.n + 1, bool)
        lut[keep] = True
        return mask | lut[self.pieces]


def _trim(mask: np.ndarray, smooth: np.ndarray, peak: np.ndarray, st: _Stats, p: EnhancementParams) -> np.ndarray:
    """Remove boundary voxels clearly outside a clearly visible vessel (over-segmentation).

    Only where the local peak is at least half the vessel contrast (a vessel is really there and its
    edge is measurable), noise_z parenchyma spreads below the local half maximum (so noise around the
    edge does not eat true boundary voxels), and never on the skeleton (keeps thin branches
    connected).
    """
    boundary = mask & ~_erode_3(mask)
    pk, sm = peak[boundary], smooth[boundary]  # the tests only matter on the boundary
    clear = (pk - st.parenchyma_hu) >= 0.5 * st.contrast_hu
    below = sm < (st.parenchyma_hu + p.half_max_fraction * (pk - st.parenchyma_hu)
                  - p.noise_z * st.parenchyma_sd_hu)
    if not (clear & below).any():
        return mask
    drop = np.zeros(mask.shape, bool)
    drop[boundary] = clear & below
    # Thinning is local and keeps the scan order within a box: the mask's box gives the same skeleton.
    box = bounding_box(mask)
    skeleton = np.zeros(mask.shape, bool)
    skeleton[box] = skeletonize(mask[box])
    return mask & ~(drop & ~skeleton)


def _component_table(lab: np.ndarray, labels, smooth: np.ndarray, spacing, st: _Stats) -> list[dict]:
    """Size (voxels), elongation and bright-core contrast of the components with these labels."""
    voxel_mm3 = float(np.prod(spacing))
    step_mm = float(np.mean(spacing))
    objects = ndimage.find_objects(lab)
    rows = []
    for i in labels:
        sl = objects[i - 1]
        comp = lab[sl] == i
        size = _count(comp)
        length = max(int(skeletonize(comp).sum()), 1) * step_mm
        r_eq = math.sqrt(size * voxel_mm3 / (math.pi * length))
        core = float(np.percentile(smooth[sl][comp], 90)) - st.parenchyma_hu
        rows.append({"label": i, "voxels": size, "elongation": length / max(r_eq, 1e-6),
                     "core_contrast": core / max(st.contrast_hu, 1e-6)})
    return rows


def _prune(mask: np.ndarray, smooth: np.ndarray, spacing, st: _Stats, p: EnhancementParams,
           min_voxels: int, use_image: bool, use_size: bool) -> np.ndarray:
    """Keep the main trees; drop other components that are small, not tubular or have no bright core."""
    if not mask.any():
        return mask
    box = bounding_box(mask)  # labels and tables within the mask's box
    lab, n = _components(mask[box])
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel())[1:]
    main = sizes >= p.main_tree_fraction * sizes.max()
    keep = np.zeros(n + 1, bool)
    keep[1:] = main
    others = np.nonzero(~main)[0] + 1
    core_min = max(p.min_core_contrast_fraction, p.core_noise_z * st.parenchyma_sd_hu / max(st.contrast_hu, 1e-6))
    # Shape is only measurable on components a few voxels across.
    min_shape_voxels = 4.0 / 3.0 * math.pi * (2.0 * max(spacing)) ** 3 / float(np.prod(spacing))
    if others.size:
        for row in _component_table(lab, others, smooth[box], spacing, st):
            ok = True
            if use_size and row["voxels"] < min_voxels:
                ok = False
            if use_image and row["core_contrast"] < core_min:
                ok = False
            if use_size and row["voxels"] >= min_shape_voxels and row["elongation"] < p.min_elongation:
                ok = False
            keep[row["label"]] = ok
    out = np.zeros(mask.shape, bool)
    out[box] = keep[lab]
    return out


def _bridge(mask: np.ndarray, tubeness: np.ndarray, smooth: np.ndarray, region: np.ndarray, st: _Stats,
            p: EnhancementParams, spacing) -> tuple[np.ndarray, int]:
    """Join fragments to their nearest neighbour when a short, vessel-like path connects them."""
    if not mask.any():
        return mask, 0
    sp = np.asarray(spacing)
    pad = np.ceil(p.gap_mm / sp).astype(int) + 1
    # Labels within the mask's box (the same labels as on the whole crop), stored in that box
    # grown by the padding, which holds every component's crop.
    inner = bounding_box(mask)
    lab_in, n = _components(mask[inner])
    if n <= 1:
        return mask, 0
    outer = padded_box(mask, pad)
    lab = np.zeros(tuple(o.stop - o.start for o in outer), lab_in.dtype)
    lab[tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))] = lab_in
    sizes = np.bincount(lab_in.ravel())
    objects = ndimage.find_objects(lab_in)
    del lab_in
    largest = int(np.argmax(sizes[1:])) + 1
    out = mask.copy()
    bridges = 0
    for c in np.argsort(sizes[1:]) + 1:  # smallest first
        if c == largest or objects[c - 1] is None:
            continue
        in_mask = tuple(slice(s.start + i.start, s.stop + i.start) for s, i in zip(objects[c - 1], inner))
        sl = grow_box(in_mask, pad, mask.shape)
        lab_c = lab[tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(sl, outer))]
        own = lab_c == c
        if not own.any():
            continue  # merged away already
        other = (lab_c > 0) & ~own
        if not other.any():
            continue
        d_other = ndimage.distance_transform_edt(~other, sampling=sp)
        gap = float(d_other[own].min())
        if gap > p.gap_mm:
            continue
        # Walking through the image costs 1 / vesselness per mm: paths follow tubes.
        cost = np.where(region[sl], 1.0 / np.clip(tubeness[sl], 0.02, 1.0), np.inf)
        cost[own | other] = 0.5  # free travel inside the tree (half the best tube cost)
        starts = np.argwhere(own & (d_other <= gap + sp.max()))
        mcp = MCP_Geometric(cost, fully_connected=True, sampling=tuple(sp))
        cum, _ = mcp.find_costs(starts)
        ends = np.argwhere(other)
        end = ends[np.argmin(cum[tuple(ends.T)])]
        if not np.isfinite(cum[tuple(end)]):
            continue
        path = np.array(mcp.traceback(tuple(end)))
        on_new = ~(own | other)[tuple(path.T)]
        if not on_new.any():
            continue
        new = path[on_new]
        steps = np.linalg.norm(np.diff(path * sp, axis=0), axis=1)
        length = float(steps[on_new[1:] | on_new[:-1]].sum())
        mean_tubeness = float(tubeness[sl][tuple(new.T)].mean())
        mean_c = float(smooth[sl][tuple(new.T)].mean()) - st.parenchyma_hu
        if (length > 1.5 * p.gap_mm or mean_tubeness < max(p.bridge_min_vesselness, st.low)
                or mean_c < p.bridge_min_contrast_fraction * st.contrast_hu):
            continue
        # Thicken to the thinner of the radii at the path's two ends. Those ends are the
        # fragments' surface voxels, one voxel from the background, so in practice the bridge is
        # about one voxel thick (README, tests section: reading the radius deeper in is to do).
        inside = ndimage.distance_transform_edt(own | other, sampling=sp)
        ends_r = [float(inside[tuple(q)]) for q in (path[0], path[-1])]
        radius = max(min(ends_r), float(sp.min()))
        line = np.zeros(own.shape, bool)
        line[tuple(new.T)] = True
        tube = ndimage.distance_transform_edt(~line, sampling=sp) <= radius - 0.5 * sp.min()
        out[sl] |= (line | tube) & region[sl]
        target = int(lab_c[tuple(end)])
        lab_c[own] = target  # view into lab: c now belongs to the tree it joined
        bridges += 1
    return out, bridges


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def repair_vessel_mask(
    vessels: np.ndarray,
    liver: np.ndarray | None,
    ct: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    fallback_full_volume: bool = True,
    min_component_size: int | None = None,
    min_component_mm3: float | None = None,
    device: str | torch.device | None = None,
    params: EnhancementParams | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Returns (enhanced binary mask, uint8 on the input grid, metadata).

    vessels: raw network vessel mask; liver: liver mask or None; ct: HU; spacing: mm per voxel;
    exclude: large vessels the liver vessels must not grow into (IVC, portal / splenic vein trunk,
    e.g. from TotalSegmentator), besides the lumen wide enough for a large_lumen_radius_mm ball that
    the repair finds itself (on noisy, thick slices it misses part of the portal trunk).
    Components that are not part of a main tree and are smaller than min_component_size voxels
    or min_component_mm3 are removed (both given: the larger; neither: params.min_component_mm3).
    fallback_full_volume=False makes a missing/empty liver mask an InputError instead of
    enhancing over the whole volume. device: a device request or torch device for the vesselness
    (livervessels.compute; default: auto).

    Raises:
        InputError: the arrays are not 3-D on one grid, the spacing is not three positive millimetre
            values, or the liver mask is missing or empty while fallback_full_volume is False.
    """
    t_start = time.perf_counter()
    p = params or EnhancementParams()
    sp = _check_inputs(vessels, liver, ct, spacing)
    raw = np.asarray(vessels) > 0
    timings: dict[str, float] = {}
    fallbacks: list[str] = []
    voxel_mm3 = float(np.prod(sp))
    min_voxels = _min_component_voxels(min_component_size, min_component_mm3, p, voxel_mm3)
    sigmas = [sigma_for_radius(d / 2.0) for d in p.vessel_diameters_mm]
    with timed(timings, "region"):
        box, region, liver_c = _region_of_work(raw, liver, sp, p, 3.0 * max(sigmas) + p.gap_mm, fallback_full_volume,
                                               fallbacks)
    out = np.zeros(raw.shape, np.uint8)
    extra: dict = {}
    backed_off: list[str] = []
    if box is not None:
        exclude_c = None if exclude is None else np.asarray(exclude, bool)[box]
        mask, extra = _enhance_crop(raw[box] & region, region, liver_c, np.asarray(ct[box], np.float32), sp, p,
                                    sigmas, min_voxels, device, fallbacks, timings, backed_off, exclude_c)
        out[box] = mask
    with timed(timings, "statistics"):
        # On the boxes: the enhanced mask is empty outside its box, the raw one outside its own.
        n_before = _components(raw[bounding_box(raw)])[1] if box is not None else 0
        n_vox = _count(mask) if box is not None else 0
        n_after = _components(mask)[1] if n_vox else 0
        kept = _count(mask & raw[box]) if n_vox else 0
        removed, added = _count(raw) - kept, n_vox - kept
    timings["total"] = time.perf_counter() - t_start
    metadata = {
        "method": METHOD,
        "voxels": n_vox,
        "volume_ml": round(n_vox * voxel_mm3 / 1000.0, 3),
        "components_before": n_before,
        "components_after": n_after,
        "removed_voxels": removed,
        "added_voxels": added,
        "fallbacks_used": fallbacks,
        # what the scan could not support and the repair therefore left out (None: nothing)
        "backed_off": "; ".join(backed_off) or None,
        "parameters": {**asdict(p), "min_component_voxels": min_voxels,
                       "vesselness_sigmas_mm": [round(s, 3) for s in sigmas],
                       "fallback_full_volume": fallback_full_volume, **extra.pop("derived", {})},
        "image_statistics": extra.pop("stats", {}),
        "steps": extra,
        "timings": {k: round(s, 3) for k, s in timings.items()},
        "software_versions": software_versions(),
    }
    return out, metadata


def _min_component_voxels(min_component_size: int | None, min_component_mm3: float | None,
                          p: EnhancementParams, voxel_mm3: float) -> int:
    """Smallest component kept outside the main trees, in voxels: from min_component_size or
    min_component_mm3 (both given: the larger; neither: params.min_component_mm3)."""
    from_mm3 = int(math.ceil((min_component_mm3 if min_component_mm3 is not None else p.min_component_mm3)
                             / voxel_mm3))
    if min_component_size is None:
        return from_mm3
    return max(from_mm3, int(min_component_size)) if min_component_mm3 is not None else int(min_component_size)


def _region_of_work(raw: np.ndarray, liver: np.ndarray | None, sp, p: EnhancementParams, halo_mm: float,
                    fallback_full_volume: bool, fallbacks: list[str]
                    ) -> tuple[tuple[slice, ...] | None, np.ndarray | None, np.ndarray | None]:
    """(box, region on the box, liver on the box): the liver grown by liver_margin_mm, on its box
    padded by the filters' reach (halo_mm); without a liver, the raw vessels' box. box None: the raw
    mask is empty, nothing to do.

    Raises:
        InputError: no liver mask and fallback_full_volume is False.
    """
    spa = np.asarray(sp)
    have_liver = liver is not None and np.any(liver)
    if not have_liver:
        if not fallback_full_volume:
            raise InputError("the liver mask is missing or empty, so vessel enhancement cannot be restricted "
                             "to the liver; provide a liver segmentation or allow the whole-volume fallback "
                             "(drop --no_fallback_full_liver)")
        fallbacks.append("liver mask missing or empty: whole volume used")
    if not raw.any():
        fallbacks.append("raw vessel mask empty: nothing to enhance")
        return None, None, None
    if have_liver:
        liver_b = np.asarray(liver) > 0
        box, n_out, vox_out = _liver_box(liver_b, p.min_liver_piece_fraction,
                                         np.ceil((p.liver_margin_mm + halo_mm) / spa).astype(int))
        if n_out:
            piece_ml = vox_out * float(np.prod(sp)) / 1000.0
            fallbacks.append(f"{n_out} small liver piece(s) ({piece_ml:.1f} mL) away from the liver left out of the "
                             "region of work")
        return box, _dilate_ball(liver_b[box], sp, p.liver_margin_mm), liver_b[box]
    box = padded_box(raw, np.ceil((p.fallback_margin_mm + halo_mm) / spa))
    return box, np.ones(tuple(s.stop - s.start for s in box), bool), None


def _enhance_crop(raw: np.ndarray, region: np.ndarray, liver: np.ndarray | None, ct: np.ndarray, sp, p, sigmas,
                  min_voxels: int, device, fallbacks: list[str], timings: dict,
                  backed_off: list[str] | None = None, exclude: np.ndarray | None = None
                  ) -> tuple[np.ndarray, dict]:
    """All steps on the working crop; returns the mask and step counts. What it leaves out because
    the scan cannot support it is appended to backed_off."""
    backed_off = [] if backed_off is None else backed_off
    with timed(timings, "measure"):
        smooth, background, st = _measure_crop(raw, liver, ct, sp, p, fallbacks)
    steps = {"stats": {"parenchyma_hu": round(st.parenchyma_hu, 1),
                       "parenchyma_spread_hu": round(st.parenchyma_sd_hu, 1),
                       "vessel_hu": round(st.vessel_hu, 1), "contrast_hu": round(st.contrast_hu, 1)}}
    use_image = st.contrast_hu >= p.min_contrast_hu
    if not use_image:
        fallbacks.append(f"vessel contrast {st.contrast_hu:.0f} HU < {p.min_contrast_hu:.0f} HU: "
                         "no image-based growth, bridging or trimming (size pruning and hole filling only)")
    mask = raw.copy()
    if use_image:
        with timed(timings, "vesselness"):
            tubeness, dark = _tube_responses(ct, region, background, st, sp, sigmas, p, device)
            steps["stats"].update(vesselness_low=round(st.low, 3), vesselness_high=round(st.high, 3))

        with timed(timings, "prune_blobs"):
            before = _count(mask)
            mask = _prune(mask, smooth, sp, st, p, min_voxels, use_image=True, use_size=False)
            steps["blobs_removed_voxels"] = before - _count(mask)

        with timed(timings, "grow"):
            # Candidates, growth and trimming only test and change region voxels: they run on its box.
            inner = bounding_box(region)
            peak = _local_peak(smooth, sp, p.peak_radius_mm, inner)
            _grow(mask, inner, peak, tubeness, dark, smooth, ct, region, liver, exclude, st, sp, p, steps, backed_off)
            del dark

        with timed(timings, "bridge"):
            mask, n_bridges = _bridge(mask, tubeness, smooth, region, st, p, sp)
            steps["bridges"] = n_bridges

        if p.trim_boundary:
            with timed(timings, "trim"):
                before = _count(mask)
                mask[inner] = _trim(mask[inner], smooth[inner], peak, st, p)
                steps["trimmed_voxels"] = before - _count(mask)
    if p.fill_holes:
        with timed(timings, "fill_holes"):
            before = _count(mask)
            mask = fill_holes(mask) & region
            steps["hole_voxels_filled"] = _count(mask) - before
    with timed(timings, "prune"):
        before = _count(mask)
        mask = _prune(mask, smooth, sp, st, p, min_voxels, use_image=use_image, use_size=True)
        steps["pruned_voxels"] = before - _count(mask)
    steps["derived"] = {"device": str(resolve_device(device)) if use_image else None}
    return mask, steps


def _measure_crop(raw: np.ndarray, liver: np.ndarray | None, ct: np.ndarray, sp, p, fallbacks: list[str]
                  ) -> tuple[np.ndarray, np.ndarray, _Stats]:
    """(smoothed CT, local background, the scan's statistics): parenchyma, vessel HU and contrast."""
    spa = np.asarray(sp)
    smooth = ndimage.gaussian_filter(ct, sigma=p.smoothing_mm / spa)
    if liver is not None:
        near_raw = _dilate_ball(raw, sp, 2.0)
        background = liver & ~near_raw
    else:
        # No liver: local background is a shell around the raw vessels, soft tissue only. The
        # transform runs on the raw mask's box grown by 8 mm: it holds every voxel of the shell.
        shell = np.zeros(raw.shape, bool)
        near = (padded_box(raw, reach_voxels(sp, 8.0)) if raw.any()
                else (slice(None),) * 3)
        d_raw = ndimage.distance_transform_edt(~raw[near], sampling=sp)
        shell[near] = ~(d_raw <= 2.0) & (d_raw <= 8.0)
        del d_raw
        background = shell & (ct > -100) & (ct < 300)
    return smooth, background, _measure(smooth, raw, background, p, fallbacks)


def _tube_responses(ct: np.ndarray, region: np.ndarray, background: np.ndarray, st: _Stats, sp, sigmas, p,
                    device) -> tuple[np.ndarray, np.ndarray]:
    """(bright, dark) tube responses in units of this patient's ideal cylinder; sets the growth's
    hysteresis thresholds st.low / st.high from the dark response on the background (noise)."""
    # Clip far outside the vessel/parenchyma range so bone and air edges do not dominate.
    lo, hi = st.parenchyma_hu - st.contrast_hu, st.parenchyma_hu + 2.0 * st.contrast_hu
    # Only the region is used (dark: its liver part), and vesselness is 0 elsewhere.
    tubeness, dark = vesselness(np.clip(ct, lo, hi), sp, sigmas, beta=p.blob_beta, polarity="both",
                                device=device, mask=region)
    scale = st.contrast_hu * TUBE_PEAK_FRACTION  # 1 = ideal cylinder of this patient's contrast
    tubeness /= scale
    # Liver has no dark tubes: the dark response there is the noise's tube-likeness.
    dark /= scale
    null = dark[background] if background.any() else np.zeros(1, np.float32)
    st.low = max(p.grow_low, float(np.quantile(null, p.null_low_quantile)))
    st.high = max(p.grow_high, float(np.quantile(null, p.null_high_quantile)))
    return tubeness, dark


def _grow(mask: np.ndarray, inner, peak: np.ndarray, tubeness: np.ndarray, dark: np.ndarray, smooth: np.ndarray,
          ct: np.ndarray, region: np.ndarray, liver: np.ndarray | None, exclude: np.ndarray | None, st: _Stats, sp,
          p, steps: dict, backed_off: list[str]) -> None:
    """Grow the mask (in place, within the region's box `inner`) into tubular candidates, at the
    lowest threshold where noise alone would not grow as much; tubeness is zeroed in large lumens
    (IVC, portal trunk) so that bridges do not route through them either."""
    large = _large_lumen(ct, st, sp, p.large_lumen_radius_mm)
    if exclude is not None:
        large |= exclude
    cand = _candidates(tubeness[inner], smooth[inner], peak, st, p) & region[inner] & ~large[inner]
    tubeness[large] = 0.0
    steps["large_lumen_voxels"] = _count(large)
    before = _count(mask)
    ungrown = mask[inner].copy()
    # What noise alone would grow: the same growth on the mirrored image (dark tubes, HU
    # reflected about the parenchyma). The liver holds no dark tubes, so all of it is noise.
    # Where it rivals what the vessels grew, thin vessels cannot be told from noise at this
    # threshold: it is raised step by step, and growth is dropped when no step is clean enough.
    # Counted inside the liver only, 2 mm from its surface: outside it lie truly dark tissues.
    interior = (~_dilate_ball(~liver, sp, 2.0) if liver is not None else region)[inner]
    mirror = 2.0 * st.parenchyma_hu - smooth
    null_peak = _local_peak(mirror, sp, p.peak_radius_mm, inner)
    null_cand = _candidates(dark[inner], mirror[inner], null_peak, st, p) & interior & ~large[inner]
    real = _GrowthPieces(ungrown, cand, tubeness[inner])
    noise = _GrowthPieces(ungrown, null_cand, dark[inner])
    chosen, first = None, None
    for factor in p.growth_backoff_factors:
        keep = real.kept(st.high * factor)
        grown_inside = real.voxels(keep, interior)
        null_grown = noise.voxels(noise.kept(st.high * factor))
        first = first or (grown_inside, null_grown)
        if not grown_inside and factor != p.growth_backoff_factors[0]:
            break  # raised until nothing grows: no growth
        if null_grown <= p.max_noise_growth_ratio * grown_inside or not grown_inside:
            chosen = (factor, keep, grown_inside, null_grown)
            break
    scan = (f"(parenchyma spread {st.parenchyma_sd_hu:.0f} HU after smoothing, vessel contrast "
            f"{st.contrast_hu:.0f} HU, voxels {' x '.join(f'{x:.2g}' for x in sp)} mm)")
    if chosen is None:
        mask[inner] = ungrown
        backed_off.append(
            f"no growth: on this scan noise alone grows {first[1]} voxels for the vessels' {first[0]} {scan}, "
            f"and as much at any threshold up to {max(p.growth_backoff_factors):g}x: thin vessels cannot be "
            "told from noise, the network's mask is kept")
        steps.update(growth_threshold_factor=None, noise_grown_voxels=first[1])
    else:
        factor, keep, grown_inside, null_grown = chosen
        mask[inner] = real.grown(ungrown, keep)
        if factor != p.growth_backoff_factors[0]:
            backed_off.append(
                f"growth threshold raised {factor:g}x: at the usual threshold noise alone would grow "
                f"{first[1]} voxels for the vessels' {first[0]} {scan}; only clearly tubular vessels were added")
        steps.update(growth_threshold_factor=factor, noise_grown_voxels=null_grown)
    steps["grown_voxels"] = _count(mask) - before
