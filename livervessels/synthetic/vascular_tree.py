"""Vascular trees that fill an organ: space colonisation, Murray's-law radii, no interpenetration.

A tree is a set of nodes (positions in mm) with parent links; the edge from a node to its parent is a
tube with the node's radius. Trees grow by space colonisation (Runions, Lane and Prusinkiewicz 2007:
attraction points scattered through the organ pull the nearest tree node towards them and are
consumed when a node comes close), which fills the volume the way perfusion territories do. Radii
follow Murray's law from the leaves up (r^gamma of a parent = sum over its children, gamma 2.7-3;
flow of a terminal ~ the tissue it serves). Vessels never pass through each other: where two tubes
of different trees (or distant parts of one tree) overlap, the thinner one's subtree is cut back at
that point and the radii recomputed, so vessels may touch but not interpenetrate.

Everything is in millimetres. Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class VascularTree:
    """Nodes of one vessel tree. Every node except a root has a parent; the edge parent -> node is
    a tube of the node's radius."""

    points: np.ndarray  # (n, 3) float, mm
    parent: np.ndarray  # (n,) int, -1 for roots
    radius: np.ndarray  # (n,) float, mm
    label: int  # which tree (1 portal, 2 hepatic)
    weight: np.ndarray | None = None  # (n,) tissue a node would serve as a terminal (Murray's flow)

    def __len__(self) -> int:
        return len(self.parent)

    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(len(self))]
        for i, p in enumerate(self.parent):
            if p >= 0:
                out[p].append(i)
        return out

    def n_children(self) -> np.ndarray:
        return np.bincount(self.parent[self.parent >= 0], minlength=len(self))

    def edge_nodes(self) -> np.ndarray:
        """Nodes that end an edge (every node with a parent)."""
        return np.flatnonzero(self.parent >= 0)

    def depth_mm(self) -> np.ndarray:
        """Path length from the node's root (mm)."""
        has = self.parent >= 0
        step = np.zeros(len(self))
        step[has] = np.linalg.norm(self.points[has] - self.points[self.parent[has]], axis=1)
        return _sum_to_root(self.parent, step)

    def hops(self) -> np.ndarray:
        """Number of edges from the node's root."""
        return _sum_to_root(self.parent, (self.parent >= 0).astype(float)).astype(np.int64)

    def topological_order(self) -> np.ndarray:
        """Node indices, every parent before its children."""
        kids = self.children()
        order = []
        stack = list(np.flatnonzero(self.parent < 0)[::-1])
        while stack:
            n = stack.pop()
            order.append(n)
            stack.extend(kids[n][::-1])
        return np.asarray(order, np.int64)

    def branch_of_node(self) -> np.ndarray:
        """Branch id of the edge ending at each node (-1 for roots). A branch is a chain of edges
        between branch points (roots, bifurcations, leaves)."""
        nkids = self.n_children()
        out = np.full(len(self), -1, np.int64)
        next_id = 0
        for i in self.topological_order():
            p = self.parent[i]
            if p < 0:
                continue
            if self.parent[p] >= 0 and nkids[p] == 1:
                out[i] = out[p]  # a chain continues through a node with one child
            else:
                out[i] = next_id
                next_id += 1
        return out

    def n_branches(self) -> int:
        b = self.branch_of_node()
        return int(b.max()) + 1 if (b >= 0).any() else 0

    def subtree(self, node: int) -> np.ndarray:
        """The node and all its descendants."""
        kids = self.children()
        out, stack = [], [node]
        while stack:
            n = stack.pop()
            out.append(n)
            stack.extend(kids[n])
        return np.asarray(out, np.int64)

    def keep(self, mask: np.ndarray) -> "VascularTree":
        """The tree restricted to the nodes in mask (a removed node's descendants must be removed too)."""
        idx = np.flatnonzero(mask)
        new = np.full(len(self), -1, np.int64)
        new[idx] = np.arange(len(idx))
        parent = np.where(self.parent[idx] >= 0, new[np.maximum(self.parent[idx], 0)], -1)
        weight = None if self.weight is None else self.weight[idx].copy()
        return VascularTree(self.points[idx].copy(), parent, self.radius[idx].copy(), self.label, weight)


