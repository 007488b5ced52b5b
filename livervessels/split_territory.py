"""Where in the liver one tree is missing: a check on the portal/hepatic split's result.

The portal and hepatic trees each supply or drain the whole liver, so their branches interleave
everywhere: in a liver with a plausible split, every part of the liver lies within a couple of
centimetres of both trees. The failure seen on real portal-venous livers is one-sided and large:
a lobar or segmental portal branch taken by the hepatic tree where it touches a hepatic vein,
with all it feeds. It leaves a region, often a whole lobe, with hepatic vessels only, and the
junction evidence behind it can be strong (the reported confidence was 0.95-0.99). This check
looks for such regions (liver far from every branch of one tree, yet close to the other's) and
marks the branches of the present tree inside them: their label is in doubt, whatever the
junctions said.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livervessels.split_growth import growth_depth
from livervessels.split_types import HEPATIC, PORTAL, TREE_NAMES, SplitParams
from livervessels.vessel_graph import VesselGraph


@dataclass
class TreeTerritory:
    """Liver regions where one tree is missing, measured on the split's centerline."""

    missing_fraction: dict[str, float]  # tree name -> share of the liver volume without it (other tree present)
    suspect: np.ndarray  # (n_branches,) bool: branches inside a region flagged for the other tree's absence
    flagged: list[str]  # names of the trees missing from at least min_fraction of the liver
    checked: bool  # False when there was no liver mask to measure on
    far_mm: float = 0.0  # the distance that counted as far from a tree (0: not checked)

    def confidence_cap(self, branch_label: np.ndarray, p: SplitParams) -> np.ndarray:
        """(n_branches,) the most confidence each branch may claim: 1, and for the suspects
        p.territory_confidence x (1 - the share of the liver without the other tree): the larger
        the region left to one tree, the less its labels can be trusted (a region of half the liver
        without portal veins is no anatomy)."""
        cap = np.ones(len(branch_label))
        for name in self.flagged:
            present = HEPATIC if name == TREE_NAMES[PORTAL] else PORTAL
            sel = self.suspect & (branch_label == present)
            cap[sel] = np.minimum(cap[sel], p.territory_confidence * (1.0 - self.missing_fraction[name]))
        return cap

    def as_qc(self) -> dict:
        return {"checked": self.checked, "far_mm": round(self.far_mm, 1),
                "missing_fraction": {k: round(v, 3) for k, v in self.missing_fraction.items()},
                "flagged": list(self.flagged), "suspect_branches": int(self.suspect.sum())}


