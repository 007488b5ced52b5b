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
   Both trees supply or drain the whole liver, so they interleave everywhere: a liver region far
   from every branch of one tree but close to the other's means a branch of the first was taken
   whole through a contact (the one-sided failure seen on real livers). Such a region is flagged
   and its branches' confidence capped. Where the scan shows the trees' HU difference, the vessel
   where the growth came into the region roots itself in the missing tree when that gives both
   trees back everywhere and the moved branches' HU speaks for it (split_territory).
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

The parts live in their own modules: split_types (parameters and results), split_seeds (step 1),
split_junctions (step 2), split_growth (step 3 and the evidence for the confidence), split_territory
(regions left to one tree), split_fine_grid
(the working grid), split_geodesic (the voxel fallback); this module runs them in order and
labels the voxels, unreached components and QC. find_seeds is re-exported here.

Research use only; not a medical device.
"""
from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass, replace

import cc3d
import numpy as np
from scipy import ndimage, spatial

from livervessels.enhancement import _dilate_ball  # exact, fast ball dilation (shared with the repair)
from livervessels.errors import InputError
from livervessels.geometry import CanonicalFrame
from livervessels.masks import bounding_box, fill_holes, padded_box, reach_voxels
from livervessels.split_fine_grid import block_majority, downsample_labels, repeat_voxels, upsample_ct, upsample_mask
from livervessels.split_geodesic import split_geodesic
from livervessels.split_growth import (
    branch_core_radius,
    branch_margin,
    confidence_summary,
    flip_subtrees,
    grow_trees,
    growth_depth,
    intensity_roots,
    orphan_roots,
    other_tree_neighbours,
    parent_link_cost,
    path_risks,
    radial_costs,
    tree_roots,
)
from livervessels.split_intensity import TreeIntensity, branch_log_odds, measure_tree_intensity
from livervessels.split_junctions import junction_affinities
from livervessels.split_seeds import crop_to_box, find_seeds, seed_contacts, superior_height
from livervessels.split_territory import missing_tree_regions, territory_roots
from livervessels.split_types import (
    HEPATIC,
    PORTAL,
    TREE_NAMES,
    UNREACHED_CONFIDENCE,
    Labelling,
    PortalHepaticSplit,
    SplitBranches,
    SplitParams,
)
from livervessels.timing import timed
from livervessels.vessel_graph import (
    VesselGraph,
    attach_image_axes,
    build_vessel_graph,
    distances_at,
    feature_indices,
    summarize_tree,
    values_in_box_at,
)

__all__ = ["HEPATIC", "PORTAL", "PortalHepaticSplit", "SplitBranches", "SplitParams", "find_seeds",
           "split_portal_hepatic"]


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
    contrast_phase: str | None = None,
) -> PortalHepaticSplit:
    """Label every vessel voxel portal (1) or hepatic (2).

    vessels, ct and the support masks share one grid with voxel size `spacing` (mm). `affine`
    (voxel -> RAS mm), when given, tells which way is superior for the hepatic seeds, and the split
    then runs in the closest RAS orientation, so its answer does not depend on how the slices were
    stored; without it the IVC contacts farthest from the portal vein stand for the dome. Vessel
    components smaller than `min_component_size` voxels are left 0. `contrast_phase`
    (livervessels.contrast_phase.PHASES), when known, goes to the intensity cue (none in the native
    phase) and into the QC.

    Raises:
        InputError: vessels is not 3-D, ct or a support mask is not on its grid, or the spacing is
            not three positive millimetre values.
    """
    _check_grid(vessels, spacing, ct=ct, liver=liver, portal_vein=portal_vein, ivc=ivc)
    p = params or SplitParams()
    if contrast_phase is not None:
        p = replace(p, contrast_phase=contrast_phase)
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
    flags = _support_flags(liver=liver, portal_vein=portal_vein, ivc=ivc)
    labels = np.zeros(vessels.shape, np.uint8)
    skeleton_labels = np.zeros(vessels.shape, np.uint8) if use_skeleton else None
    qc: dict = {"method": ("centerline graph: junction explanation + trees grown from the seeds"
                           if use_skeleton else "voxel geodesic (1/radius) from the nearest seed"),
                "use_skeleton": bool(use_skeleton), "min_component_size": int(min_component_size)}
    if not vessels.any():
        flags.append("empty_vessels")
        qc.update(_counts(labels, vessels, 0, 0), confidence=0.0, low_confidence_branches=0,
                  least_confident_branches=[], flags=flags, parameters=asdict(p))
        return PortalHepaticSplit(labels, skeleton_labels, qc)

    # Everything below runs on the vessels' bounding box, padded so seeds near it are inside.
    box = padded_box(vessels, reach_voxels(spacing, p.seed_distance_mm))
    vessel_mask, comps = _drop_small_components(vessels[box], min_component_size, qc)
    scale = np.array([int(np.ceil(s / p.max_working_spacing_mm - 1e-6)) for s in spacing])
    if use_skeleton and (scale > 1).any() and vessel_mask.any():
        return _split_on_finer_grid(vessels, vessel_mask, box, scale, ct, spacing, liver, portal_vein, ivc, affine, p,
                                    qc, flags, t0)

    pv_c, ivc_c = crop_to_box(portal_vein, box), crop_to_box(ivc, box)
    with timed(timings, "seeds"):
        seeds = _seeds(vessel_mask, box, portal_vein, pv_c, ivc_c, spacing, p, affine)
    ct_c = np.asarray(ct)[box] if ct is not None else None
    branches = None
    if use_skeleton:
        labelling = _split_on_graph(vessel_mask, comps, ct_c, spacing, seeds, p, timings,
                                    support={"portal_vein": pv_c, "ivc": ivc_c, "liver": crop_to_box(liver, box)})
        branches = labelling.branches
        branches.offset = np.array([b.start for b in box])
    else:
        labelling = split_geodesic(vessel_mask, spacing, seeds, p, timings)
    flags += [f"no_{TREE_NAMES[lab]}_seeds" for lab in (PORTAL, HEPATIC) if not seeds[lab].any()]
    # Components no seed reaches: label them by the best evidence left, with low confidence.
    with timed(timings, "unreached"):
        unreached = _label_unreached(labelling.labels, vessel_mask, comps, labelling.unreached, pv_c, ivc_c, spacing)
    _follow_fallback_labels(labelling, branches, unreached)
    labels[box] = labelling.labels
    if labelling.skeleton_labels is not None:
        skeleton_labels[box] = labelling.skeleton_labels

    qc.update(_counts(labels[box], vessels[box], int(seeds[PORTAL].sum()), int(seeds[HEPATIC].sum())))  # all in the box
    _add_labelling_qc(qc, flags, labelling.qc, unreached, p)
    timings["total"] = time.perf_counter() - t0
    qc["timings_s"] = {k: round(val, 3) for k, val in timings.items()}
    seed_map = np.zeros(vessels.shape, np.uint8)
    seed_map[box] = np.where(seeds[PORTAL], PORTAL, np.where(seeds[HEPATIC], HEPATIC, 0))
    return PortalHepaticSplit(labels, skeleton_labels, qc, branches, seed_map)


def _support_flags(**support: np.ndarray | None) -> list[str]:
    """missing_support_<name> / empty_support_<name> for each support mask not given or empty."""
    flags = []
    for name, m in support.items():
        if m is None:
            flags.append(f"missing_support_{name}")
        elif not np.any(m):
            flags.append(f"empty_support_{name}")
    return flags


def _drop_small_components(vessel_mask: np.ndarray, min_component_size: int, qc: dict
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(vessel_mask without components under min_component_size voxels, its 26-connected component
    labels); how many were left out goes into qc."""
    comps, n_comp = cc3d.connected_components(vessel_mask, connectivity=26, return_N=True)
    sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
    small = (sizes < min_component_size) & (np.arange(n_comp + 1) > 0)
    if small.any():
        vessel_mask = vessel_mask & ~small[comps]
        comps = np.where(vessel_mask, comps, 0)
    qc["small_components_unlabelled"] = int(small.sum())
    qc["small_component_voxels"] = int(sizes[small].sum())
    return vessel_mask, comps