def _sum_to_root(parent: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Sum of value over each node and its ancestors (pointer jumping: log(depth) numpy passes)."""
    acc = np.asarray(value, float).copy()
    ptr = np.asarray(parent, np.int64).copy()
    while True:
        has = ptr >= 0
        if not has.any():
            return acc
        new_acc = acc.copy()
        new_acc[has] += acc[ptr[has]]
        new_ptr = np.full_like(ptr, -1)
        new_ptr[has] = ptr[ptr[has]]
        acc, ptr = new_acc, new_ptr


# ---------------------------------------------------------------------------------------------
# Growth


@dataclass(frozen=True)
class ColonizationParams:
    step_mm: float = 2.0  # length of one growth step (one edge)
    influence_mm: float = 30.0  # an attraction point pulls the nearest node within this distance
    kill_mm: float = 4.0  # ... and is consumed when a node comes this close
    inertia: float = 1.0  # weight of the node's own direction: vessels bend, they do not zig-zag
    max_iterations: int = 500
    max_failures: int = 2  # a node whose growth was refused this often stops growing
    min_separation_mm: float = 1.6  # a new node this close to another node (but its own) is refused
    branch_gap_steps: int = 3  # branch points along a vessel at least this many steps apart


def colonize(points: np.ndarray, parent: np.ndarray, attractors: np.ndarray,
             allowed: Callable[[np.ndarray, np.ndarray], np.ndarray],
             params: ColonizationParams = ColonizationParams(),
             active: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grow a tree (points, parent) towards the attraction points; returns the new (points, parent).

    allowed(starts, ends) -> bool per proposed edge (inside the organ, clear of obstacles).
    active: nodes that may grow (default all). Vessels bifurcate (a node has at most two children)
    and branch points along a vessel are at least branch_gap_steps edges apart."""
    all_pts = np.asarray(points, float).copy()
    all_par = np.asarray(parent, np.int64).copy()
    n = len(all_par)
    can_grow = np.ones(n, bool) if active is None else np.asarray(active, bool).copy()
    fails = np.zeros(n, np.int64)
    kids = [[] for _ in range(n)]
    for i, q in enumerate(all_par):
        if q >= 0:
            kids[q].append(i)
    attr = np.asarray(attractors, float)
    attr = attr[np.isinf(cKDTree(all_pts).query(attr, distance_upper_bound=params.kill_mm)[0])]

    def branch_gap_ok(node: int) -> bool:
        """No other branch point within branch_gap_steps along the vessel, up or down."""
        if len(kids[node]) >= 2:
            return False
        up = all_par[node]
        for _ in range(params.branch_gap_steps):
            if up < 0:
                break
            if len(kids[up]) >= 2:
                return False
            up = all_par[up]
        down = kids[node][0]
        for _ in range(params.branch_gap_steps):
            if len(kids[down]) >= 2:
                return False
            if not kids[down]:
                break
            down = kids[down][0]
        return True

    for _ in range(params.max_iterations):
        if not len(attr) or not can_grow.any():
            break
        idx = np.flatnonzero(can_grow)
        d, j = cKDTree(all_pts[idx]).query(attr, distance_upper_bound=params.influence_mm)
        hit = np.isfinite(d)
        if not hit.any():
            break
        nodes = idx[j[hit]]
        vec = attr[hit] - all_pts[nodes]
        vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-9)
        growing, inv = np.unique(nodes, return_inverse=True)
        pull = np.zeros((len(growing), 3))
        np.add.at(pull, inv, vec)
        pull /= np.maximum(np.linalg.norm(pull, axis=1, keepdims=True), 1e-9)
        own = np.zeros_like(pull)
        has_parent = all_par[growing] >= 0
        own[has_parent] = all_pts[growing[has_parent]] - all_pts[all_par[growing[has_parent]]]
        own /= np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-9)
        # a vessel continuing keeps some of its direction; a new side branch just follows its pull
        continuing = np.array([len(kids[g]) == 0 for g in growing], bool)
        keep_dir = continuing & (np.einsum("ij,ij->i", pull, own) > -0.2)
        direction = pull + params.inertia * own * keep_dir[:, None]
        direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-9)
        new = all_pts[growing] + params.step_mm * direction
        ok = allowed(all_pts[growing], new)
        ok &= np.array([c or branch_gap_ok(g) for c, g in zip(continuing, growing)], bool)
        # vessels keep apart: no existing node but the growing one within min_separation
        d2, j2 = cKDTree(all_pts).query(new, k=2, distance_upper_bound=params.min_separation_mm)
        crowded = (np.isfinite(d2) & (j2 != growing[:, None])).any(axis=1)
        ok &= ~crowded
        fails[growing[~ok]] += 1
        can_grow[growing[fails[growing] >= params.max_failures]] = False
        if not ok.any():
            continue
        new, growing = new[ok], growing[ok]
        first = len(all_par)
        all_pts = np.vstack([all_pts, new])
        all_par = np.concatenate([all_par, growing])
        for k, g in enumerate(growing):
            kids[g].append(first + k)
            kids.append([])
        can_grow = np.concatenate([can_grow, np.ones(len(new), bool)])
        fails = np.concatenate([fails, np.zeros(len(new), np.int64)])
        d_kill, _ = cKDTree(new).query(attr, distance_upper_bound=params.kill_mm)
        attr = attr[np.isinf(d_kill)]
    return all_pts, all_par


