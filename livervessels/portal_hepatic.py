"""Portal vein vs hepatic vein split of the intrahepatic vessel tree.

Both venous trees are connected to each other in the vessel mask wherever they touch, so labelling
each voxel by its nearest seed fails there. The split works on the centerline graph
(livervessels.vessel_graph) instead:

1. Seeds: vessel voxels within `seed_distance_mm` of the portal vein (hilum) are portal; those as
   close to the IVC are hepatic, keeping the contacts near the hepatic vein confluence (the most
   superior ones when the grid's orientation is known, else those farthest from the portal vein).
   Only contact patches made by the thickest vessels count (thin vessels brushing the portal vein
   or the IVC are not roots). The portal contact roots the thickest branches joined to it through
   thick lumen (per vessel component); the hepatic contact roots every branch near it (the veins
   converge on the IVC).
2. Junction explanation: at every junction (junctions whose spheres overlap count as one) the
   incident branches are partitioned into vessels: through pairs, bifurcations and trifurcations
   (a parent and children: children leave within ~60 degrees of the parent's flow, are not thicker
   than it, their radii follow Murray's law, their axes meet the parent's axis, and their
   centerline HU differ only by noise and partial volume) or a branch ending on another vessel
   (touching, not branching). Branch axes come from the CT's Hessian along the centerline beyond
   the junction bulge (the skeleton bends towards a junction). Vessels touch but do not
   interpenetrate, so two touching vessels keep their axes about r1 + r2 apart, while a child's
   axis starts on its parent's. The best partition explains the junction; the affinity of two
   branches is how much worse the best explanation becomes when they must be one vessel:
   exp(-(E(a~b) - E_best)).
3. Labelling: both trees grow from their seeds at once; a branch goes to the tree that reaches it
   by the most plausible path (least summed -ln affinity). Growing into a vessel thicker than the
   thinnest one on the path from the root costs extra: radii shrink away from the root, so a tree
   that crossed a contact cannot cheaply climb the other tree's trunk. So does leaving a junction
   back towards the tree's own root: the portal tree spreads out from the hilum and the hepatic
   veins from the IVC, so where a thin vessel of one tree ends on the side of the other (which at
   millimetre voxels looks just like a side branch), the tree it does not belong to would have to
   turn back towards its own root to take it.
4. Voxels take the label of their nearest centerline voxel within their own connected component.

Voxels coarser than max_working_spacing_mm are subdivided first (thin vessels are one voxel wide on
thick slices) and the labels brought back to the input grid.

Confidence of a branch: with P(a~b) = 1 / (1 + exp(E(a~b) - E(a|b))) per junction pair and a path's
probability the product of its pairs', 1 / (1 + exp(cost_own - cost_other)) where cost = -ln of
the most probable path from the branch's own seeds (within its label) or from the other label's
seeds, each step costing -ln P plus that tree's cost of turning back towards its root.
Components that no seed reaches get the label of the nearest labelled vessel (else the nearer
support structure) with confidence 0.25 and are flagged. `use_skeleton=False` labels voxels
by the nearest seed along a radius-weighted geodesic inside the mask instead (cost per mm =
1 / radius, so paths follow vessel cores and avoid the thin waists where vessels touch).

Research use only; not a medical device.
"""
from __future__ import annotations

import functools
import heapq
import itertools
import math
import time
from dataclasses import asdict, dataclass, field, replace

import cc3d
import numpy as np
from scipy import ndimage, sparse, spatial
from scipy.sparse import csgraph

from livervessels.enhancement import _dilate_ball  # exact, fast ball dilation (shared with the repair)
from livervessels.geometry import CanonicalFrame
from livervessels.split_confidence import DEFAULT_MODEL, ConfidenceModel
from livervessels.split_intensity import TreeIntensity, branch_log_odds, measure_tree_intensity
from livervessels.vessel_graph import (VesselGraph, attach_image_axes, bounding_box, build_vessel_graph,
                                       distances_at, feature_indices, median, summarize_tree)

PORTAL, HEPATIC = 1, 2
_NAME = {PORTAL: "portal", HEPATIC: "hepatic"}
_UNREACHED_CONFIDENCE = 0.25


@dataclass
class SplitBranches:
    """Branch-level result of the graph split (for statistics and benchmarks).

    The graph lives on a crop of the working grid, which is the input grid or, for coarse voxels,
    the input grid subdivided `scale` times per axis: input voxel index =
    (graph voxel index + offset) // scale + origin."""

    graph: VesselGraph
    offset: np.ndarray  # (3,) int, crop start on the working grid
    labels: np.ndarray  # (n_branches,) uint8 0/1/2
    confidence: np.ndarray  # (n_branches,) float in [0, 1]
    parent: np.ndarray  # (n_branches,) int: the branch each was reached from (-1: a seed or unreached)
    scale: np.ndarray = field(default_factory=lambda: np.ones(3, np.int64))  # (3,) int
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))  # (3,) int, on the input grid
    # the evidence behind each confidence: split_confidence.EVIDENCE name -> (n_branches,) array
    evidence: dict[str, np.ndarray] | None = None

    def input_voxels(self, branch: int) -> np.ndarray:
        """(n, 3) input-grid voxel indices of a branch's centerline (repeats on a finer working grid)."""
        return (self.graph.branches[branch].voxels + self.offset) // self.scale + self.origin


@dataclass
class PortalHepaticSplit:
    labels: np.ndarray  # uint8 on the input grid: 0 background, 1 portal, 2 hepatic
    skeleton_labels: np.ndarray | None  # uint8 centerline voxels with their label, when computed
    qc: dict  # portal_hepatic_split_qc
    branches: SplitBranches | None = None  # the labelled centerline graph, when computed
    seeds: np.ndarray | None = None  # uint8 on the input grid: 1 portal / 2 hepatic seed voxels used


@dataclass(frozen=True)
class SplitParams:
    """Physical parameters of the split (millimetres, degrees, dimensionless costs)."""

    # working grid: coarser voxels are subdivided so thin vessels get a clean centerline
    max_working_spacing_mm: float = 1.0
    # seeds
    seed_distance_mm: float = 3.0  # vessel voxels this close to the portal vein / IVC are seeds
    dome_window_mm: float = 40.0  # hepatic seeds: IVC contacts within this of the most superior one
    seed_radius_ratio: float = 0.7  # IVC contacts of vessels thinner than this x the thickest contact are not roots
    seed_reach_mm: float = 6.0  # a contact's vessel thickness: largest radius within this of the contact
    root_radius_ratio: float = 0.8  # portal roots: branches near the contact at least this x the thickest
    hepatic_root_ratio: float = 0.35  # hepatic roots: at least this x the thickest (thin portal vessels brush the IVC)
    emerging_root_ratio: float = 0.4  # thinner roots (a left portal vein, an inferior right hepatic vein) when
    emerging_lumen_fraction: float = 0.6  # ... they emerge from the portal vein / IVC: joined through lumen this
    # fraction of their own radius wide (a vessel merely touching it is joined through a narrow waist)
    emerging_min_radius_mm: float = 2.0  # ... and at least this thick (first-order portal branches, hepatic trunks)
    root_cost_weight: float = 3.0  # such a root costs this x ln(thickest root radius / its radius)
    # centerline graph and junction explanation
    spur_ratio: float = 1.0  # terminal branches not longer than this x the junction radius are wall bumps
    direction_reach_mm: float = 9.0  # branch axis at a junction: measured over this much centerline
    axis_sigma_mm: float = 1.5  # scale of the CT Hessian giving the vessel axis (0: centerline voxels only)
    angle_scale_deg: float = 60.0  # a child leaving its parent's flow at this angle costs 1
    radius_log_sigma: float = 0.15  # relative radius noise (plus half a voxel of measurement error)
    end_penalty: float = 2.0  # a branch ending on another vessel: as costly as a child leaving at ~85 deg
    trifurcation_penalty: float = 2.0  # three children at one junction (two close bifurcations)
    intensity_weight: float = 0.0  # weight of the intensity-consistency term (0: geometry only)
    axis_offset_weight: float = 1.0  # weight of the axis-offset term (vessels touch, they do not interpenetrate)
    max_enumerated_ends: int = 8  # exact partition search up to this many branches at a junction
    max_region_ends: int = 8  # junctions close together join one region up to this many branch ends
    upstream_weight: float = 1.0  # cost of growing into a vessel thicker than the path so far
    radial_weight: float = 3.0  # cost of leaving a junction straight back towards the tree's root
    radial_reach_mm: float = 20.0  # near a root "away from it" is ill-defined: the cost x d / (d + this)
    radius_bin_factor: float = 0.6  # trees grow thick vessels first, in radius bins this factor apart (1: off)
    tree_intensity_weight: float = 0.5  # weight of the scan's portal / hepatic HU difference (where it shows one)
    orphan_climb_ratio: float = 2.5  # a vessel reached only through vessels this many times thinner is cut off
    orphan_min_radius_mm: float = 2.0  # ... from its own tree (a gap) when at least this thick: it roots itself,
    orphan_distance_ratio: float = 0.67  # ... in the tree whose root is nearer (this x the other's distance; else not)
    intensity_root_min_radius_mm: float = 2.0  # a branch this thick whose own HU speaks for the other tree
    intensity_root_log_odds: float = 3.0  # ... with log-odds at least this (0: off) roots itself there
    intensity_root_cost: float = 0.0  # ... at this cost
    intensity_root_min_length_mm: float = 5.0  # ... when this long (a stub at a junction mixes both trees' HU)
    subtree_flip_margin: float = 3.0  # a subtree changes tree when its HU evidence beats its attachment by this (0: off)
    subtree_flip_mean: float = 1.0  # ... and its branches' mean log-odds for the other tree reach this
    # confidence: a model of P(label right | evidence), fitted on synthetic livers (split_confidence)
    confidence_model: ConfidenceModel = DEFAULT_MODEL
    # QC
    low_confidence: float = 0.6  # branches below this confidence are counted as low confidence
    seed_failure_fraction: float = 0.05  # a class with a smaller share of the vessel voxels failed
    least_confident_listed: int = 5  # branches listed in the QC, least confident first