def _seeds(vessel_mask, box, portal_vein, pv_c, ivc_c, spacing, p: SplitParams, affine) -> dict:
    """Portal and hepatic seed voxels on the box. With an affine the dome is told by height; without
    one, by distance from the portal vein's centroid (in box voxels)."""
    superior = superior_height(affine) if affine is not None else None
    pv_centroid = (np.argwhere(portal_vein).mean(axis=0) - [b.start for b in box]
                   if superior is None and portal_vein is not None and np.any(portal_vein) else None)
    return seed_contacts(vessel_mask, pv_c, ivc_c, spacing, p, superior, pv_centroid)


def _follow_fallback_labels(labelling: Labelling, branches: SplitBranches | None, unreached: dict) -> None:
    """After the unreached components took their fallback label: their branches take it too, and the
    centerline shows the final voxel labels."""
    if branches is not None and unreached["components"]:
        for b in branches.graph.branches:
            if branches.labels[b.index] == 0:
                branches.labels[b.index] = labelling.labels[tuple(b.voxels[0])]
    skel = labelling.skeleton_labels
    if skel is not None:
        skel[skel > 0] = labelling.labels[skel > 0]


def _add_labelling_qc(qc: dict, flags: list[str], info: dict, unreached: dict, p: SplitParams) -> None:
    """The labelling's QC, the unreached components (counted at UNREACHED_CONFIDENCE in the overall
    confidence), the case flags and the parameters, into qc."""
    qc["unreached_components"] = unreached["components"]
    qc["unreached_voxels"] = unreached["voxels"]
    if unreached["components"]:
        flags.append("unreached_components")
    qc.update(info)
    flags += [f"{name}_missing_in_liver_region" for name in info.get("missing_tree_regions", {}).get("flagged", [])]
    if unreached["voxels"] and "confidence" in qc:
        n_lab = qc["portal_voxels"] + qc["hepatic_voxels"]
        w = min(unreached["voxels"] / max(n_lab, 1), 1.0)  # a share: never more than all labelled voxels
        qc["confidence"] = round((1 - w) * qc["confidence"] + w * UNREACHED_CONFIDENCE, 3)
    qc["flags"] = _case_flags(qc, flags, p)
    qc["parameters"] = asdict(p)