def prune_short_terminals(tree: VascularTree, min_length_mm: float, protected: np.ndarray | None = None
                          ) -> tuple[VascularTree, np.ndarray]:
    """Remove terminal chains shorter than min_length_mm (growth sprouts, not vessels). Returns the
    tree and which of the input nodes it kept (in order)."""
    keep = np.ones(len(tree), bool)
    nkids = tree.n_children()
    for leaf in np.flatnonzero((nkids == 0) & (tree.parent >= 0)):
        chain, n, length = [], leaf, 0.0
        while tree.parent[n] >= 0 and nkids[n] <= 1:
            chain.append(n)
            length += float(np.linalg.norm(tree.points[n] - tree.points[tree.parent[n]]))
            n = tree.parent[n]
        if nkids[n] >= 2 and length < min_length_mm and not (protected is not None and protected[chain].any()):
            keep[chain] = False
    return tree.keep(keep), keep


def smooth_chains(tree: VascularTree, iterations: int = 4, weight: float = 0.5,
                  fixed: np.ndarray | None = None) -> VascularTree:
    """Laplacian smoothing of chain nodes (one parent, one child): growth steps leave kinks."""
    kids = tree.children()
    inner = np.array([tree.parent[i] >= 0 and len(kids[i]) == 1 for i in range(len(tree))], bool)
    if fixed is not None:
        inner &= ~fixed
    idx = np.flatnonzero(inner)
    if not len(idx):
        return tree
    child = np.array([kids[i][0] for i in idx])
    pts = tree.points.copy()
    for _ in range(iterations):
        mid = 0.5 * (pts[tree.parent[idx]] + pts[child])
        pts[idx] += weight * (mid - pts[idx])
    return VascularTree(pts, tree.parent.copy(), tree.radius.copy(), tree.label, tree.weight)