def split_portal_hepatic(
    vessels: np.ndarray,
    ct: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    liver: np.ndarray | None = None,
    portal_vein: np.ndarray | None = None,
    ivc: np.ndarray | None = None,
    use_skeleton: bool = True,
    min_component_size: int = 0,
    affine: np.ndarray | None = None,
    params: SplitParams | None = None,
) -> PortalHepaticSplit:
    """Label every vessel voxel portal (1) or hepatic (2).

    vessels, ct and the support masks share one grid with voxel size `spacing` (mm). `affine`
    (voxel -> RAS mm), when given, tells which way is superior for the hepatic seeds, and the split
    then runs in the closest RAS orientation, so its answer does not depend on how the slices were
    stored; without it the IVC contacts farthest from the portal vein stand for the dome. Vessel
    components smaller than `min_component_size` voxels are left 0.
    """
    p = params or SplitParams()
    frame = None if affine is None else CanonicalFrame(affine, np.shape(vessels), spacing)
    if frame is not None and not frame.is_identity:
        # The graph search breaks ties in voxel order: working in the closest RAS orientation gives
        # the same split however the scanner stored rows, columns and slices (a scanner's supine
        # series, IOP (1,0,0, 0,1,0), is stored flipped in x and y against RAS).
        split = split_portal_hepatic(frame.to(vessels), frame.to(ct), frame.spacing, liver=frame.to(liver),
                                     portal_vein=frame.to(portal_vein), ivc=frame.to(ivc), use_skeleton=use_skeleton,
                                     min_component_size=min_component_size, affine=frame.affine, params=p)
        return PortalHepaticSplit(frame.back(split.labels), frame.back(split.skeleton_labels), split.qc)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    vessels = np.asarray(vessels, bool)
    spacing = tuple(float(s) for s in spacing)
    flags: list[str] = []
    for name, m in (("liver", liver), ("portal_vein", portal_vein), ("ivc", ivc)):
        if m is None:
            flags.append(f"missing_support_{name}")
        elif not np.any(m):
            flags.append(f"empty_support_{name}")
    labels = np.zeros(vessels.shape, np.uint8)
    skeleton_labels = np.zeros(vessels.shape, np.uint8) if use_skeleton else None
    total = int(np.count_nonzero(vessels))
    qc: dict = {"method": ("centerline graph: junction explanation + trees grown from the seeds"
                           if use_skeleton else "voxel geodesic (1/radius) from the nearest seed"),
                "use_skeleton": bool(use_skeleton), "min_component_size": int(min_component_size)}
    if total == 0:
        flags.append("empty_vessels")
        qc.update(_counts(labels, vessels, 0, 0), confidence=0.0, low_confidence_branches=0,
                  least_confident_branches=[], flags=flags, parameters=asdict(p))
        return PortalHepaticSplit(labels, skeleton_labels, qc)

    # Everything below runs on the vessels' bounding box, padded so seeds near it are inside.
    pad = [int(np.ceil(p.seed_distance_mm / s)) + 1 for s in spacing]
    box = bounding_box(vessels)
    box = tuple(slice(max(b.start - q, 0), min(b.stop + q, n)) for b, q, n in zip(box, pad, vessels.shape))
    v = vessels[box]
    comps, n_comp = cc3d.connected_components(v, connectivity=26, return_N=True)
    sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
    small = (sizes < min_component_size) & (np.arange(n_comp + 1) > 0)
    if small.any():
        v = v & ~small[comps]
        comps = np.where(v, comps, 0)
    qc["small_components_unlabelled"] = int(small.sum())
    qc["small_component_voxels"] = int(sizes[small].sum())

    scale = np.array([int(np.ceil(s / p.max_working_spacing_mm - 1e-6)) for s in spacing])
    if use_skeleton and (scale > 1).any() and v.any():
        return _split_on_finer_grid(vessels, v, box, scale, ct, spacing, liver, portal_vein, ivc, affine, p,
                                    qc, flags, t0)

    pv_c = _crop(portal_vein, box)
    ivc_c = _crop(ivc, box)
    superior = _superior_height(affine) if affine is not None else None
    pv_centroid = (np.argwhere(portal_vein).mean(axis=0) - [b.start for b in box]  # (only used without affine)
                   if superior is None and portal_vein is not None and np.any(portal_vein) else None)
    t = time.perf_counter()
    seeds = _find_seeds(v, pv_c, ivc_c, spacing, p, superior, pv_centroid)
    timings["seeds"] = time.perf_counter() - t

    ct_c = np.asarray(ct)[box] if ct is not None else None
    branches = None
    if use_skeleton:
        lab_c, skel_c, info = _split_on_graph(v, comps, ct_c, spacing, seeds, p, timings,
                                              support={"portal_vein": pv_c, "ivc": ivc_c, "liver": _crop(liver, box)})
        graph, branch_label, conf, parent, evidence = info.pop("graph")
        branches = SplitBranches(graph, np.array([b.start for b in box]), branch_label, conf, parent, evidence=evidence)
    else:
        lab_c, info = _split_geodesic(v, spacing, seeds, p, timings)
        skel_c = None
    for lab in (PORTAL, HEPATIC):
        if not seeds[lab].any():
            flags.append(f"no_{_NAME[lab]}_seeds")
    # Components no seed reaches: label them by the best evidence left, with low confidence.
    t = time.perf_counter()
    unreached = _label_unreached(lab_c, v, comps, info.pop("unreached_mask"), pv_c, ivc_c, spacing)
    timings["unreached"] = time.perf_counter() - t
    if branches is not None and unreached["components"]:
        for b in branches.graph.branches:  # their branches take the fallback label too
            if branches.labels[b.index] == 0:
                branches.labels[b.index] = lab_c[tuple(b.voxels[0])]
    if skel_c is not None:
        skel_c[skel_c > 0] = lab_c[skel_c > 0]  # keep the centerline consistent after the fallback
        skeleton_labels[box] = skel_c
    labels[box] = lab_c

    qc.update(_counts(labels[box], vessels[box], int(seeds[PORTAL].sum()), int(seeds[HEPATIC].sum())))  # all in the box
    qc["unreached_components"] = unreached["components"]
    qc["unreached_voxels"] = unreached["voxels"]
    if unreached["components"]:
        flags.append("unreached_components")
    for lab in (PORTAL, HEPATIC):
        if qc[f"{_NAME[lab]}_fraction"] < p.seed_failure_fraction:
            flags.append(f"{_NAME[lab]}_seed_failure")
    qc.update(info)
    # Voxels of unreached components count with a low confidence in the overall figure.
    if unreached["voxels"] and "confidence" in qc:
        n_lab = qc["portal_voxels"] + qc["hepatic_voxels"]
        w = unreached["voxels"] / max(n_lab, 1)
        qc["confidence"] = round((1 - w) * qc["confidence"] + w * _UNREACHED_CONFIDENCE, 3)
    if any(f.endswith("seed_failure") for f in flags):
        qc["confidence"] = round(min(qc.get("confidence", 0.0), 0.25), 3)
    if qc.get("confidence", 0.0) < p.low_confidence:
        flags.append("low_confidence")
    qc["flags"] = flags
    qc["parameters"] = asdict(p)
    timings["total"] = time.perf_counter() - t0
    qc["timings_s"] = {k: round(val, 3) for k, val in timings.items()}
    seed_map = np.zeros(vessels.shape, np.uint8)
    seed_map[box] = np.where(seeds[PORTAL], PORTAL, np.where(seeds[HEPATIC], HEPATIC, 0))
    return PortalHepaticSplit(labels, skeleton_labels, qc, branches, seed_map)


def _split_on_finer_grid(vessels, v, box, scale, ct, spacing, liver, portal_vein, ivc, affine, p: SplitParams,
                         qc: dict, flags: list, t0: float) -> PortalHepaticSplit:
    """Run the split on the cropped input subdivided `scale` times per axis and bring the labels
    back: on coarse voxels (thick slices) a thin vessel is one voxel wide, its skeleton follows the
    voxel staircase and touching vessels merge into junction blobs."""
    t = time.perf_counter()
    fine_spacing = tuple(s / k for s, k in zip(spacing, scale))
    v_w = _upsample_mask(v, scale)
    crop = (lambda m: None if m is None else _repeat(np.asarray(m, bool)[box], scale))
    ct_w = None
    if ct is not None:
        ct_w = _upsample_ct(np.asarray(ct)[box], scale)
    aff_w = None
    if affine is not None:
        aff_w = np.asarray(affine, float).copy()
        aff_w[:3, :3] = aff_w[:3, :3] / scale[None, :]
    resample_s = time.perf_counter() - t
    inner = split_portal_hepatic(v_w, ct_w, fine_spacing, liver=crop(liver), portal_vein=crop(portal_vein),
                                 ivc=crop(ivc), use_skeleton=True, affine=aff_w, params=p)
    t = time.perf_counter()
    labels = np.zeros(vessels.shape, np.uint8)
    labels[box] = _downsample_labels(inner.labels, scale, v, spacing)
    skeleton_labels = np.zeros(vessels.shape, np.uint8)
    # a centerline voxel of the input grid: one whose block holds the fine centerline; it shows
    # the voxel's label
    skeleton_labels[box] = np.where(_block_majority(inner.skeleton_labels, scale) > 0, labels[box], 0)
    seed_map = np.zeros(vessels.shape, np.uint8)
    seed_map[box] = _block_majority(inner.seeds, scale) * v
    resample_s += time.perf_counter() - t

    out = dict(inner.qc)
    out.update(qc)  # method, use_skeleton, min_component_size, small components: from the input grid
    # every vessel, label and seed voxel lies in the box
    out.update(_counts(labels[box], vessels[box], int((seed_map[box] == PORTAL).sum()),
                       int((seed_map[box] == HEPATIC).sum())))
    inner_flags = [f for f in inner.qc["flags"] if not f.endswith("seed_failure") and f != "low_confidence"]
    out_flags = list(dict.fromkeys(flags + inner_flags))
    for lab in (PORTAL, HEPATIC):
        if out[f"{_NAME[lab]}_fraction"] < p.seed_failure_fraction:
            out_flags.append(f"{_NAME[lab]}_seed_failure")
    if any(f.endswith("seed_failure") for f in out_flags):
        out["confidence"] = round(min(out.get("confidence", 0.0), 0.25), 3)
    if out.get("confidence", 0.0) < p.low_confidence:
        out_flags.append("low_confidence")
    out["flags"] = out_flags
    out["working_spacing_mm"] = [round(s, 4) for s in fine_spacing]
    timings = dict(inner.qc.get("timings_s", {}))
    timings["resample"] = round(resample_s, 3)
    timings["total"] = round(time.perf_counter() - t0, 3)
    out["timings_s"] = timings
    branches = inner.branches
    if branches is not None:
        branches = replace(branches, scale=np.asarray(scale, np.int64),
                           origin=np.array([b.start for b in box], np.int64))
    return PortalHepaticSplit(labels, skeleton_labels, out, branches, seed_map)


def _repeat(m: np.ndarray, scale) -> np.ndarray:
    for ax, k in enumerate(scale):
        m = np.repeat(m, int(k), axis=ax)
    return m


def _upsample_ct(ct: np.ndarray, scale) -> np.ndarray:
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


def _upsample_mask(v: np.ndarray, scale) -> np.ndarray:
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
        return _repeat(v, scale)
    out = ndimage.zoom(v.astype(np.float32), scale, order=1, grid_mode=True, mode="nearest") >= 0.5
    idx = np.argwhere(v)
    centre = idx * scale + scale // 2
    lost = ~_block_majority(out.astype(np.uint8), scale).astype(bool)[tuple(idx.T)]
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


def _block_majority(m: np.ndarray, scale) -> np.ndarray:
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


def _downsample_labels(lab_w: np.ndarray, scale, v: np.ndarray, spacing) -> np.ndarray:
    """Input-grid labels: block majority; vessel voxels whose block lost every labelled sub-voxel
    take the nearest labelled voxel's label."""
    lab = _block_majority(lab_w, scale) * v
    missing = v & (lab == 0)
    if missing.any() and lab.any():
        where = np.nonzero(missing)
        ind = feature_indices(lab == 0, spacing)
        lab[where] = lab[tuple(i[where] for i in ind)]
    return lab


# --------------------------------------------------------------------------------------------------
# Seeds


def find_seeds(vessels: np.ndarray, spacing: tuple[float, float, float], *, portal_vein: np.ndarray | None = None,
               ivc: np.ndarray | None = None, affine: np.ndarray | None = None,
               params: SplitParams | None = None) -> dict[int, np.ndarray]:
    """Seed voxels {PORTAL: mask, HEPATIC: mask} on the input grid: vessel voxels within
    seed_distance_mm of the portal vein / IVC (the nearer one), hepatic ones near the dome, in
    contact patches made by thick vessels (seed_radius_ratio of the thickest). The split then
    picks the root branches at these contacts."""
    p = params or SplitParams()
    vessels = np.asarray(vessels, bool)
    superior = _superior_height(affine) if affine is not None else None
    pv = None if portal_vein is None else np.asarray(portal_vein, bool)
    centroid = np.argwhere(pv).mean(axis=0) if pv is not None and pv.any() else None
    return _find_seeds(vessels, pv, None if ivc is None else np.asarray(ivc, bool),
                       tuple(float(s) for s in spacing), p, superior, centroid)