def _case_flags(qc: dict, flags: list[str], p: SplitParams) -> list[str]:
    """flags plus those that follow from the labelled voxels in qc: <tree>_seed_failure for a tree
    under seed_failure_fraction of the vessel voxels (its confidence then capped at
    seed_failure_confidence, in qc), then low_confidence."""
    flags = list(flags)
    for lab in (PORTAL, HEPATIC):
        if qc[f"{TREE_NAMES[lab]}_fraction"] < p.seed_failure_fraction:
            flags.append(f"{TREE_NAMES[lab]}_seed_failure")
    if any(f.endswith("seed_failure") for f in flags):
        qc["confidence"] = round(min(qc.get("confidence", 0.0), p.seed_failure_confidence), 3)
    if qc.get("confidence", 0.0) < p.low_confidence:
        flags.append("low_confidence")
    return flags


def _split_on_finer_grid(vessels, vessel_mask, box, scale, ct, spacing, liver, portal_vein, ivc, affine, p: SplitParams,
                         qc: dict, flags: list, t0: float) -> PortalHepaticSplit:
    """Run the split on the cropped input subdivided `scale` times per axis and bring the labels
    back: on coarse voxels (thick slices) a thin vessel is one voxel wide, its skeleton follows the
    voxel staircase and touching vessels merge into junction blobs."""
    own: dict[str, float] = {}  # resampling both ways, on top of the inner split's own timings
    fine_spacing = tuple(s / k for s, k in zip(spacing, scale))

    def crop(m):
        return None if m is None else repeat_voxels(np.asarray(m, bool)[box], scale)

    with timed(own, "resample", add=True):
        vessel_mask_fine = upsample_mask(vessel_mask, scale)
        ct_w = None if ct is None else upsample_ct(np.asarray(ct)[box], scale)
        aff_w = None
        if affine is not None:
            aff_w = np.asarray(affine, float).copy()
            aff_w[:3, :3] = aff_w[:3, :3] / scale[None, :]
    inner = split_portal_hepatic(vessel_mask_fine, ct_w, fine_spacing, liver=crop(liver), portal_vein=crop(portal_vein),
                                 ivc=crop(ivc), use_skeleton=True, affine=aff_w, params=p)
    with timed(own, "resample", add=True):
        labels = np.zeros(vessels.shape, np.uint8)
        labels[box] = downsample_labels(inner.labels, scale, vessel_mask, spacing)
        skeleton_labels = np.zeros(vessels.shape, np.uint8)
        # a centerline voxel of the input grid: one whose block holds the fine centerline; it shows
        # the voxel's label
        skeleton_labels[box] = np.where(block_majority(inner.skeleton_labels, scale) > 0, labels[box], 0)
        seed_map = np.zeros(vessels.shape, np.uint8)
        seed_map[box] = block_majority(inner.seeds, scale) * vessel_mask

    out = dict(inner.qc)
    out.update(qc)  # method, use_skeleton, min_component_size, small components: from the input grid
    # every vessel, label and seed voxel lies in the box
    out.update(_counts(labels[box], vessels[box], int((seed_map[box] == PORTAL).sum()),
                       int((seed_map[box] == HEPATIC).sum())))
    # the inner split counted unreached voxels on the fine grid (scale.prod() times as many): its
    # share of the labelled voxels, applied to the input grid's count, so that qc's voxel counts
    # share one grid
    inner_labelled = inner.qc["portal_voxels"] + inner.qc["hepatic_voxels"]
    share = inner.qc.get("unreached_voxels", 0) / max(inner_labelled, 1)
    out["unreached_voxels"] = int(round(min(share, 1.0) * (out["portal_voxels"] + out["hepatic_voxels"])))
    # the case-level flags follow from the labels on the input grid, not the fine grid's
    inner_flags = [f for f in inner.qc["flags"] if not f.endswith("seed_failure") and f != "low_confidence"]
    out["flags"] = _case_flags(out, list(dict.fromkeys(flags + inner_flags)), p)
    out["working_spacing_mm"] = [round(s, 4) for s in fine_spacing]
    timings = dict(inner.qc.get("timings_s", {}))
    timings["resample"] = round(own["resample"], 3)
    timings["total"] = round(time.perf_counter() - t0, 3)
    out["timings_s"] = timings
    branches = inner.branches
    if branches is not None:
        branches = replace(branches, scale=np.asarray(scale, np.int64),
                           origin=np.array([b.start for b in box], np.int64))
    return PortalHepaticSplit(labels, skeleton_labels, out, branches, seed_map)