def murray_radii(tree: VascularTree, leaf_flow: np.ndarray, gamma: float, root_radius_mm: float,
                 min_radius_mm: float) -> np.ndarray:
    """Radius of every node's edge: r = c * flow^(1/gamma), flow summed over the subtree's leaves,
    c set so that the thickest root edge has root_radius_mm (Murray's law, r_parent^gamma =
    sum of r_child^gamma). Roots take their thickest child's radius."""
    flow = np.zeros(len(tree))
    nkids = tree.n_children()
    leaves = np.flatnonzero(nkids == 0)
    flow[leaves] = leaf_flow[leaves]
    for i in tree.topological_order()[::-1]:
        p = tree.parent[i]
        if p >= 0:
            flow[p] += flow[i]
    roots = np.flatnonzero(tree.parent < 0)
    c = root_radius_mm / max(float(flow[roots].max()), 1e-12) ** (1.0 / gamma)
    return np.maximum(c * flow ** (1.0 / gamma), min_radius_mm)


# ---------------------------------------------------------------------------------------------
# Interpenetration


@dataclass
class _Samples:
    xyz: np.ndarray  # (m, 3) points along the edges
    tree: np.ndarray  # (m,) which tree (index into the list)
    node: np.ndarray  # (m,) edge = the node it ends at
    radius: np.ndarray  # (m,)
    depth: np.ndarray  # (m,) path length from the root (mm)


def _sample_edges(trees: list[VascularTree], step_mm: float) -> _Samples:
    xyz, tr, node, rad, dep = [], [], [], [], []
    for k, t in enumerate(trees):
        depth = t.depth_mm()
        e = t.edge_nodes()
        a, b = t.points[t.parent[e]], t.points[e]
        length = np.linalg.norm(b - a, axis=1)
        n = np.maximum(np.ceil(length / step_mm).astype(int), 1)
        rep = np.repeat(np.arange(len(e)), n + 1)
        start = np.repeat(np.cumsum(n + 1) - (n + 1), n + 1)
        frac = (np.arange(len(rep)) - start) / n[rep]
        xyz.append(a[rep] + frac[:, None] * (b - a)[rep])
        tr.append(np.full(len(rep), k))
        node.append(e[rep])
        rad.append(t.radius[e][rep])
        dep.append(depth[t.parent[e]][rep] + frac * length[rep])

    def cat(x):
        return np.concatenate(x) if x else np.zeros(0)

    return _Samples(np.vstack(xyz) if xyz else np.zeros((0, 3)), cat(tr).astype(int), cat(node).astype(int),
                    cat(rad), cat(dep))


def _ancestors(tree: VascularTree, k: int) -> np.ndarray:
    """(k + 1, n): row i is the i-th ancestor of each node (row 0 the node itself; -1 past a root)."""
    out = np.full((k + 1, len(tree)), -1, np.int64)
    out[0] = np.arange(len(tree))
    for i in range(1, k + 1):
        prev = out[i - 1]
        out[i] = np.where(prev >= 0, tree.parent[np.maximum(prev, 0)], -1)
        out[i][prev < 0] = -1
    return out