def _crop(mask, box):
    return None if mask is None else np.asarray(mask, bool)[box]


def _superior_height(affine) -> np.ndarray:
    """mm of superior (RAS +z) displacement per voxel step along each array axis."""
    return np.asarray(affine, float)[2, :3]


def _distance_near(mask, spacing, reach_mm: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """(box, distance (mm) to the mask on that box): the mask's bounding box grown by reach_mm, which
    holds every voxel that near and every mask voxel, so the values are the whole volume's
    transform's, bit for bit (farther voxels are left out). None for a missing or empty mask."""
    if mask is None or not mask.any():
        return None
    box = _padded_box(mask, spacing, reach_mm)
    return box, ndimage.distance_transform_edt(~mask[box], sampling=spacing)


def _padded_box(mask: np.ndarray, spacing, reach_mm: float) -> tuple[slice, ...]:
    """Bounding box of a non-empty mask grown by reach_mm (and a voxel) per side, within the array:
    every voxel outside it is farther than reach_mm from the mask."""
    box = bounding_box(mask)
    pad = [int(np.ceil(reach_mm / s)) + 1 for s in spacing]
    return tuple(slice(max(b.start - q, 0), min(b.stop + q, n)) for b, q, n in zip(box, pad, mask.shape))


def _find_seeds(vessels, portal_vein, ivc, spacing, p: SplitParams, superior, pv_centroid) -> dict:
    # Only distances up to seed_distance_mm matter: transforms near each structure only (a voxel
    # outside a structure's box is farther, read as inf).
    near_pv = _distance_near(portal_vein, spacing, p.seed_distance_mm)
    near_ivc = _distance_near(ivc, spacing, p.seed_distance_mm)

    def dist(near, pts):
        return np.full(len(pts), np.inf) if near is None else _values_at(near[1], near[0], pts, fill=np.inf)

    # A voxel near both structures belongs to the nearer one.
    portal = np.zeros(vessels.shape, bool)
    hepatic = np.zeros(vessels.shape, bool)
    for out, own, other in ((portal, near_pv, near_ivc), (hepatic, near_ivc, near_pv)):
        if own is None:
            continue
        box, d = own
        pts = np.argwhere(vessels[box] & (d <= p.seed_distance_mm)) + [b.start for b in box]
        mine, theirs = dist(own, pts), dist(other, pts)
        out[tuple(pts[mine <= theirs if out is portal else mine < theirs].T)] = True
    idx = np.argwhere(hepatic)
    if len(idx):
        # Hepatic veins join the IVC at the dome; portal branches may brush the IVC lower down
        # (caudate lobe). Keep the contacts within dome_window_mm of the highest one.
        if superior is not None:
            height = idx @ superior
        elif pv_centroid is not None:
            height = np.linalg.norm((idx - pv_centroid) * np.asarray(spacing), axis=1)
        else:
            height = None
        if height is not None:
            drop = idx[height < height.max() - p.dome_window_mm]
            hepatic[tuple(drop.T)] = False
    return {PORTAL: _thick_contacts(portal, vessels, spacing, p, p.emerging_root_ratio),
            HEPATIC: _thick_contacts(hepatic, vessels, spacing, p, p.seed_radius_ratio)}


def _thick_contacts(contact: np.ndarray, vessels: np.ndarray, spacing, p: SplitParams, ratio: float) -> np.ndarray:
    """Keep the contact patches made by vessels at least `ratio` x as thick as the thickest. The
    portal tree continues the portal vein and the hepatic veins drain into the IVC through their
    largest vessels; thin vessels of the other tree merely brushing a support structure are not
    roots. A patch's thickness is the largest vessel radius within seed_reach_mm of it (the support
    label may cover the root's first millimetres). The portal vein divides into right and left
    branches of unequal size, so its patches are kept down to the thinner roots the split may
    accept (emerging_root_ratio)."""
    patches, n = cc3d.connected_components(contact, connectivity=26, return_N=True)
    if n <= 1:
        return contact
    # Only vessels near the contacts matter (their radius: room for a thick vessel beyond the reach).
    box = bounding_box(patches > 0)
    pad = [int(np.ceil((p.seed_reach_mm + 10.0) / s)) + 1 for s in spacing]
    box = tuple(slice(max(b.start - q, 0), min(b.stop + q, m)) for b, q, m in zip(box, pad, vessels.shape))
    # (transforms evaluated at the vessel voxels only)
    inside = np.nonzero(vessels[box])
    nearest = feature_indices(patches[box] == 0, spacing)
    near = distances_at(nearest, inside, spacing) <= p.seed_reach_mm
    at = tuple(x[near] for x in inside)
    owner = patches[box][tuple(i[at] for i in nearest)]
    radius = distances_at(feature_indices(vessels[box], spacing), at, spacing)
    thick = ndimage.maximum(radius, owner, index=np.arange(1, n + 1))
    keep = np.r_[False, np.asarray(thick) >= ratio * np.max(thick)]
    return keep[patches]


# --------------------------------------------------------------------------------------------------
# Centerline-graph split


def _fill_cavities(v: np.ndarray) -> np.ndarray:
    """v plus the background pockets it encloses completely (no face-connected path out of the
    box). A vessel lumen is never an enclosed cavity: a pocket is lumen the segmentation missed
    (hollow vessels, typically bright-rim / dark-core partial volume in network masks). Thinning a
    hollow tube yields a surface, i.e. huge junction clusters joining unrelated vessels."""
    bg, n = cc3d.connected_components(~v, connectivity=6, return_N=True)
    if n <= 1:
        return v
    outside = np.zeros(n + 1, bool)
    for ax in range(3):
        for i in (0, -1):
            outside[np.unique(np.take(bg, i, axis=ax))] = True
    outside[0] = True
    return v | ~outside[bg]


def _split_on_graph(v_in, comps_in, ct, spacing, seeds, p: SplitParams, timings, support: dict | None = None
                    ) -> tuple:
    t = time.perf_counter()
    v = _fill_cavities(v_in)
    comps = comps_in
    if v is not v_in:  # the enclosing component takes its cavities
        comps = cc3d.connected_components(v, connectivity=26)
    timings["fill_cavities"] = time.perf_counter() - t
    t = time.perf_counter()
    graph = build_vessel_graph(v, spacing, ct, spur_ratio=p.spur_ratio)
    if ct is not None and p.axis_sigma_mm > 0:
        attach_image_axes(graph, ct, p.axis_sigma_mm)
    timings["skeleton_graph"] = time.perf_counter() - t
    nb = len(graph.branches)
    lab = np.zeros(v.shape, np.uint8)
    skel_lab = np.zeros(v.shape, np.uint8)
    if nb == 0:
        return lab, skel_lab, {"branches": 0, "confidence": 0.0, "low_confidence_branches": 0,
                               "least_confident_branches": [], "unreached_mask": v_in.copy(),
                               "graph": (graph, np.zeros(0, np.uint8), np.zeros(0), np.zeros(0, np.int64), {})}
    t = time.perf_counter()
    nearest = _nearest_branch(graph, v, comps)
    # Roots are chosen per contact patch among the branches near it (not by each contact voxel's
    # nearest centerline: the root is often a short, fat piece or a junction blob, and its contact
    # voxels may lie nearer to the centerline of a thin vessel touching it).
    support = support or {}
    radius = _branch_core_radius(graph)
    seed_label, seed_conflicts, candidates = _seed_branches(graph, seeds, comps, p)
    seed_label, soft_roots = _refine_roots(graph, seed_label, candidates, support, v, radius, p)
    intensity = _intensity_model(graph, v, ct) if ct is not None and p.intensity_weight > 0 else None
    edges, leaving = _junction_affinities(graph, p, intensity)
    radial = _radial_costs(leaving, _tree_roots(graph, seed_label), p)
    timings["junctions"] = time.perf_counter() - t
    t = time.perf_counter()
    branch_label, refused, parent = _grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                soft_roots=soft_roots)
    # A thick vessel reached only by climbing up from much thinner ones was cut off from its own
    # tree (a gap in the mask, a segmentation that lost the join): whichever tree touched it first
    # took it, with all it drains or feeds. It roots itself instead, in the tree whose root is
    # clearly nearer to it (the left portal vein lies at the hilum, a hepatic trunk at the IVC).
    orphans = _orphan_roots(graph, branch_label, parent, seed_label, radius, p)
    if orphans:
        soft_roots = {**soft_roots, **orphans}
        branch_label, refused, parent = _grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                    soft_roots=soft_roots)
    # The scan's own HU difference between the trees, measured on the thick vessels of this first
    # labelling; where it is clear, the trees grow again with it.
    tree_hu = _measure_tree_intensity(graph, ct, v, support.get("liver"), branch_label, radius, p)
    log_odds = np.zeros(nb)
    flips = 0
    hu_roots: dict = {}
    if tree_hu.used:
        log_odds = branch_log_odds(graph, ct, radius, tree_hu, branch_label)
        branch_label, refused, parent = _grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                    log_odds=log_odds, soft_roots=soft_roots)
        hu_roots = _intensity_roots(graph, branch_label, log_odds, radius, seed_label, p)
        if hu_roots:
            soft_roots = {**soft_roots, **hu_roots}
            branch_label, refused, parent = _grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                        log_odds=log_odds, soft_roots=soft_roots)
        if p.subtree_flip_margin > 0:
            branch_label, parent, flips = _flip_subtrees(branch_label, parent, edges, seed_label, log_odds, p)
    margin = _branch_margin(nb, edges, seed_label, branch_label, radial)
    evidence = {"margin": margin, "log_odds_own": np.where(branch_label == HEPATIC, -log_odds, log_odds),
                "radius_mm": radius, "other_tree_neighbours": _other_tree_neighbours(edges, branch_label),
                "growth_depth": _growth_depth(parent), **_path_risks(edges, parent, radius)}
    conf = np.where(branch_label > 0, p.confidence_model(evidence), _UNREACHED_CONFIDENCE)
    timings["labelling"] = time.perf_counter() - t

    labelled = branch_label > 0
    lab[v_in] = np.where(labelled[nearest[v_in]], branch_label[nearest[v_in]], 0)  # input voxels only
    skel_lab[graph.skeleton] = lab[graph.skeleton]
    info = {"branches": nb,
            "intensity": tree_hu.as_qc(),
            "portal_branches": int((branch_label == PORTAL).sum()),
            "hepatic_branches": int((branch_label == HEPATIC).sum()),
            "seed_conflict_branches": seed_conflicts,
            "subtrees_moved_by_intensity": int(flips),
            "intensity_roots": len(hu_roots),
            "orphan_roots": len(orphans),
            "contacts_cut": int(refused)}
    info.update(_confidence_summary(graph, branch_label, conf, p))
    info["portal_tree"] = summarize_tree(graph, np.flatnonzero(branch_label == PORTAL))
    info["hepatic_tree"] = summarize_tree(graph, np.flatnonzero(branch_label == HEPATIC))
    info["unreached_mask"] = v_in & (lab == 0)
    info["graph"] = (graph, branch_label, conf, parent, evidence)  # popped by the caller: not part of the QC

    return lab, skel_lab, info