def _check_grid(vessels, spacing, **arrays) -> None:
    """Reject arrays off the vessels' grid here, with their names, rather than as an index error deep
    in the graph."""
    shape = np.shape(vessels)
    if len(shape) != 3:
        raise InputError(f"the vessel mask must be a 3-D array, got shape {shape}")
    for name, array in arrays.items():
        if array is not None and np.shape(array) != shape:
            raise InputError(f"{name} {np.shape(array)} is not on the vessel mask's grid {shape}")
    if len(spacing) != 3 or not all(np.isfinite(float(s)) and float(s) > 0 for s in spacing):
        raise InputError(f"voxel spacing must be three positive numbers in mm, got {tuple(spacing)}")


def _split_on_graph(vessel_mask_in, comps_in, ct, spacing, seeds, p: SplitParams, timings, support: dict | None = None
                    ) -> Labelling:
    """The centerline-graph split of the box: branches, seed branches, junction affinities, both trees
    grown, each branch's confidence, and the labels carried back to the input's vessel voxels."""
    with timed(timings, "fill_cavities"):
        # Enclosed cavities are lumen the mask missed: thinning a hollow tube gives a surface, i.e. huge
        # junction clusters joining unrelated vessels. (Only which voxels share a component matters.)
        vessel_mask = fill_holes(vessel_mask_in)
        comps = comps_in
        if np.count_nonzero(vessel_mask) != np.count_nonzero(vessel_mask_in):  # the enclosing component takes them
            comps = cc3d.connected_components(vessel_mask, connectivity=26)
    with timed(timings, "skeleton_graph"):
        graph = build_vessel_graph(vessel_mask, spacing, ct, spur_ratio=p.spur_ratio)
        if ct is not None and p.axis_sigma_mm > 0:
            attach_image_axes(graph, ct, p.axis_sigma_mm)
    nb = len(graph.branches)
    lab = np.zeros(vessel_mask.shape, np.uint8)
    skel_lab = np.zeros(vessel_mask.shape, np.uint8)
    if nb == 0:
        return Labelling(lab, vessel_mask_in.copy(), {"branches": 0, "confidence": 0.0, "low_confidence_branches": 0,
                                            "least_confident_branches": []}, skel_lab,
                         SplitBranches(graph, np.zeros(3, np.int64), np.zeros(0, np.uint8), np.zeros(0),
                                       np.zeros(0, np.int64), evidence={}))
    with timed(timings, "junctions"):
        nearest = _nearest_branch(graph, vessel_mask, comps)
        # Roots are chosen per contact patch among the branches near it (not by each contact voxel's
        # nearest centerline: the root is often a short, fat piece or a junction blob, and its contact
        # voxels may lie nearer to the centerline of a thin vessel touching it).
        support = support or {}
        radius = branch_core_radius(graph)
        seed_label, seed_conflicts, candidates = _seed_branches(graph, seeds, comps, p)
        seed_label, soft_roots = _refine_roots(graph, seed_label, candidates, support, vessel_mask, radius, p)
        edges, leaving = junction_affinities(graph, p)
        radial = radial_costs(leaving, tree_roots(graph, seed_label), p)
    with timed(timings, "labelling"):
        grown = _grow_labels(graph, edges, seed_label, soft_roots, radial, radius, ct, vessel_mask, support, p)
        branch_label, parent, log_odds = grown.branch_label, grown.parent, grown.log_odds
        margin = branch_margin(nb, edges, seed_label, branch_label, radial)
        evidence = {"margin": margin, "log_odds_own": np.where(branch_label == HEPATIC, -log_odds, log_odds),
                    "radius_mm": radius, "other_tree_neighbours": other_tree_neighbours(edges, branch_label),
                    "growth_depth": growth_depth(parent), **path_risks(edges, parent, radius)}
        conf = np.where(branch_label > 0, p.confidence_model(evidence), UNREACHED_CONFIDENCE)
        # A region of the liver with one tree only: a branch of the other tree was taken whole there,
        # whatever the junction evidence says (the failure on real livers came at 0.95-0.99).
        territory = missing_tree_regions(graph, branch_label, support.get("liver"), p)
        conf = np.minimum(conf, territory.confidence_cap(branch_label, p))
        evidence["in_one_tree_region"] = territory.suspect

    labelled = branch_label > 0
    near = nearest[vessel_mask_in]
    lab[vessel_mask_in] = np.where(labelled[near], branch_label[near], 0)  # input voxels only
    skel_lab[graph.skeleton] = lab[graph.skeleton]
    info = {"branches": nb,
            "intensity": grown.tree_hu.as_qc(),
            "portal_branches": int((branch_label == PORTAL).sum()),
            "hepatic_branches": int((branch_label == HEPATIC).sum()),
            "seed_conflict_branches": seed_conflicts,
            "subtrees_moved_by_intensity": int(grown.flips),
            "intensity_roots": grown.intensity_roots,
            "orphan_roots": grown.orphan_roots,
            "contacts_cut": int(grown.refused),
            "missing_tree_regions": {**territory.as_qc(), "roots_added": grown.region_roots}}
    info.update(confidence_summary(graph, branch_label, conf, p))
    info["portal_tree"] = summarize_tree(graph, np.flatnonzero(branch_label == PORTAL))
    info["hepatic_tree"] = summarize_tree(graph, np.flatnonzero(branch_label == HEPATIC))
    return Labelling(lab, vessel_mask_in & (lab == 0), info, skel_lab,
                     SplitBranches(graph, np.zeros(3, np.int64), branch_label, conf, parent, evidence=evidence))