def _overlap_pairs(trees: list[VascularTree], sample_mm: float, tolerance_mm: float, hops: int,
                   anchors: dict[int, int] | None, obstacle: list[bool] | None = None
                   ) -> tuple[_Samples, np.ndarray, np.ndarray]:
    """Samples of all edges and the (i, j) sample pairs whose tubes overlap without an excuse."""
    s = _sample_edges(trees, sample_mm)
    empty = np.zeros(0, np.int64)
    if not len(s.xyz):
        return s, empty, empty
    # radius classes: each pair of classes is searched with the largest reach it can need
    bounds = [0.0, 1.0, 2.0, 4.0, 8.0, np.inf]
    cls = np.digitize(s.radius, bounds[1:-1])
    fixed = np.asarray(obstacle, bool)[s.tree] if obstacle is not None else np.zeros(len(s.tree), bool)
    members = [np.flatnonzero(cls == c) for c in range(len(bounds) - 1)]
    kds = [cKDTree(s.xyz[m]) if len(m) else None for m in members]
    hi = [float(s.radius[m].max()) if len(m) else 0.0 for m in members]
    pairs = []
    for a in range(len(members)):
        for b in range(a, len(members)):
            if kds[a] is None or kds[b] is None:
                continue
            reach = hi[a] + hi[b]
            if a == b:
                pr = kds[a].query_pairs(reach, output_type="ndarray")
                pa, pb = members[a][pr[:, 0]], members[a][pr[:, 1]]
            else:
                sd = kds[a].sparse_distance_matrix(kds[b], reach, output_type="ndarray")
                pa, pb = members[a][sd["i"]], members[b][sd["j"]]
            keep = ~(fixed[pa] & fixed[pb])  # obstacles never move: their own overlaps do not matter
            pairs.append(np.stack([pa[keep], pb[keep]], axis=1))
    pairs = np.vstack(pairs) if pairs else np.zeros((0, 2), np.int64)
    if not len(pairs):
        return s, empty, empty
    i, j = pairs[:, 0], pairs[:, 1]
    dist = np.linalg.norm(s.xyz[i] - s.xyz[j], axis=1)
    over = dist < s.radius[i] + s.radius[j] - tolerance_mm
    i, j = i[over], j[over]
    same = s.tree[i] == s.tree[j]
    exempt = np.zeros(len(i), bool)
    for k, t in enumerate(trees):
        sel = np.flatnonzero(same & (s.tree[i] == k))
        if not len(sel):
            continue
        depth = t.depth_mm()
        d1, d2 = s.depth[i[sel]], s.depth[j[sel]]
        # nearby pieces of one tree: most share an ancestor within a few edges, so look there first
        lca_depth = np.full(len(sel), -np.inf)
        for k_hops in (3, hops):
            todo = np.flatnonzero(~np.isfinite(lca_depth))
            if not len(todo):
                break
            anc = _ancestors(t, k_hops)
            a1, a2 = anc[:, s.node[i[sel[todo]]]], anc[:, s.node[j[sel[todo]]]]
            match = (a1[:, None, :] == a2[None, :, :]) & (a1[:, None, :] >= 0)
            lca_depth[todo] = np.where(match, depth[np.maximum(a1, 0)][:, None, :], -np.inf).max(axis=(0, 1))
        path = d1 + d2 - 2 * np.minimum(lca_depth, np.minimum(d1, d2))
        path[~np.isfinite(lca_depth)] = np.inf
        # a side branch leaving at a shallow angle shares its parent's wall for a few radii
        exempt[sel] = path <= 3.0 * (s.radius[i[sel]] + s.radius[j[sel]]) + 4.0
    # a tree leaves its anchor (the IVC, the portal trunk) through its wall: not an overlap there
    for k, anchor in (anchors or {}).items():
        for a, b in ((i, j), (j, i)):
            near_root = ((s.tree[a] == k) & (s.tree[b] == anchor)
                         & (s.depth[a] <= 3.0 * (s.radius[a] + s.radius[b]) + 4.0))
            exempt |= near_root
    return s, i[~exempt], j[~exempt]


def find_overlaps(trees: list[VascularTree], *, sample_mm: float = 0.5, tolerance_mm: float = 0.05,
                  hops: int = 16, anchors: dict[int, int] | None = None,
                  obstacle: list[bool] | None = None) -> list[tuple[int, int, int, int]]:
    """Edge pairs whose tubes overlap: (tree_a, node_a, tree_b, node_b). Within one tree, tubes that
    meet at a branch point overlap naturally; they are exempt when the path between the two points
    along the tree is no longer than the sum of their radii plus a step. anchors {tree: other tree}:
    a tree whose roots sit on the other's wall (hepatic veins on the IVC) may overlap it near them.
    obstacle[k]: tree k never moves (overlaps among such trees are not reported)."""
    s, i, j = _overlap_pairs(trees, sample_mm, tolerance_mm, hops, anchors, obstacle)
    out = {(int(s.tree[a]), int(s.node[a]), int(s.tree[b]), int(s.node[b])) for a, b in zip(i, j)}
    return sorted(out)


