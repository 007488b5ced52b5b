"""Junction explanation for the portal/hepatic split: at every junction the incident branches are
partitioned into vessels (through pairs, bifurcations, a branch ending on another vessel), scored
by flow angle, radii and Murray's law, axis contact and HU; the affinity of two branches is how much
worse the best explanation gets when they must be one vessel (livervessels.portal_hepatic, step 2)."""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from livervessels.split_types import SplitParams
from livervessels.vessel_graph import VesselGraph


def junction_affinities(graph: VesselGraph, p: SplitParams) -> tuple[list[tuple[float, int, int, float]], dict]:
    """(affinity, branch_a, branch_b, probability) for branches meeting at junction regions, and
    {(branch_a, branch_b): (unit axis leaving the junction into branch_b, junction position mm)}.

    Geometry only: the scan's HU enter the split at the level of whole trees
    (livervessels.split_intensity), where a per-scan portal / hepatic difference can be measured."""
    voxel_mm = float(np.mean(graph.spacing))
    edges = []
    leaving: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for nodes, internal in _junction_regions(graph, p.max_region_ends):
        ends = _region_ends(graph, nodes, internal, p)
        if len(ends) >= 2:
            for a, b, w, q in _region_pair_affinities(ends, p, voxel_mm):
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


def _region_ends(graph: VesselGraph, nodes, internal, p: SplitParams) -> list[tuple]:
    """The branch ends meeting at one junction region: (branch, axis direction into it, radius mm,
    a point on the axis in mm, axis length back through the junction in mm)."""
    ends = []
    for n in nodes:
        for b in set(graph.nodes[n].branches):
            if b in internal:
                continue
            br = graph.branches[b]
            for e in (0, 1):
                if br.nodes[e] == n:
                    u, r, c, back = graph.end_axis(b, e, p.direction_reach_mm)
                    ends.append((b, u, max(r, 1e-3), c, back))
    return ends


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


def _group_cost(group, ends, p: SplitParams, voxel_mm: float, offsets=None,
                pair_terms: _PairTerms | None = None) -> float:
    """Cost of explaining these branch ends as one vessel at a junction (lower: more plausible).
    pair_terms: the region's _PairTerms, shared by the groups of one region (made here if None)."""
    if len(group) == 1:
        return p.end_penalty
    prior = p.trifurcation_penalty if len(group) >= 4 else 0.0
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
    samples = np.stack([e[3][None] - t * e[4] * e[1][None] for e in ends])
    # every pair at once (the same arithmetic per pair)
    out = np.linalg.norm(samples[:, None, :, None] - samples[None, :, None], axis=4).min(axis=(2, 3))
    out[np.diag_indices(k)] = 0.0
    return out


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


def _region_pair_affinities(ends, p: SplitParams, voxel_mm: float):
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
            cache[group] = _group_cost(group, ends, p, voxel_mm, offsets, pair_terms)
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