def missing_tree_regions(graph: VesselGraph, branch_label: np.ndarray, liver: np.ndarray | None,
                         p: SplitParams, far_ratio: float | None = None) -> TreeTerritory:
    """Liver regions far from every centerline voxel of one tree and within p.territory_near_mm of
    the other's, on blocks of about p.territory_block_mm. Far: p.territory_far_mm, or far_ratio
    (default p.territory_far_ratio) times the median distance from the liver to the nearest
    vessel where that is more: a sparse mask (thin branches not segmented, a sparse phantom)
    leaves wider gaps between every tree's branches, and a region without one tree is then no
    sign of a wrong split.

    graph, branch_label (0/1/2 per branch) and liver share the graph's grid. A tree missing from at
    least p.territory_min_fraction of the liver volume is flagged, and the other tree's branches
    whose centerline lies mostly in that region are suspect.
    """
    nb = len(graph.branches)
    none = TreeTerritory({TREE_NAMES[PORTAL]: 0.0, TREE_NAMES[HEPATIC]: 0.0}, np.zeros(nb, bool), [], False)
    if liver is None or nb == 0:
        return none
    f = np.array([max(1, int(round(p.territory_block_mm / s))) for s in graph.spacing])
    coarse_shape = tuple(int(np.ceil(n / k)) for n, k in zip(liver.shape, f))
    liver_blocks = _block_mean(np.asarray(liver, bool), f, coarse_shape) > 0.5
    n_liver = int(liver_blocks.sum())
    if n_liver == 0:
        return none
    cells = [b.voxels // f for b in graph.branches]
    present = {}
    for lab in (PORTAL, HEPATIC):
        grid = np.zeros(coarse_shape, bool)
        ids = np.flatnonzero(branch_label == lab)
        if len(ids):
            pts = np.vstack([cells[i] for i in ids])
            grid[tuple(pts.T)] = True
        present[lab] = grid
    if not (present[PORTAL].any() and present[HEPATIC].any()):
        return none  # one tree empty: the seed-failure flag says so already
    block_mm = tuple(float(s * k) for s, k in zip(graph.spacing, f))
    dist = {lab: ndimage.distance_transform_edt(~present[lab], sampling=block_mm) for lab in (PORTAL, HEPATIC)}
    # a sparse mask (thin branches not segmented, a sparse phantom) leaves wider gaps between
    # every tree's branches; in a dense liver the median below is 3-4 mm and far stays as set
    nearest_any = float(np.median(np.minimum(dist[PORTAL], dist[HEPATIC])[liver_blocks]))
    far = max(p.territory_far_mm, (p.territory_far_ratio if far_ratio is None else far_ratio) * nearest_any)
    fractions, flagged = {}, []
    suspect = np.zeros(nb, bool)
    for lab, other in ((PORTAL, HEPATIC), (HEPATIC, PORTAL)):
        region = liver_blocks & (dist[lab] > far) & (dist[other] <= p.territory_near_mm)
        fraction = float(region.sum()) / n_liver
        fractions[TREE_NAMES[lab]] = fraction
        if fraction < p.territory_min_fraction:
            continue
        flagged.append(TREE_NAMES[lab])
        # a branch of the present tree may run partly beyond the region's edge: widen it by the near reach
        near_region = ndimage.distance_transform_edt(~region, sampling=block_mm) <= p.territory_near_mm
        for i in np.flatnonzero(branch_label == other):
            suspect[i] = near_region[tuple(cells[i].T)].mean() > 0.5
    return TreeTerritory(fractions, suspect, flagged, True, far)


def _block_mean(mask: np.ndarray, f: np.ndarray, coarse_shape: tuple[int, ...]) -> np.ndarray:
    """Share of each f-sized block that is inside the mask (blocks at the far edges padded with 0)."""
    padded = np.zeros(tuple(n * k for n, k in zip(coarse_shape, f)), np.float32)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    return padded.reshape(coarse_shape[0], f[0], coarse_shape[1], f[1], coarse_shape[2], f[2]).mean(axis=(1, 3, 5))


def territory_roots(graph: VesselGraph, branch_label: np.ndarray, seed_label: np.ndarray, parent: np.ndarray,
                    link_cost: np.ndarray, log_odds: np.ndarray, liver: np.ndarray | None,
                    territory: TreeTerritory, p: SplitParams,
                    regrow: Callable[[dict], tuple[np.ndarray, np.ndarray]]) -> dict[int, tuple[int, float]]:
    """{branch: (label, cost)}: further roots that give a liver region its missing tree back.

    territory: missing_tree_regions(..., far_ratio=p.territory_search_ratio) of these labels. For
    each tree flagged missing from a region, in turn, the present tree's branches whose growth
    subtree holds a good share of the region's branches are tried, weakest link to their growth
    parent first (link_cost: -ln affinity of the link each branch was reached over),
    one at a time as a root of the missing tree; regrow(extra_roots) returns the branch labels and
    growth parents with them. The best trial is kept when the missing tree then reaches most of
    the region (it is no longer flagged and at most p.territory_return_share of the region is
    left), no tree is newly flagged and at most half as much liver is left to one tree: a lobar
    branch taken through a contact hands its whole subtree back, and both trees interleave again.
    And the scan's own HU must speak for the move: the branches that change tree together carry at
    least p.territory_hu_support nats of HU log-odds (log_odds: log P(portal) / P(hepatic) per
    branch) for their new tree. Territory alone is no proof: a mask that lacks the thin branches of
    one tree somewhere looks the same, and there re-rooting a vessel of the other tree only moves
    the gap or nibbles at it: no trial is kept."""
    out: dict[int, tuple[int, float]] = {}
    if not territory.flagged or p.territory_candidates <= 0:
        return out
    done: set[str] = set()
    while True:
        pending = [name for name in territory.flagged if name not in done]
        if not pending:
            return out
        name = pending[0]
        done.add(name)
        missing = PORTAL if name == TREE_NAMES[PORTAL] else HEPATIC
        present = HEPATIC if missing == PORTAL else PORTAL
        suspect = territory.suspect & (branch_label == present)
        # where the other tree's subtree came in: a branch whose growth subtree holds a good part
        # of the region's branches, reached over the weakest links first
        held = _suspect_descendants(parent, suspect)
        cands = np.flatnonzero((branch_label == present) & (seed_label == 0) & (parent >= 0)
                               & (held >= p.territory_subtree_share * max(int(suspect.sum()), 1)))
        cands = cands[np.argsort(-link_cost[cands], kind="stable")][: p.territory_candidates]
        before = sum(territory.missing_fraction.values())
        best = None
        for b in cands.tolist():
            trial = {**out, b: (missing, 0.0)}
            labels, parents = regrow(trial)
            after = missing_tree_regions(graph, labels, liver, p, far_ratio=p.territory_search_ratio)
            total = sum(after.missing_fraction.values())
            support = hu_support(branch_label, labels, log_odds)
            # the region gets its tree back (most of it: a sparse mask can leave a region without
            # one tree, and a root that only nibbles at it is a guess), no other region loses one,
            # less liver is left to one tree, and the scan's HU speaks for the move
            if (name in after.flagged
                    or after.missing_fraction[name] > p.territory_return_share * territory.missing_fraction[name]
                    or not set(after.flagged) <= set(territory.flagged) or total > 0.5 * before
                    or support < p.territory_hu_support):
                continue
            # least liver left to one tree; among equals (often none left), the most HU evidence
            rank = (round(total, 2), -support)
            if best is None or rank < best[0]:
                best = (rank, b, labels, parents, after)
        if best is not None:
            _, b, branch_label, parent, territory = best
            out[b] = (missing, 0.0)


def hu_support(before: np.ndarray, after: np.ndarray, log_odds: np.ndarray) -> float:
    """Summed HU log-odds of the branches that changed tree, for their new tree (nats)."""
    changed = (before > 0) & (after > 0) & (before != after)
    return float(np.sum(np.where(after[changed] == PORTAL, log_odds[changed], -log_odds[changed])))


def _suspect_descendants(parent: np.ndarray, suspect: np.ndarray) -> np.ndarray:
    """Per branch: how many suspect branches its growth subtree (itself and all reached through it) holds."""
    held = suspect.astype(np.int64)
    depth = growth_depth(parent)
    for b in np.argsort(-depth, kind="stable"):  # children before parents
        if parent[b] >= 0:
            held[parent[b]] += held[b]
    return held