def relax_overlaps(trees: list[VascularTree], inside: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   protected: list[np.ndarray], *, anchors: dict[int, int] | None = None,
                   iterations: int = 15, decay: float = 0.7) -> list[VascularTree]:
    """Push the thinner of two overlapping vessels away from the thicker one's axis, bending it
    (its subtree follows with `decay` per node), as long as it stays inside the organ
    (inside(points, radii) -> bool). Returns new trees; overlaps left are for resolve_overlaps."""
    trees = [VascularTree(t.points.copy(), t.parent.copy(), t.radius.copy(), t.label, t.weight) for t in trees]
    for _ in range(iterations):
        s, i, j = _overlap_pairs(trees, 0.5, 0.05, 16, anchors, [bool(p.all()) for p in protected])
        if not len(i):
            break
        swap = (s.radius[i] > s.radius[j]) | ((s.radius[i] == s.radius[j]) & (s.depth[i] < s.depth[j]))
        thin, thick = np.where(swap, j, i), np.where(swap, i, j)
        vec = s.xyz[thin] - s.xyz[thick]
        dist = np.maximum(np.linalg.norm(vec, axis=1), 1e-6)
        push = vec / dist[:, None] * (s.radius[thin] + s.radius[thick] - dist + 0.1)[:, None]
        moved = False
        for k, t in enumerate(trees):
            sel = s.tree[thin] == k
            if not sel.any():
                continue
            disp = np.zeros((len(t), 3))
            size = np.zeros(len(t))
            nodes = s.node[thin[sel]]
            mag = np.linalg.norm(push[sel], axis=1)
            order = np.lexsort((-mag, nodes))  # per node, its largest push first
            first = np.r_[True, nodes[order][1:] != nodes[order][:-1]]
            pick = order[first]
            disp[nodes[pick]] = push[sel][pick]
            size[nodes[pick]] = mag[pick]
            disp[protected[k]] = 0.0
            if not size.any():
                continue
            # the subtree follows, fading with distance in nodes
            total = disp.copy()
            for n in t.topological_order():
                p = t.parent[n]
                if p >= 0 and not protected[k][n]:
                    total[n] += decay * total[p] if size[n] == 0 else 0.0
            new_pts = t.points + total
            ok = inside(new_pts, t.radius) | ~np.any(total != 0, axis=1)
            if ok.any():
                t.points[ok] = new_pts[ok]
                moved = True
        if not moved:
            break
    return trees


def resolve_overlaps(trees: list[VascularTree], radii: Callable[[VascularTree, int], np.ndarray] | None,
                     protected: list[np.ndarray] | None = None, max_rounds: int = 12,
                     anchors: dict[int, int] | None = None) -> tuple[list[VascularTree], int]:
    """Cut back the thinner vessel wherever two tubes overlap, recompute radii (radii(tree, index)),
    repeat until nothing overlaps. protected[k]: nodes of tree k that are never cut (the other
    vessel is cut instead). Returns the trees and the number of subtrees cut."""
    cuts = 0
    trees = list(trees)
    protected = protected or [np.zeros(len(t), bool) for t in trees]
    for _ in range(max_rounds):
        overlaps = find_overlaps(trees, anchors=anchors, obstacle=[bool(p.all()) for p in protected])
        if not overlaps:
            break
        remove = [np.zeros(len(t), bool) for t in trees]
        for ta, na, tb, nb in overlaps:
            ra, rb = trees[ta].radius[na], trees[tb].radius[nb]
            pa, pb = protected[ta][na], protected[tb][nb]
            if pa and pb:
                continue
            cut_a = pb or (not pa and (ra < rb or (ra == rb and na > nb)))
            t, n = (ta, na) if cut_a else (tb, nb)
            if not remove[t][n]:
                remove[t][trees[t].subtree(n)] = True
                cuts += 1
        new_trees, new_protected = [], []
        for k, t in enumerate(trees):
            keep = ~remove[k]
            kept = t.keep(keep)
            new_protected.append(protected[k][keep])
            if radii is not None:
                kept.radius = radii(kept, k)
            new_trees.append(kept)
        trees, protected = new_trees, new_protected
    return trees, cuts