@dataclass
class _Growth:
    """The trees grown over the branch graph, and how many extra roots each step added."""

    branch_label: np.ndarray  # (branches,) PORTAL / HEPATIC / 0
    parent: np.ndarray  # (branches,) the branch each was reached from, -1 for roots
    refused: int  # contacts cut: junction links no tree was allowed to cross
    log_odds: np.ndarray  # (branches,) the scan's HU evidence for portal (0 when not used)
    tree_hu: TreeIntensity
    flips: int = 0
    orphan_roots: int = 0
    intensity_roots: int = 0
    region_roots: int = 0


def _grow_labels(graph: VesselGraph, edges, seed_label: np.ndarray, soft_roots: dict, radial, radius: np.ndarray,
                 ct, vessel_mask: np.ndarray, support: dict, p: SplitParams) -> _Growth:
    """Grow both trees from the seed branches, then again with each correction that applies: orphaned
    thick vessels rooted, the scan's HU difference between the trees, regions of the liver left to one
    tree given the other back, subtrees flipped by their HU."""
    nb = len(graph.branches)
    branch_label, refused, parent = grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                soft_roots=soft_roots)
    # A thick vessel reached only by climbing up from much thinner ones was cut off from its own
    # tree (a gap in the mask, a segmentation that lost the join): whichever tree touched it first
    # took it, with all it drains or feeds. It roots itself instead, in the tree whose root is
    # clearly nearer to it (the left portal vein lies at the hilum, a hepatic trunk at the IVC).
    orphans = orphan_roots(graph, branch_label, parent, seed_label, radius, p)
    if orphans:
        soft_roots = {**soft_roots, **orphans}
        branch_label, refused, parent = grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                    soft_roots=soft_roots)
    # The scan's own HU difference between the trees, measured on the thick vessels of this first
    # labelling; where it is clear, the trees grow again with it.
    tree_hu = _measure_tree_intensity(graph, ct, vessel_mask, support.get("liver"), branch_label, radius, p)
    log_odds = np.zeros(nb)
    hu_roots: dict = {}
    if tree_hu.used:
        log_odds = branch_log_odds(graph, ct, radius, tree_hu, branch_label)
        branch_label, refused, parent = grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                    log_odds=log_odds, soft_roots=soft_roots)
        hu_roots = intensity_roots(graph, branch_label, log_odds, radius, seed_label, p)
        if hu_roots:
            soft_roots = {**soft_roots, **hu_roots}
            branch_label, refused, parent = grow_trees(nb, edges, seed_label, graph, p, radial, radius=radius,
                                                        log_odds=log_odds, soft_roots=soft_roots)
    # A region of the liver left to one tree: try giving it the missing tree back by rooting, in that
    # tree, the vessel where the other tree's growth came into the region (kept only when both trees
    # then interleave everywhere and the scan's HU speaks for it: only where the HU cue is used).
    liver_w = support.get("liver")
    region_roots: dict = {}
    grow_kw = {"radius": radius, "log_odds": log_odds if tree_hu.used else None}
    if p.territory_candidates > 0 and tree_hu.used:
        def regrow(extra: dict) -> tuple[np.ndarray, np.ndarray]:
            roots = {**soft_roots, **extra}
            grown = grow_trees(nb, edges, seed_label, graph, p, radial, soft_roots=roots, **grow_kw)
            return grown[0], grown[2]

        territory = missing_tree_regions(graph, branch_label, liver_w, p, far_ratio=p.territory_search_ratio)
        region_roots = territory_roots(graph, branch_label, seed_label, parent, parent_link_cost(edges, parent),
                                       log_odds, liver_w, territory, p, regrow)
    if region_roots:
        soft_roots = {**soft_roots, **region_roots}
        branch_label, refused, parent = grow_trees(nb, edges, seed_label, graph, p, radial, soft_roots=soft_roots,
                                                    **grow_kw)
    flips = 0
    if tree_hu.used and p.subtree_flip_margin > 0:
        branch_label, parent, flips = flip_subtrees(branch_label, parent, edges, seed_label, log_odds, p)
    return _Growth(branch_label, parent, refused, log_odds, tree_hu, flips, len(orphans), len(hu_roots),
                   len(region_roots))