def _seed_branches(graph: VesselGraph, seeds: dict, comps: np.ndarray, p: SplitParams
                   ) -> tuple[np.ndarray, int, dict[int, np.ndarray]]:
    """(seed label per branch: 0, PORTAL or HEPATIC; number of branches near both contacts, given
    to the nearer one; {label: (n_branches,) bool} the branches near each contact, seeds or not).

    Candidates are the thick branches near a contact, grouped by contact patch and vessel
    component: the hepatic veins usually meet the IVC in one contact patch, but the IVC label may
    separate them, and each needs its root."""
    nb = len(graph.branches)
    is_seed = {l: np.zeros(nb, bool) for l in (PORTAL, HEPATIC)}
    candidates = {l: np.zeros(nb, bool) for l in (PORTAL, HEPATIC)}
    centerline_dist = {l: np.full(nb, np.inf) for l in (PORTAL, HEPATIC)}
    radius = np.array([b.mean_radius_mm for b in graph.branches])
    vox, starts = _centerline(graph)
    comp_of = comps[tuple(vox[starts].T)].astype(np.int64)
    max_radius = np.maximum.reduceat(np.concatenate([b.radii_mm for b in graph.branches]), starts)
    # Distances to a contact are compared with at most this (a candidate's or a junction's radius
    # beyond the reach, the lumen region of _continuous_with_contact): farther ones may read inf.
    reach = p.seed_distance_mm + p.seed_reach_mm + max(10.0, float(graph.radius_mm.max()))
    for l in (PORTAL, HEPATIC):
        if not seeds[l].any():
            continue
        # on the contact's box grown by reach only (inf / patch 0 outside it)
        box = _padded_box(seeds[l], graph.spacing, reach)
        d_box, ind = ndimage.distance_transform_edt(~seeds[l][box], sampling=graph.spacing, return_indices=True)
        patch_box = cc3d.connected_components(seeds[l][box], connectivity=26)[tuple(ind)]
        d = functools.partial(_values_at, d_box, box, fill=np.inf)
        patch_of = functools.partial(_values_at, patch_box, box, fill=0)
        near = centerline_dist[l]
        k = _segment_argmin(d(vox), starts)  # each branch's centerline voxel nearest the contact
        near[:] = d(vox[k])
        patch = patch_of(vox[k]).astype(np.int64)
        near = near.copy()  # centerline_dist keeps the centerline's own distance
        # A root's centerline may start about a radius away from the contact (thinning stops short
        # of a blob end), or a little farther in when the support label covers its first
        # millimetres and only a rim of partial-volume voxels touches it.
        cand = near <= p.seed_distance_mm + p.seed_reach_mm + max_radius
        if l == PORTAL:
            cand &= _continuous_with_contact(graph, seeds[l][box], d_box, p, box)
        if l == HEPATIC:
            # The hepatic veins converge on the IVC, often in one junction blob of the mask: every
            # thick vessel leaving a junction at the contact is a root. (The portal vein enters as
            # one trunk; a thick hepatic vein touching it there must not become a portal root.)
            for n in graph.nodes:
                if n.kind != "junction":
                    continue
                dn = d(n.voxels)
                if dn.min() <= p.seed_distance_mm + graph.node_radius_mm(n.index):
                    k = int(np.argmin(dn))
                    for bi in set(n.branches):
                        if near[bi] > dn[k]:
                            near[bi], patch[bi] = dn[k], patch_of(n.voxels[k:k + 1])[0]
                        cand[bi] = True
        candidates[l] = cand.copy()
        group = patch * (int(comps.max()) + 1) + comp_of
        for c in np.unique(group[cand]):
            members = np.flatnonzero(cand & (group == c))
            # Portal: the trunk's continuation only (a thick hepatic vein may touch it at the hilum).
            # Hepatic: every vein reaching the contact; several converge on the IVC, and the
            # thickness filter of the contact patches already drops vessels brushing it lower down.
            ratio = p.root_radius_ratio if l == PORTAL else 0.0
            is_seed[l][members[radius[members] >= ratio * radius[members].max()]] = True
    both = is_seed[PORTAL] & is_seed[HEPATIC]
    portal = is_seed[PORTAL] & ~(both & (centerline_dist[PORTAL] > centerline_dist[HEPATIC]))
    hepatic = is_seed[HEPATIC] & ~portal
    return np.where(portal, PORTAL, np.where(hepatic, HEPATIC, 0)).astype(np.uint8), int(both.sum()), candidates


def _refine_roots(graph: VesselGraph, seed_label: np.ndarray, candidates: dict, support: dict,
                  vessels: np.ndarray, radius: np.ndarray, p: SplitParams) -> tuple[np.ndarray, dict]:
    """Roots by thickness and by how they join their support structure: (root label per branch,
    {branch: (label, cost)} of possible further roots).

    Portal roots thinner than root_radius_ratio x the thickest and hepatic roots thinner than
    hepatic_root_ratio x the thickest go: the portal vein enters as one trunk, the hepatic veins
    drain into the IVC through their thick trunks, and thin vessels of the other tree brush both
    structures. A thinner branch
    near a contact may be a root too when it emerges from the structure: at least
    emerging_root_ratio x the thickest root and emerging_min_radius_mm thick, and joined to the portal vein / IVC through lumen
    emerging_lumen_fraction of its own radius wide (the left portal vein beside a thicker right one;
    an inferior right hepatic vein). A vessel of the other tree merely touching the structure is
    joined through a narrow waist. Such roots are not certain (a vessel of the other tree can end
    on the structure): the growth takes them at a cost, root_cost_weight x ln(thickest / own radius),
    unless the other tree reaches them more cheaply through its own vessels."""
    out = seed_label.copy()
    soft: dict[int, tuple[int, float]] = {}
    for lab, ratio in ((PORTAL, p.root_radius_ratio), (HEPATIC, p.hepatic_root_ratio)):
        roots = np.flatnonzero(out == lab)
        if len(roots):
            out[roots[radius[roots] < ratio * radius[roots].max()]] = 0
    for lab, key in ((PORTAL, "portal_vein"), (HEPATIC, "ivc")):
        roots = np.flatnonzero(out == lab)
        structure = support.get(key)
        if not len(roots) or structure is None or not structure.any():
            continue
        r_ref = radius[roots].max()
        thick = radius >= max(p.emerging_root_ratio * r_ref, p.emerging_min_radius_mm)
        for b in np.flatnonzero(candidates[lab] & (out == 0) & thick):
            if int(b) not in soft and _emerges(graph, b, structure, vessels, radius[b] * p.emerging_lumen_fraction):
                soft[int(b)] = (lab, p.root_cost_weight * max(0.0, float(np.log(r_ref / radius[b]))))
    return out, soft