def _seed_branches(graph: VesselGraph, seeds: dict, comps: np.ndarray, p: SplitParams
                   ) -> tuple[np.ndarray, int, dict[int, np.ndarray]]:
    """(seed label per branch: 0, PORTAL or HEPATIC; number of branches near both contacts, given
    to the nearer one; {label: (n_branches,) bool} the branches near each contact, seeds or not).

    Candidates are the thick branches near a contact, grouped by contact patch and vessel
    component: the hepatic veins usually meet the IVC in one contact patch, but the IVC label may
    separate them, and each needs its root."""
    nb = len(graph.branches)
    is_seed = {tree: np.zeros(nb, bool) for tree in (PORTAL, HEPATIC)}
    candidates = {tree: np.zeros(nb, bool) for tree in (PORTAL, HEPATIC)}
    centerline_dist = {tree: np.full(nb, np.inf) for tree in (PORTAL, HEPATIC)}
    radius = np.array([b.mean_radius_mm for b in graph.branches])
    vox, starts = _centerline(graph)
    comp_of = comps[tuple(vox[starts].T)].astype(np.int64)
    max_radius = np.maximum.reduceat(np.concatenate([b.radii_mm for b in graph.branches]), starts)
    # Distances to a contact are compared with at most this (a candidate's or a junction's radius
    # beyond the reach, the lumen region of _continuous_with_contact): farther ones may read inf.
    reach = p.seed_distance_mm + p.seed_reach_mm + max(10.0, float(graph.radius_mm.max()))
    for tree in (PORTAL, HEPATIC):
        if not seeds[tree].any():
            continue
        # on the contact's box grown by reach only (inf / patch 0 outside it)
        box = padded_box(seeds[tree], reach_voxels(graph.spacing, reach))
        d_box, ind = ndimage.distance_transform_edt(~seeds[tree][box], sampling=graph.spacing, return_indices=True)
        patch_box = cc3d.connected_components(seeds[tree][box], connectivity=26)[tuple(ind)]
        d = functools.partial(values_in_box_at, d_box, box, fill=np.inf)
        patch_of = functools.partial(values_in_box_at, patch_box, box, fill=0)
        near = centerline_dist[tree]
        k = _segment_argmin(d(vox), starts)  # each branch's centerline voxel nearest the contact
        near[:] = d(vox[k])
        patch = patch_of(vox[k]).astype(np.int64)
        near = near.copy()  # centerline_dist keeps the centerline's own distance
        # A root's centerline may start about a radius away from the contact (thinning stops short
        # of a blob end), or a little farther in when the support label covers its first
        # millimetres and only a rim of partial-volume voxels touches it.
        cand = near <= p.seed_distance_mm + p.seed_reach_mm + max_radius
        if tree == PORTAL:
            cand &= _continuous_with_contact(graph, seeds[tree][box], d_box, p, box)
        if tree == HEPATIC:
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
        candidates[tree] = cand.copy()
        group = patch * (int(comps.max()) + 1) + comp_of
        for c in np.unique(group[cand]):
            members = np.flatnonzero(cand & (group == c))
            # Portal: the trunk's continuation only (a thick hepatic vein may touch it at the hilum).
            # Hepatic: every vein reaching the contact; several converge on the IVC, and the
            # thickness filter of the contact patches already drops vessels brushing it lower down.
            ratio = p.root_radius_ratio if tree == PORTAL else 0.0
            is_seed[tree][members[radius[members] >= ratio * radius[members].max()]] = True
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
    emerging_root_ratio x the thickest root and emerging_min_radius_mm thick, and joined to the
    portal vein / IVC through lumen emerging_lumen_fraction of its own radius wide (the left portal
    vein beside a thicker right one; an inferior right hepatic vein). A vessel of the other tree
    merely touching the structure is joined through a narrow waist. Such roots are not certain (a
    vessel of the other tree can end on the structure): the growth takes them at a cost,
    root_cost_weight x ln(thickest / own radius), unless the other tree reaches them more cheaply
    through its own vessels."""
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
    return np.logical_or.reduceat(joined[values_in_box_at(labels, box, vox, fill=0)], starts)


def _nearest_branch(graph: VesselGraph, vessel_mask, comps) -> np.ndarray:
    """Index of the nearest branch centerline voxel (mm) for every vessel voxel, within its
    component (-1 outside the vessels)."""
    bmap = graph.branch_index_map()
    centerline = bmap > 0
    vox = np.nonzero(vessel_mask)
    near = tuple(_nearest_feature(centerline, np.stack(vox, axis=1), graph.spacing).T)
    nearest = np.full(vessel_mask.shape, -1, np.int32)
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


def _measure_tree_intensity(graph: VesselGraph, ct, vessel_mask, liver, branch_label, radius,
                            p: SplitParams) -> TreeIntensity:
    """The scan's portal and hepatic lumen HU on the thick branches of a labelling, against the
    parenchyma a few mm away from every vessel (inside the liver when its mask is given)."""
    if ct is None or p.tree_intensity_weight <= 0:
        return TreeIntensity(False, "not used" if ct is not None else "no CT")
    sp = np.asarray(graph.spacing)
    box = padded_box(vessel_mask, np.ceil(6.0 / sp).astype(int))
    # 2-5 mm from every vessel: exact ball dilations (the same voxels as a distance transform of
    # the box, at a thirtieth of its cost on a full-size working grid)
    parenchyma = np.zeros(vessel_mask.shape, bool)
    parenchyma[box] = _dilate_ball(vessel_mask[box], sp, 5.0) & ~_dilate_ball(vessel_mask[box], sp, 2.0)
    if liver is not None:
        parenchyma &= liver
    return measure_tree_intensity(graph, ct, branch_label, parenchyma, radius, phase=p.contrast_phase)


def _label_unreached(lab, vessel_mask, comps, unreached, pv, ivc, spacing) -> dict:
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
    targets = {label: lab == label for label in (PORTAL, HEPATIC) if (lab == label).any()}
    if not targets:  # nothing labelled anywhere: the nearer of the portal vein and the IVC
        targets = {label: m for label, m in ((PORTAL, pv), (HEPATIC, ivc)) if m is not None and m.any()}
    if targets:
        sp = np.asarray(spacing, float)
        points = np.stack(where, axis=1) * sp
        lowest = {}
        for label, m in targets.items():
            tree = spatial.cKDTree(np.argwhere(m) * sp, balanced_tree=False, compact_nodes=False)
            lowest[label] = np.asarray(ndimage.minimum(tree.query(points)[0], comp_of, ids))
        best = np.zeros(int(ids.max()) + 1, np.uint8)
        for i, c in enumerate(ids):
            d = {label: float(lowest[label][i]) for label in targets}
            if len(d) == 2 and abs(d[PORTAL] - d[HEPATIC]) <= 1e-6 * max(d.values()):
                d = _unreached_minima(targets, where, comp_of == c, max(d.values()), spacing)
            best[c] = min(d, key=lambda label: d[label])
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
    for label, m in targets.items():
        if m[box].any():
            out[label] = float(distances_at(feature_indices(~m[box], spacing), local, spacing).min())
        else:
            out[label] = np.inf
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