def _emerges(graph: VesselGraph, branch: int, structure: np.ndarray, vessels: np.ndarray, lumen_mm: float) -> bool:
    """Whether the branch's lumen reaches the structure's through a passage at least lumen_mm in
    radius, in the union of the vessel mask and the structure."""
    sp = np.asarray(graph.spacing)
    vox = graph.branches[branch].voxels
    pad = np.ceil((2 * lumen_mm + 12.0) / sp).astype(int)
    lo = np.maximum(vox.min(0) - pad, 0)
    hi = np.minimum(vox.max(0) + pad + 1, graph.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    union = vessels[box] | structure[box]
    if not structure[box].any():
        return False
    wide = ndimage.distance_transform_edt(union, sampling=sp) >= lumen_mm
    comps = cc3d.connected_components(wide, connectivity=26)
    mine = np.unique(comps[tuple((vox - lo).T)])
    mine = mine[mine > 0]
    return bool(len(mine)) and bool(np.isin(comps[structure[box] & wide], mine).any())


def _values_at(values: np.ndarray, box: tuple[slice, ...], points: np.ndarray, fill) -> np.ndarray:
    """values (given on `box` only) at points ((n, 3) voxel indices of the whole array); fill outside."""
    lo = np.array([b.start for b in box])
    local = points - lo
    inside = np.all((local >= 0) & (local < values.shape), axis=1)
    out = np.full(len(points), fill, values.dtype)
    out[inside] = values[tuple(local[inside].T)]
    return out


def _centerline(graph: VesselGraph) -> tuple[np.ndarray, np.ndarray]:
    """All branches' centerline voxels, branch after branch ((n, 3) int), and where each branch starts."""
    vox = np.vstack([b.voxels for b in graph.branches])
    starts = np.cumsum([0] + [len(b.voxels) for b in graph.branches[:-1]])
    return vox, starts


def _segment_argmin(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index into `values` of the first minimum of each (non-empty) segment starting at `starts`
    (np.argmin per segment)."""
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    hit = np.flatnonzero(values == np.minimum.reduceat(values, starts)[seg])
    return hit[np.r_[True, seg[hit][1:] != seg[hit][:-1]]]


def _continuous_with_contact(graph: VesselGraph, contact: np.ndarray, dist: np.ndarray, p: SplitParams,
                             box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Branches joined to the contact through thick lumen: the portal root continues the portal
    vein at full calibre, while a vessel of the other tree merely touching it near the hilum is
    joined only through a narrow waist. (n_branches,) bool. contact and dist are given on `box`
    (default: the whole grid), which must hold every voxel within the reach below."""
    box = box or tuple(slice(0, n) for n in graph.shape)
    radius_mm = graph.radius_mm[box]
    reach = p.seed_distance_mm + p.seed_reach_mm + 10.0
    region = dist <= reach
    lumen = radius_mm > 0
    r_max = float(radius_mm[region & lumen].max()) if (region & lumen).any() else 0.0
    core = region & ((radius_mm >= 0.5 * r_max) | (lumen & (dist <= p.seed_distance_mm)) | contact)
    labels = cc3d.connected_components(core, connectivity=26)
    touching = np.unique(labels[contact & core])
    joined = np.zeros(int(labels.max()) + 1, bool)
    joined[touching[touching > 0]] = True
    vox, starts = _centerline(graph)
    return np.logical_or.reduceat(joined[_values_at(labels, box, vox, fill=0)], starts)


def _nearest_branch(graph: VesselGraph, v, comps) -> np.ndarray:
    """Index of the nearest branch centerline voxel (mm) for every vessel voxel, within its
    component (-1 outside the vessels)."""
    bmap = graph.branch_index_map()
    centerline = bmap > 0
    vox = np.nonzero(v)
    near = tuple(_nearest_feature(centerline, np.stack(vox, axis=1), graph.spacing).T)
    nearest = np.full(v.shape, -1, np.int32)
    nearest[vox] = bmap[near] - 1
    comp_v = comps[vox]
    wrong = np.flatnonzero(comps[near] != comp_v)
    if not len(wrong):
        return nearest
    boxes = ndimage.find_objects(comps)
    has_centerline = np.zeros(len(boxes) + 1, bool)
    has_centerline[comps[centerline]] = True
    for c in np.unique(comp_v[wrong]):
        # Another component's centerline is closer: search this component's own centerline only
        # (on the component's bounding box, which holds all of it).
        if not has_centerline[c]:
            continue
        sel = wrong[comp_v[wrong] == c]
        pts = np.stack([x[sel] for x in vox], axis=1)
        own = _nearest_in_boxes(lambda box, c=c: (bmap[box] > 0) & (comps[box] == c), boxes[c - 1], pts,
                                graph.spacing)
        nearest[tuple(pts.T)] = bmap[tuple(own.T)] - 1
    return nearest


def _nearest_feature(feature: np.ndarray, pts: np.ndarray, spacing) -> np.ndarray:
    """(n, 3) the nearest feature voxel of each of the voxels `pts` ((n, 3)), exactly as
    ndimage.distance_transform_edt(~feature, sampling=spacing, return_indices=True) gives it, without
    that whole-volume transform (slow for sparse features such as a centerline).

    Candidates come from a k-d tree; the nearest is the one with the least squared distance in the
    transform's own arithmetic, and among equally near ones the transform returns the one with the
    least last index, then middle, then first (it scans the axes in turn, first to last, and keeps
    the first of equal sites). Voxels where that could be in doubt (a candidate only nearly as near,
    where rounding decides, or as many equally near candidates as were looked at) get the
    transform itself on boxes around them."""
    sp = np.asarray(spacing, float)
    feat = np.argwhere(feature)
    k = min(4, len(feat))
    dist, idx = spatial.cKDTree(feat * sp, balanced_tree=False, compact_nodes=False).query(pts * sp, k=k)
    dist, idx = dist.reshape(len(pts), k), idx.reshape(len(pts), k)
    cand = feat[idx]  # (n, k, 3)
    t = (cand - pts[:, None]).astype(np.float64) * sp
    sq = t[..., 0] * t[..., 0] + t[..., 1] * t[..., 1] + t[..., 2] * t[..., 2]
    least = sq.min(axis=1, keepdims=True)
    tie = sq == least
    unsure = np.any(~tie & (sq <= least * (1 + 1e-9)), axis=1)
    if k < len(feat):
        unsure |= dist[:, -1] <= dist[:, 0] * (1 + 1e-6)
    order = np.ravel_multi_index((cand[..., 2], cand[..., 1], cand[..., 0]), feature.shape[::-1])
    pick = np.where(tie, order, np.iinfo(np.int64).max).argmin(axis=1)
    out = cand[np.arange(len(pts)), pick]
    if unsure.any():
        out[unsure] = _nearest_in_boxes(lambda box: feature[box], bounding_box(feature), pts[unsure], spacing)
    return out


def _nearest_in_boxes(feature_in, outer: tuple[slice, ...], pts: np.ndarray, spacing) -> np.ndarray:
    """(n, 3) the nearest feature voxel of each of the voxels `pts` ((n, 3)) by the feature transform,
    as on the whole volume; feature_in(box) gives the features on a box, `outer` holds them all.

    The voxels needing this are often few, in small groups, while the features may span the whole
    volume: each group is tried on a box around it first, then the rest on `outer`."""
    out = np.full((len(pts), 3), -1, np.int64)
    todo = np.arange(len(pts))
    for reach_mm in (5.0, 20.0):
        cells = np.unique(pts[todo] // 16, axis=0, return_inverse=True)[1].ravel()  # 16-voxel cells
        left = []
        for cell in range(cells.max() + 1):
            sub = todo[cells == cell]
            found, exact = _nearest_in_box(feature_in, outer, pts[sub], spacing, reach_mm)
            out[sub[exact]] = found[exact]
            left.append(sub[~exact])
        todo = np.concatenate(left)
        if not len(todo):
            return out
    out[todo] = _nearest_in_box(feature_in, outer, pts[todo], spacing, None)[0]
    return out


def _nearest_in_box(feature_in, outer: tuple[slice, ...], pts: np.ndarray, spacing, reach_mm: float | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """((n, 3) nearest feature voxel found on the box around `pts` grown by reach_mm (None: `outer`),
    whether it is the whole volume's answer).

    It is where the box holds every feature voxel at the nearest distance (the transform picks
    among equally near voxels by their order only): the nearest one found is nearer than any face
    of the box cut inside `outer`."""
    sp = np.asarray(spacing, float)
    lo_c = np.array([b.start for b in outer])
    hi_c = np.array([b.stop for b in outer])
    if reach_mm is None:
        lo, hi = lo_c, hi_c
    else:
        pad = np.ceil(reach_mm / sp).astype(np.int64) + 1
        lo = np.maximum(pts.min(axis=0) - pad, lo_c)
        hi = np.minimum(pts.max(axis=0) + 1 + pad, hi_c)
    # the box always holds the points themselves, also those outside `outer` (a vessel voxel beyond
    # the last centerline voxel); no feature lies beyond `outer`, so no face is cut there
    lo = np.minimum(lo, pts.min(axis=0))
    hi = np.maximum(hi, pts.max(axis=0) + 1)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    feature = feature_in(box)
    if not feature.any():
        return np.full((len(pts), 3), -1, np.int64), np.zeros(len(pts), bool)
    ind = feature_indices(~feature, spacing)
    local = tuple((pts - lo).T)
    found = np.stack([i[local] for i in ind], axis=1) + lo
    margin = np.full(len(pts), np.inf)  # distance to the nearest cut face
    for ax in range(3):
        if lo[ax] > lo_c[ax]:
            margin = np.minimum(margin, (local[ax] + 1) * sp[ax])
        if hi[ax] < hi_c[ax]:
            margin = np.minimum(margin, (hi[ax] - lo[ax] - local[ax]) * sp[ax])
    return found, distances_at(ind, local, spacing) < margin - 1e-6


def _junction_affinities(graph: VesselGraph, p: SplitParams, intensity: tuple | None = None
                         ) -> tuple[list[tuple[float, int, int, float]], dict]:
    """(affinity, branch_a, branch_b, probability) for branches meeting at junction regions, and
    {(branch_a, branch_b): (unit axis leaving the junction into branch_b, junction position mm)}.

    intensity: (noise_hu, contrast_hu) of the scan, or None to ignore the CT."""
    voxel_mm = float(np.mean(graph.spacing))
    edges = []
    leaving: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for nodes, internal in _junction_regions(graph, p.max_region_ends):
        ends = _region_ends(graph, nodes, internal, p)
        if len(ends) >= 2:
            for a, b, w, q in _region_pair_affinities(ends, p, voxel_mm, intensity):
                edges.append((w, a, b, q))
            at = np.mean([graph.node_position_mm(n) for n in nodes], axis=0)
            for ea, eb in itertools.permutations(ends, 2):
                if ea[0] != eb[0]:
                    leaving.setdefault((ea[0], eb[0]), (eb[1], at))
        # A short piece shared by a crossing goes with the external branch of the most similar radius.
        for s in internal:
            rs = graph.branches[s].mean_radius_mm
            if ends:
                best = min(ends, key=lambda e: abs(np.log(max(rs, 1e-3) / e[2])))
                edges.append((1.0, s, best[0], 1 - 1e-6))
    return edges, leaving


def _tree_roots(graph: VesselGraph, seed_label: np.ndarray) -> dict[int, np.ndarray]:
    """Position (mm) of each tree's root: the centroid of its seed branches' centerlines."""
    sp = np.asarray(graph.spacing)
    roots = {}
    for lab in (PORTAL, HEPATIC):
        ids = np.flatnonzero(seed_label == lab)
        if len(ids):
            roots[lab] = np.vstack([graph.branches[i].voxels for i in ids]).mean(axis=0) * sp
    return roots


def _radial_costs(leaving: dict, roots: dict[int, np.ndarray], p: SplitParams) -> dict[tuple[int, int, int], float]:
    """{(branch_a, branch_b, tree): cost of that tree growing from a into b}. Trees spread out from
    their roots, so leaving a junction back towards the root costs up to radial_weight:
    weight x d / (d + radial_reach_mm) x ((1 - cos) / 2)^2, with d the junction's distance from
    the root and cos between the leaving axis and the direction away from the root."""
    out = {}
    if p.radial_weight <= 0:
        return out
    # one junction position per region and one axis per end, shared by many pairs: norms once
    away_of: dict[tuple[bytes, int], tuple[np.ndarray, float]] = {}
    no_axis: dict[bytes, bool] = {}
    for (a, b), (u, at) in leaving.items():
        key = u.tobytes()
        if key not in no_axis:
            no_axis[key] = bool(np.linalg.norm(u) < 1e-9)
        for lab, root in roots.items():
            where = (at.tobytes(), lab)
            if where not in away_of:
                away_of[where] = (at - root, float(np.linalg.norm(at - root)))
            away, d = away_of[where]
            if d < 1e-6 or no_axis[key]:
                continue
            cos = float(u @ away) / d
            cost = p.radial_weight * d / (d + p.radial_reach_mm) * ((1.0 - cos) / 2.0) ** 2
            if cost > 0:
                out[(a, b, lab)] = cost
    return out


def _region_ends(graph: VesselGraph, nodes, internal, p: SplitParams) -> list[tuple]:
    """The branch ends meeting at one junction region: (branch, axis direction into it, radius mm,
    centerline HU, centerline voxels, a point on the axis in mm, axis length back through the
    junction in mm)."""
    ends = []
    for n in nodes:
        for b in set(graph.nodes[n].branches):
            if b in internal:
                continue
            br = graph.branches[b]
            for e in (0, 1):
                if br.nodes[e] == n:
                    u, r, c, back = graph.end_axis(b, e, p.direction_reach_mm)
                    ends.append((b, u, max(r, 1e-3), br.mean_hu, len(br.voxels), c, back))
    return ends


def _measure_tree_intensity(graph: VesselGraph, ct, v, liver, branch_label, radius, p: SplitParams) -> TreeIntensity:
    """The scan's portal and hepatic lumen HU on the thick branches of a labelling, against the
    parenchyma a few mm away from every vessel (inside the liver when its mask is given)."""
    if ct is None or p.tree_intensity_weight <= 0:
        return TreeIntensity(False, "not used" if ct is not None else "no CT")
    box = bounding_box(v)
    sp = np.asarray(graph.spacing)
    pad = np.ceil(6.0 / sp).astype(int)
    box = tuple(slice(max(b.start - q, 0), min(b.stop + q, n)) for b, q, n in zip(box, pad, v.shape))
    # 2-5 mm from every vessel: exact ball dilations (the same voxels as a distance transform of
    # the box, at a thirtieth of its cost on a full-size working grid)
    parenchyma = np.zeros(v.shape, bool)
    parenchyma[box] = _dilate_ball(v[box], sp, 5.0) & ~_dilate_ball(v[box], sp, 2.0)
    if liver is not None:
        parenchyma &= liver
    return measure_tree_intensity(graph, ct, branch_label, parenchyma, radius)


def _intensity_model(graph: VesselGraph, v, ct) -> tuple[float, float] | None:
    """(noise_hu, contrast_hu): noise from neighbouring centerline voxels (robust std of their
    differences / sqrt 2), contrast = thick-vessel centerline HU - HU two voxels outside the mask."""
    diffs = [np.diff(ct[tuple(b.voxels.T)].astype(float)) for b in graph.branches if len(b.voxels) > 1]
    if not diffs:
        return None
    d = np.concatenate(diffs)
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2)
    voxel_mm = float(np.mean(graph.spacing))
    thick = graph.skeleton & (graph.radius_mm >= 2 * voxel_mm)
    if not thick.any():
        thick = graph.skeleton
    ring = ndimage.binary_dilation(v, iterations=2) & ~ndimage.binary_dilation(v)
    if not ring.any():
        return None
    contrast = float(np.median(ct[thick])) - float(np.median(ct[ring]))
    return max(noise, 1.0), max(contrast, 1.0)


def _junction_regions(graph: VesselGraph, max_ends: int = 8) -> list[tuple[list[int], set[int]]]:
    """Groups of junction nodes whose spheres (node radius) overlap along the branch joining them,
    with the branches inside each group. The closest pairs join first, and a group stops growing at
    max_ends branch ends: in a dense tree, chains of overlapping junctions would otherwise make one
    region of dozens of ends that no explanation can sort out."""
    junctions = [n.index for n in graph.nodes if n.kind == "junction"]
    parent = {n: n for n in junctions}
    ends = {n: len(graph.nodes[n].branches) for n in junctions}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    close = []
    for b in graph.branches:
        a, c = b.nodes
        if a < 0 or c < 0 or a == c or graph.nodes[a].kind != "junction" or graph.nodes[c].kind != "junction":
            continue
        ra, rc = graph.node_radius_mm(a), graph.node_radius_mm(c)
        if b.length_mm <= ra + rc:
            close.append((b.length_mm / (ra + rc), b.index, a, c))
    internal = set()
    for _, bi, a, c in sorted(close):
        fa, fc = find(a), find(c)
        if fa == fc:  # a second link between joined junctions: a loop inside the region
            internal.add(bi)
            ends[fa] -= 2
            continue
        if ends[fa] + ends[fc] - 2 > max_ends:
            continue
        parent[fa] = fc
        ends[fc] += ends[fa] - 2
        internal.add(bi)
    groups: dict[int, list[int]] = {}
    for n in junctions:
        groups.setdefault(find(n), []).append(n)
    inner: dict[int, set[int]] = {}
    for b in sorted(internal):
        inner.setdefault(find(graph.branches[b].nodes[0]), set()).add(b)
    return [(nodes, inner.get(root, set())) for root, nodes in groups.items()]


def _group_cost(group, ends, p: SplitParams, voxel_mm: float, intensity=None, offsets=None,
                pair_terms: _PairTerms | None = None) -> float:
    """Cost of explaining these branch ends as one vessel at a junction (lower: more plausible).
    pair_terms: the region's _PairTerms, shared by the groups of one region (made here if None)."""
    if len(group) == 1:
        return p.end_penalty
    prior = p.trifurcation_penalty if len(group) >= 4 else 0.0
    if intensity is not None and p.intensity_weight > 0:
        prior += p.intensity_weight * _intensity_cost([ends[i] for i in group], voxel_mm, *intensity)
    terms = pair_terms if pair_terms is not None else _PairTerms(ends, p, voxel_mm, offsets)
    best = np.inf
    # The least cost over the parents does not depend on the order they are tried in: the thickest
    # first (usually the parent) lets the others stop early.
    for parent in sorted(group, key=lambda i: -ends[i][2]):
        rp = ends[parent][2]
        cost = prior
        cube = 0.0
        for child in group:
            if child == parent:
                continue
            *pair, child_cube = terms(parent, child)
            for term in pair:  # added one by one, in this order: the same sum to the last bit
                cost += term
            cube += child_cube
            if cost >= best:
                break
        if cost >= best:  # the Murray term (>= 0) cannot make it the least
            continue
        # Murray's law: the parent's radius^3 is the sum of its children's.
        cost += (np.log(cube ** (1 / 3) / rp) / terms.murray_sigma(parent)) ** 2
        best = min(best, cost)
    return float(best)


class _PairTerms:
    """The terms of _group_cost that depend on one (parent, child) pair of ends only, computed once
    per pair of a junction region (a region's groups share most pairs): (angle, [axis offset,]
    child thicker than parent, child radius^3); and per parent, the scale of the Murray term."""

    def __init__(self, ends, p: SplitParams, voxel_mm: float, offsets=None):
        self.ends, self.p, self.voxel_mm, self.offsets = ends, p, voxel_mm, offsets
        self.flow = [-e[1] for e in ends]
        self.no_axis = [bool(np.linalg.norm(e[1]) < 1e-9) for e in ends]
        self.cache: dict[tuple[int, int], tuple] = {}
        self.sigma: dict[int, float] = {}

    def __call__(self, parent: int, child: int) -> tuple:
        key = (parent, child)
        if key not in self.cache:
            self.cache[key] = self._terms(parent, child)
        return self.cache[key]

    def murray_sigma(self, parent: int) -> float:
        if parent not in self.sigma:
            self.sigma[parent] = np.hypot(self.p.radius_log_sigma, 0.5 * self.voxel_mm / self.ends[parent][2])
        return self.sigma[parent]

    def _terms(self, parent: int, child: int) -> tuple:
        p, voxel_mm = self.p, self.voxel_mm
        rp = self.ends[parent][2]
        _, uc, rc = self.ends[child][:3]
        if self.no_axis[child] or self.no_axis[parent]:
            angle = 90.0
        else:
            angle = float(np.degrees(np.arccos(min(max(self.flow[parent] @ uc, -1.0), 1.0))))
        terms = [(angle / p.angle_scale_deg) ** 2]
        if self.offsets is not None:
            # One vessel: the child's axis starts on the parent's. Two touching vessels: their
            # axes stay about r1 + r2 apart.
            scale = np.hypot(0.35 * (rp + rc), 0.5 * voxel_mm)
            terms.append(p.axis_offset_weight * (self.offsets[parent, child] / scale) ** 2)
        # a child is not thicker than its parent (log(rc / rp) <= 0 adds exactly 0)
        if rc > rp:
            sigma = np.hypot(p.radius_log_sigma, 0.5 * voxel_mm / min(rc, rp))
            terms.append((max(0.0, np.log(rc / rp)) / sigma) ** 2)
        else:
            terms.append(0.0)
        return (*terms, rc ** 3)


def _axis_offsets(ends) -> np.ndarray:
    """(k, k) closest approach (mm) between the ends' axis segments, each running from its point
    back through the junction."""
    k = len(ends)
    t = np.linspace(0.0, 1.0, 12)[:, None]
    samples = np.stack([e[5][None] - t * e[6] * e[1][None] for e in ends])
    # every pair at once (the same arithmetic per pair)
    out = np.linalg.norm(samples[:, None, :, None] - samples[None, :, None], axis=4).min(axis=(2, 3))
    out[np.diag_indices(k)] = 0.0
    return out


def _intensity_cost(members, voxel_mm: float, noise_hu: float, contrast_hu: float) -> float:
    """One vessel has one contrast concentration: centerline HU of its pieces differ only by noise
    and by partial volume (a thinner piece looks darker; PSF ~ half a voxel)."""
    psf = 0.5 * voxel_mm
    hu = np.array([m[3] for m in members], float)
    n = np.array([m[4] for m in members], float)
    fill = 1.0 - np.exp(-np.array([m[2] for m in members]) ** 2 / (2 * psf ** 2))
    cost = 0.0
    for i, j in itertools.combinations(range(len(members)), 2):
        var = noise_hu ** 2 * (1 / n[i] + 1 / n[j]) + (contrast_hu * (fill[i] - fill[j])) ** 2
        cost += (hu[i] - hu[j]) ** 2 / var
    return float(cost) / max(len(members) - 1, 1)


def _partitions(items: tuple, max_block: int):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for k in range(min(max_block - 1, len(rest)) + 1):
        for combo in itertools.combinations(rest, k):
            remaining = tuple(x for x in rest if x not in combo)
            for part in _partitions(remaining, max_block):
                yield [(first, *combo)] + part


@functools.lru_cache(maxsize=None)
def _partition_table(k: int, max_block: int) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """The partitions of range(k) into groups of at most max_block, in _partitions' order: the
    distinct groups, (n_partitions, most groups) index of each partition's groups into them (padded
    with len(groups)), and (n_partitions, k, k) bool: i and j in one group."""
    groups: list[tuple] = []
    index: dict[tuple, int] = {}
    members, block = [], []  # per partition: its groups; each item's group within it
    for part in _partitions(tuple(range(k)), max_block):
        row, lab = [], [0] * k
        for col, g in enumerate(part):
            if g not in index:
                index[g] = len(groups)
                groups.append(g)
            row.append(index[g])
            for i in g:
                lab[i] = col
        members.append(row)
        block.append(lab)
    width = max(len(row) for row in members)
    members = np.array([row + [len(groups)] * (width - len(row)) for row in members], np.int64)
    block = np.array(block)
    same = block[:, :, None] == block[:, None, :]
    members.flags.writeable = same.flags.writeable = False
    return groups, members, same


def _region_pair_affinities(ends, p: SplitParams, voxel_mm: float, intensity=None):
    """(branch_a, branch_b, affinity, probability) for every pair of ends at one junction region.

    affinity = exp(-(E_together - E_best)): 1 when the best explanation makes them one vessel,
    falling with the extra cost of making them one (used to grow the trees).
    probability = 1 / (1 + exp(E_together - E_apart)): the two best explanations, with the pair
    together and apart, as the only hypotheses (graded on both sides; used for confidence)."""
    k = len(ends)
    cache: dict[tuple, float] = {}
    offsets = _axis_offsets(ends) if p.axis_offset_weight > 0 else None
    pair_terms = _PairTerms(ends, p, voxel_mm, offsets)

    def cost(group):
        if group not in cache:
            cache[group] = _group_cost(group, ends, p, voxel_mm, intensity, offsets, pair_terms)
        return cache[group]

    together = np.full((k, k), np.inf)
    apart = np.full((k, k), np.inf)
    if k <= p.max_enumerated_ends:
        # Every partition at once: its energy is the sum of its groups' costs, added in the
        # partition's group order (0.0 for padding), as a per-partition sum would.
        groups, members, same = _partition_table(k, 4)
        costs = np.array([cost(g) for g in groups] + [0.0])
        e = np.zeros(len(members))
        for column in members.T:
            e = e + costs[column]
        together = np.where(same, e[:, None, None], np.inf).min(axis=0)
        apart = np.where(same, np.inf, e[:, None, None]).min(axis=0)
    else:
        # Large regions: greedy agglomeration; the other hypothesis of a pair moves one end.
        part = [(i,) for i in range(k)]
        # gain of merging part[ia] and part[ib] (ia < ib; inf: too big), kept across steps: a merge
        # only changes the gains of the merged group, which goes last
        gains = np.full((k, k), np.inf)
        for ia, ib in itertools.combinations(range(k), 2):
            gains[ia, ib] = cost((ia, ib)) - cost((ia,)) - cost((ib,))
        while len(part) > 1:
            n = len(part)
            flat = int(np.argmin(gains[:n, :n]))  # the least gain, then the least ia, then ib
            ia, ib = divmod(flat, n)
            if not np.isfinite(gains[ia, ib]) or gains[ia, ib] >= 0:
                break
            merged = tuple(sorted(part[ia] + part[ib]))
            keep = [i for i in range(n) if i not in (ia, ib)]
            part = [part[i] for i in keep] + [merged]
            gains[:n - 2, :n - 2] = gains[np.ix_(keep, keep)]
            gains[:, n - 2:] = gains[n - 2:, :] = np.inf
            for i, g in enumerate(part[:-1]):
                if len(g) + len(merged) <= 4:
                    gains[i, n - 2] = cost(tuple(sorted(g + merged))) - cost(g) - cost(merged)
        best = sum(cost(g) for g in part)
        where = {i: g for g in part for i in g}
        for i, j in itertools.permutations(range(k), 2):
            gi, gj = where[i], where[j]
            if gi is gj:
                together[i, j] = best
                apart[i, j] = best - cost(gi) + cost(tuple(x for x in gi if x != j)) + cost((j,))
            else:
                apart[i, j] = best
                if len(gi) + len(gj) <= 4:
                    together[i, j] = best - cost(gi) - cost(gj) + cost(tuple(sorted(gi + gj)))
    together, apart = together.tolist(), apart.tolist()  # (Python floats: the same values, faster)
    for i, j in itertools.combinations(range(k), 2):
        a, b = ends[i][0], ends[j][0]
        if a == b:
            continue
        t = min(together[i][j], together[j][i])
        s = min(apart[i][j], apart[j][i])
        if not math.isfinite(t):
            yield a, b, 1e-6, 1e-6
            continue
        w = np.exp(-(t - min(t, s)))
        q = 1.0 / (1.0 + np.exp(min(max(t - s, -50.0), 50.0)))
        yield a, b, float(max(w, 1e-6)), float(min(max(q, 1e-6), 1 - 1e-6))


def _branch_core_radius(graph: VesselGraph) -> np.ndarray:
    """Median radius of each branch away from its junction bulges (mm)."""
    sp = np.asarray(graph.spacing)
    out = np.zeros(len(graph.branches))
    bulge: dict[int, tuple[np.ndarray, float]] = {}  # junction: (centre, radius), computed once
    for b in graph.branches:
        keep = np.ones(len(b.voxels), bool)
        for n in b.nodes:
            if n >= 0 and graph.nodes[n].kind == "junction":
                if n not in bulge:
                    bulge[n] = (graph.nodes[n].centre, graph.node_radius_mm(n))
                d = np.linalg.norm((b.voxels - bulge[n][0]) * sp, axis=1)
                keep &= d > bulge[n][1]
        out[b.index] = float(median(b.radii_mm[keep] if keep.any() else b.radii_mm))
    return out


def _grow_trees(nb, edges, seed_label, graph, p: SplitParams, radial: dict | None = None, *,
                radius: np.ndarray | None = None, log_odds: np.ndarray | None = None,
                soft_roots: dict | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """Both trees grow from their seeds at once, each branch going to the tree that reaches it by the
    most plausible path (least summed -ln(affinity), Dijkstra; one weak link in a tree's own path
    does not hand a whole subtree to the other tree).

    Thick vessels first: the branches are taken in radius bins (radius_bin_factor apart, thickest
    first), each bin racing from everything labelled so far. A vessel's parent is thicker than it
    (Murray), so a lobar or segmental branch is labelled through its own tree's thick vessels
    before any thin vessel touching it can hand it to the other tree. Growing into a vessel thicker
    than the thinnest one on the path from the root costs extra: radii shrink away from the root.
    So does turning back towards the tree's root (`radial`, from _radial_costs), and, where the
    scan shows the trees' HU difference, a branch whose HU speaks for the other tree (-log P(tree |
    HU) from `log_odds`, log P(portal) / P(hepatic)). soft_roots {branch: (label, cost)}: further
    roots a tree takes at that cost unless the other tree reaches them more cheaply.
    Returns the branch labels, the number of links refused between the trees, and the branch each
    branch was reached from (-1: a seed or unreached)."""
    radius = _branch_core_radius(graph) if radius is None else radius
    voxel_mm = float(np.mean(graph.spacing))
    radial = radial or {}
    adj = [[] for _ in range(nb)]
    for w, a, b, _ in edges:
        log_w = np.log(max(w, 1e-12))
        adj[a].append((b, log_w))
        adj[b].append((a, log_w))
    label = seed_label.astype(np.uint8).copy()
    path_r = np.where(seed_label > 0, radius, np.inf)
    parent = np.full(nb, -1, np.int64)
    cost = np.zeros(nb)
    refused = 0
    if nb == 0:
        return label, refused, parent
    if log_odds is not None and p.tree_intensity_weight > 0:
        unary = {PORTAL: p.tree_intensity_weight * np.logaddexp(0.0, -log_odds),
                 HEPATIC: p.tree_intensity_weight * np.logaddexp(0.0, log_odds)}
    else:
        unary = {PORTAL: np.zeros(nb), HEPATIC: np.zeros(nb)}
    thresholds = []
    if p.radius_bin_factor < 1.0:
        t = float(radius.max())
        while t > float(radius.min()):
            t *= p.radius_bin_factor
            thresholds.append(t)
    thresholds.append(-np.inf)
    for threshold in thresholds:
        heap = []

        def push(a):
            la = int(label[a])
            for b, log_w in adj[a]:
                if label[b] == 0 and radius[b] >= threshold:
                    climb = 0.0  # not thicker: max(0, log(ratio <= 1)) is 0
                    if radius[b] > path_r[a]:
                        sigma = np.hypot(p.radius_log_sigma, 0.5 * voxel_mm / path_r[a])
                        climb = max(0.0, np.log(radius[b] / path_r[a])) / sigma
                    cost_b = cost[a] - log_w + p.upstream_weight * climb ** 2 + unary[la][b]
                    cost_b += radial.get((a, b, la), 0.0)
                    heapq.heappush(heap, (cost_b, -radius[b], a, b))

        cost[label > 0] = 0.0  # each bin races from everything labelled so far
        for a in np.flatnonzero(label > 0):
            push(a)
        for b, (lab_b, c) in (soft_roots or {}).items():
            if label[b] == 0 and radius[b] >= threshold:
                heapq.heappush(heap, (c + unary[lab_b][b], -radius[b], -lab_b, b))
        while heap:
            key, _, a, b = heapq.heappop(heap)
            if a < 0:  # a further root, from its tree's support structure
                if label[b] == 0:
                    label[b], cost[b], path_r[b] = -a, key, radius[b]
                    push(b)
                continue
            if label[b]:
                if label[b] != label[a]:
                    refused += 1
                continue
            label[b] = label[a]
            cost[b] = key
            parent[b] = a
            path_r[b] = min(path_r[a], radius[b])
            push(b)
    return label, refused, parent


def _flip_subtrees(label: np.ndarray, parent: np.ndarray, edges, seed_label: np.ndarray, log_odds: np.ndarray,
                   p: SplitParams) -> tuple[np.ndarray, np.ndarray, int]:
    """Hand a grown subtree to the other tree where the scan's intensity evidence over the whole
    subtree outweighs the junction evidence that attached it: a subtree should not sit in the wrong
    tree because one contact looked like a branching, but neither should it switch on weak evidence.

    For each branch b (not a seed) and its growth subtree S: S moves when the summed log-odds for
    the other tree over S exceed [cost of S's best link to the other tree - cost of b's own link]
    + subtree_flip_margin, and their mean reaches subtree_flip_mean. Largest evidence first; a subtree holding a seed or a moved branch stays.
    Returns (labels, parents, number of subtrees moved)."""
    nb = len(label)
    link: dict[tuple[int, int], float] = {}
    for w, a, b, _ in edges:
        if a != b:
            c = -np.log(max(w, 1e-12))
            for key in ((a, b), (b, a)):
                link[key] = min(link.get(key, np.inf), c)
    nbrs: list[list[int]] = [[] for _ in range(nb)]
    for a, b in link:
        nbrs[a].append(b)
    kids: list[list[int]] = [[] for _ in range(nb)]
    for b, a in enumerate(parent):
        if a >= 0:
            kids[a].append(b)
    order = []  # parents before children, from every growth root
    for r in np.flatnonzero(parent < 0):
        stack = [int(r)]
        while stack:
            x = stack.pop()
            order.append(x)
            stack.extend(kids[x])
    toward = np.where(label == PORTAL, -log_odds, log_odds)  # evidence for the other tree
    evidence = toward.astype(float).copy()
    for x in reversed(order):
        if parent[x] >= 0:
            evidence[parent[x]] += evidence[x]
    label = label.copy()
    parent = parent.copy()
    moved = np.zeros(nb, bool)
    n_moved = 0
    for b in np.argsort(-evidence):
        if evidence[b] <= p.subtree_flip_margin:
            break
        if parent[b] < 0 or seed_label[b] or moved[b]:
            continue
        members = [int(b)]
        stack = list(kids[b])
        while stack:
            x = stack.pop()
            members.append(x)
            stack.extend(kids[x])
        if any(seed_label[x] or moved[x] for x in members):
            continue
        inside = set(members)
        other = HEPATIC if label[b] == PORTAL else PORTAL
        best = (np.inf, -1, -1)
        for x in members:
            for y in nbrs[x]:
                if y not in inside and label[y] == other and link[(y, x)] < best[0]:
                    best = (link[(y, x)], y, x)
        if best[1] < 0:
            continue
        own = link.get((int(parent[b]), int(b)), np.inf)
        # the branches themselves lean to the other tree, not only their sum (small biases of the
        # partial-volume model add up over a large subtree)
        if (evidence[b] > best[0] - own + p.subtree_flip_margin
                and evidence[b] / len(members) >= p.subtree_flip_mean):
            label[members] = other
            moved[members] = True
            parent[b] = -1  # the subtree now hangs from its new link
            parent[best[2]] = best[1]
            n_moved += 1
    return label, parent, n_moved


def _path_costs(nb, steps: tuple[np.ndarray, np.ndarray, np.ndarray], sources) -> np.ndarray:
    """Least summed cost over directed paths from `sources` (inf: unreachable); steps: (from, to,
    cost of that step) arrays, one entry per directed step."""
    cost = np.full(nb, np.inf)
    if len(sources) == 0:
        return cost
    rows, cols, w = steps
    g = sparse.csr_matrix((w + 1e-9, (rows, cols)), shape=(nb, nb))  # csgraph drops explicit zeros
    return csgraph.dijkstra(g, directed=True, indices=sources, min_only=True)


def _orphan_roots(graph: VesselGraph, label: np.ndarray, parent: np.ndarray, seed_label: np.ndarray,
                  radius: np.ndarray, p: SplitParams) -> dict[int, tuple[int, float]]:
    """{branch: (label, cost)} for thick branches the growth reached only by climbing from vessels
    orphan_climb_ratio times thinner (radii shrink away from a tree's root, so such a vessel lost
    its own connection), labelled by the nearer root (a clear call only) at the usual root cost."""
    nb = len(label)
    path_min = np.full(nb, np.inf)
    order = np.argsort(_growth_depth(parent), kind="stable")
    for b in order:  # parents before children
        a = parent[b]
        path_min[b] = radius[b] if a < 0 else min(path_min[a], radius[b])
    climbed = [int(b) for b in np.flatnonzero((parent >= 0) & (label > 0) & (seed_label == 0))
               if radius[b] >= p.orphan_min_radius_mm and radius[b] >= p.orphan_climb_ratio * path_min[parent[b]]]
    if not climbed:
        return {}
    sp = np.asarray(graph.spacing)
    trees = {}
    for lab in (PORTAL, HEPATIC):
        pts = [graph.branches[b].voxels for b in np.flatnonzero(seed_label == lab)]
        if not pts:
            return {}
        trees[lab] = spatial.cKDTree(np.vstack(pts) * sp)
    out = {}
    for b in climbed:
        pts = graph.branches[b].voxels * sp
        d = {lab: float(t.query(pts)[0].min()) for lab, t in trees.items()}
        near, far = (PORTAL, HEPATIC) if d[PORTAL] < d[HEPATIC] else (HEPATIC, PORTAL)
        if d[near] < p.orphan_distance_ratio * d[far]:
            out[b] = (near, p.root_cost_weight)
    return out


def _intensity_roots(graph: VesselGraph, label: np.ndarray, log_odds: np.ndarray, radius: np.ndarray,
                     seed_label: np.ndarray, p: SplitParams) -> dict[int, tuple[int, float]]:
    """{branch: (label, cost)} for thick branches whose own HU clearly belongs to the other tree.

    A lobar or segmental vessel is as thick as the vessels the trees' HU difference was measured
    on, so its HU needs no partial-volume model: where it speaks clearly for the other tree
    (log-odds beyond intensity_root_log_odds), the growth reached it through a contact, not
    through its own tree - the failure seen on real livers, where the hepatic veins took most of
    a left lobe's portal tree at a touching point. It roots itself in the tree its HU names."""
    if p.intensity_root_log_odds <= 0:
        return {}
    toward_other = np.where(label == PORTAL, -log_odds, log_odds)
    length = np.array([b.length_mm for b in graph.branches])
    pick = ((label > 0) & (seed_label == 0) & (radius >= p.intensity_root_min_radius_mm)
            & (length >= p.intensity_root_min_length_mm) & (toward_other >= p.intensity_root_log_odds))
    return {int(b): (HEPATIC if label[b] == PORTAL else PORTAL, p.intensity_root_cost) for b in np.flatnonzero(pick)}


def _path_risks(edges, parent: np.ndarray, radius: np.ndarray) -> dict[str, np.ndarray]:
    """Per branch, along its growth path from the root: the weakest link (largest -ln probability)
    and the largest climb, ln(radius / thinnest radius before it)."""
    nb = len(parent)
    link: dict[tuple[int, int], float] = {}
    for w, a, b, _ in edges:
        if a != b:
            key = (min(a, b), max(a, b))
            link[key] = min(link.get(key, np.inf), -np.log(max(w, 1e-12)))
    weakest, climb, thinnest = np.zeros(nb), np.zeros(nb), radius.astype(float).copy()
    for b in np.argsort(_growth_depth(parent), kind="stable"):  # parents before children
        a = parent[b]
        if a < 0:
            continue
        step = link.get((min(a, b), max(a, b)), 0.0)
        weakest[b] = max(weakest[a], step)
        climb[b] = max(climb[a], float(np.log(max(radius[b], 1e-3) / max(thinnest[a], 1e-3))))
        thinnest[b] = min(thinnest[a], radius[b])
    return {"weakest_link": weakest, "climb": climb}


def _other_tree_neighbours(edges, branch_label: np.ndarray) -> np.ndarray:
    """Per branch: the share of the branches linked to it at junctions that carry the other label."""
    nb = len(branch_label)
    pairs = np.array(sorted({(min(a, b), max(a, b)) for _, a, b, _ in edges if a != b}), np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(nb)
    a, b = np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]
    other = (branch_label[a] > 0) & (branch_label[b] > 0) & (branch_label[a] != branch_label[b])
    total = np.bincount(a, minlength=nb)
    return np.bincount(a, weights=other.astype(float), minlength=nb) / np.maximum(total, 1)


def _growth_depth(parent: np.ndarray) -> np.ndarray:
    """Per branch: links crossed from its growth root (0 for roots and unreached branches)."""
    depth = np.full(len(parent), -1, np.int64)
    for b in range(len(parent)):
        path = []
        x = b
        while x >= 0 and depth[x] < 0 and len(path) <= len(parent):
            path.append(x)
            x = int(parent[x])
        d = depth[x] if x >= 0 and depth[x] >= 0 else -1
        for y in reversed(path):
            d += 1
            depth[y] = d
    return depth


def _branch_margin(nb, edges, seed_label, branch_label, radial: dict | None = None) -> np.ndarray:
    """Evidence for each branch's label: cost_other - cost_own, where a path's cost is -ln of the
    product of its links' probabilities (and each step's cost of turning back towards that tree's
    root, `radial`), cost_own that of the best path from the branch's own seeds within its label and
    cost_other that of the best path from the other label's seeds (inf: none; -inf: unreached)."""
    radial = radial or {}
    links: dict[tuple[int, int], float] = {}
    for _, a, b, q in edges:  # a pair met at two junctions (a loop): its more probable link
        if a != b:
            key = (min(a, b), max(a, b))
            links[key] = min(links.get(key, np.inf), -np.log(q))

    ends = np.array(list(links), np.int64).reshape(-1, 2)
    link_cost = np.array(list(links.values()), float)

    def adjacency(tree: int, own_only: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(from, to, cost) of every step, both ways along each link (as arrays)."""
        sel = np.ones(len(ends), bool)
        if own_only:
            sel = (branch_label[ends[:, 0]] == tree) & (branch_label[ends[:, 1]] == tree)
        a, b = ends[sel, 0], ends[sel, 1]
        forth = [radial.get((i, j, tree), 0.0) for i, j in zip(a.tolist(), b.tolist())]
        back = [radial.get((j, i, tree), 0.0) for i, j in zip(a.tolist(), b.tolist())]
        c = link_cost[sel]
        return np.r_[a, b], np.r_[b, a], np.r_[c + np.array(forth, float), c + np.array(back, float)]

    margin = np.full(nb, -np.inf)
    for lab, other in ((PORTAL, HEPATIC), (HEPATIC, PORTAL)):
        mine = np.flatnonzero(branch_label == lab)
        if not len(mine):
            continue
        own = _path_costs(nb, adjacency(lab, True), np.flatnonzero((seed_label == lab) & (branch_label == lab)))
        alt = _path_costs(nb, adjacency(other, False), np.flatnonzero(seed_label == other))
        with np.errstate(invalid="ignore"):
            m = alt[mine] - own[mine]
        m[np.isinf(alt[mine]) & np.isfinite(own[mine])] = np.inf
        m[np.isinf(own[mine]) & np.isfinite(alt[mine])] = -np.inf
        m[np.isinf(own[mine]) & np.isinf(alt[mine])] = 0.0  # reached only through soft roots: no evidence either way
        margin[mine] = m
    return margin


def _confidence_summary(graph, branch_label, conf, p: SplitParams) -> dict:
    ids = np.flatnonzero(branch_label > 0)
    if not len(ids):
        return {"confidence": 0.0, "low_confidence_branches": 0, "least_confident_branches": []}
    # The expected share of branches labelled right: a prediction of the branch accuracy. (Also
    # weighted by branch volume, length x radius^2, where a wrong main branch matters most.)
    w = np.array([graph.branches[i].length_mm * graph.branches[i].mean_radius_mm ** 2 for i in ids])
    overall = float(conf[ids].mean())
    worst = ids[np.argsort(conf[ids], kind="stable")][: p.least_confident_listed]
    return {
        "confidence": round(overall, 3),
        "confidence_volume_weighted": round(float((w * conf[ids]).sum() / max(w.sum(), 1e-9)), 3),
        "low_confidence_branches": int((conf[ids] < p.low_confidence).sum()),
        "least_confident_branches": [
            {"branch": int(i), "label": _NAME[int(branch_label[i])], "confidence": round(float(conf[i]), 3),
             "length_mm": round(graph.branches[i].length_mm, 1),
             "mean_radius_mm": round(graph.branches[i].mean_radius_mm, 2)} for i in worst],
    }


# --------------------------------------------------------------------------------------------------
# Voxel geodesic fallback


def _split_geodesic(v, spacing, seeds, p: SplitParams, timings) -> tuple[np.ndarray, dict]:
    """Nearest seed along geodesics inside the mask; a step costs its length / local radius, so
    paths run along vessel cores and avoid the thin waists where two vessels touch."""
    t = time.perf_counter()
    lab = np.zeros(v.shape, np.uint8)
    radius_map = ndimage.distance_transform_edt(v, sampling=spacing)
    coords = np.argwhere(v)
    n = len(coords)
    index = np.full(v.shape, -1, np.int64)
    index[tuple(coords.T)] = np.arange(n)
    radius = radius_map[tuple(coords.T)]
    rows, cols, w = [], [], []
    sp = np.asarray(spacing)
    for off in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1),
                (0, 1, -1), (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1)]:  # half of the 26 neighbours
        nbc = coords + off
        ok = np.all((nbc >= 0) & (nbc < v.shape), axis=1)
        j = np.full(n, -1)
        j[ok] = index[tuple(nbc[ok].T)]
        i = np.flatnonzero(j >= 0)
        rows.append(i)
        cols.append(j[i])
        w.append(float(np.linalg.norm(np.asarray(off) * sp)) * 2.0 / (radius[i] + radius[j[i]]))
    graph = sparse.csr_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    dist = {}
    for l in (PORTAL, HEPATIC):
        src = index[seeds[l]]
        dist[l] = (csgraph.dijkstra(graph, directed=False, indices=src, min_only=True) if len(src)
                   else np.full(n, np.inf))
    dp, dh = dist[PORTAL], dist[HEPATIC]
    reached = np.isfinite(dp) | np.isfinite(dh)
    vox_label = np.where(dp <= dh, PORTAL, HEPATIC).astype(np.uint8)
    lab[tuple(coords[reached].T)] = vox_label[reached]
    # Confidence of a voxel: 0.5 + half the relative margin between its two geodesic distances.
    own, other = np.minimum(dp, dh)[reached], np.maximum(dp, dh)[reached]
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(np.isfinite(other), 0.5 + 0.5 * (other - own) / (other + own + 1e-9), 1.0)
    timings["geodesic"] = time.perf_counter() - t
    info = {"confidence": round(float(conf.mean()), 3) if len(conf) else 0.0,
            "low_confidence_voxels": int((conf < p.low_confidence).sum()),
            "low_confidence_branches": None, "least_confident_branches": [],
            "unreached_mask": v & (lab == 0)}
    return lab, info


# --------------------------------------------------------------------------------------------------
# Unreached components and QC


def _label_unreached(lab, v, comps, unreached, pv, ivc, spacing) -> dict:
    """Give components without a seed the label of the nearest labelled vessel (else the nearer
    support structure). Edits lab in place.

    The label whose distance transform has the smaller minimum over the component's unreached
    voxels wins (portal on a tie). Nearest distances come from k-d trees of each label's voxels
    (no full-volume transforms); where the two minima come within 1e-6 of each other, both are
    recomputed with the transforms on a box around the component that holds every voxel that
    near, giving the whole volume's values and so its tie-break."""
    ids = np.unique(comps[unreached])
    ids = ids[ids > 0]
    if not len(ids):
        return {"components": 0, "voxels": 0}
    where = np.nonzero(unreached & (comps > 0))
    comp_of = comps[where]
    targets = {l: lab == l for l in (PORTAL, HEPATIC) if (lab == l).any()}
    if not targets:  # nothing labelled anywhere: the nearer of the portal vein and the IVC
        targets = {l: m for l, m in ((PORTAL, pv), (HEPATIC, ivc)) if m is not None and m.any()}
    if targets:
        sp = np.asarray(spacing, float)
        points = np.stack(where, axis=1) * sp
        lowest = {}
        for l, m in targets.items():
            tree = spatial.cKDTree(np.argwhere(m) * sp, balanced_tree=False, compact_nodes=False)
            lowest[l] = np.asarray(ndimage.minimum(tree.query(points)[0], comp_of, ids))
        best = np.zeros(int(ids.max()) + 1, np.uint8)
        for i, c in enumerate(ids):
            d = {l: float(lowest[l][i]) for l in targets}
            if len(d) == 2 and abs(d[PORTAL] - d[HEPATIC]) <= 1e-6 * max(d.values()):
                d = _unreached_minima(targets, where, comp_of == c, max(d.values()), spacing)
            best[c] = min(d, key=lambda l: d[l])
        lab[where] = best[comp_of]
    return {"components": int(len(ids)), "voxels": int(len(comp_of))}


def _unreached_minima(targets: dict, where, sel, reach_mm: float, spacing) -> dict[int, float]:
    """{label: minimum over the voxels where[sel] (one component's) of the distance transform to that
    label's voxels (targets[label])}, for minima up to reach_mm: computed on those voxels' box grown
    past reach_mm, which holds every label voxel that near (the values there are the whole volume's)."""
    pts = np.stack([x[sel] for x in where], axis=1)
    pad = [int(np.ceil(reach_mm * (1 + 1e-6) / s)) + 2 for s in spacing]
    lo = np.maximum(pts.min(axis=0) - pad, 0)
    hi = np.minimum(pts.max(axis=0) + 1 + np.asarray(pad), next(iter(targets.values())).shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    local = tuple((pts - lo).T)
    out = {}
    for l, m in targets.items():
        if m[box].any():
            out[l] = float(distances_at(feature_indices(~m[box], spacing), local, spacing).min())
        else:
            out[l] = np.inf
    return out


def _counts(labels, vessels, portal_seeds, hepatic_seeds) -> dict:
    total = int(np.count_nonzero(vessels))
    portal = int(np.count_nonzero(labels == PORTAL))
    hepatic = int(np.count_nonzero(labels == HEPATIC))
    return {
        "portal_voxels": portal,
        "hepatic_voxels": hepatic,
        "unlabelled_voxels": total - portal - hepatic,
        "total_vessel_voxels": total,
        "portal_fraction": round(portal / total, 4) if total else 0.0,
        "hepatic_fraction": round(hepatic / total, 4) if total else 0.0,
        "portal_seed_voxels": int(portal_seeds),
        "hepatic_seed_voxels": int(hepatic_seeds),
    }
