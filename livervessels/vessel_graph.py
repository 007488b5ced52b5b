"""Centerline graph of a binary vessel mask: 3D skeleton -> branches between junctions and endpoints.

Plain numpy/scipy/scikit-image; every length and radius in millimetres. Used by the portal/hepatic
split and meant to be reused by vessel statistics:

    graph = build_vessel_graph(mask, spacing, ct=ct)
    graph.branches[i].length_mm, .mean_radius_mm, .nodes, .is_terminal
    summarize_tree(graph, [i for i, lab in enumerate(branch_labels) if lab == 1])
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph
from skimage.morphology import skeletonize

from livervessels.masks import bounding_box, grow_box

# The 26 neighbour offsets of a voxel.
_OFFSETS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)], dtype=np.int64)


@dataclass
class Node:
    """A junction (a cluster of touching skeleton voxels with 3+ neighbours) or a free endpoint."""

    index: int
    kind: str  # "junction" or "endpoint"
    voxels: np.ndarray  # (k, 3) int voxel indices on the input grid
    branches: list[int] = field(default_factory=list)  # incident branch indices (a loop appears twice)

    @property
    def degree(self) -> int:
        return len(self.branches)

    @property
    def centre(self) -> np.ndarray:
        """Mean voxel position (float voxel indices)."""
        return self.voxels.mean(axis=0)


@dataclass
class Branch:
    """A chain of skeleton voxels between two nodes, ordered from nodes[0] to nodes[1]."""

    index: int
    voxels: np.ndarray  # (n, 3) int voxel indices, in order along the centerline
    nodes: tuple[int, int]  # node at the start / end of `voxels` (-1: none, a closed loop)
    length_mm: float  # along the chain, including the steps into its end nodes
    radii_mm: np.ndarray  # (n,) distance transform (mm) at each centerline voxel
    mean_hu: float | None  # mean CT value on the centerline, when a CT was given
    is_terminal: bool  # one end is a free endpoint (or the branch is isolated)
    axes: np.ndarray | None = None  # (n, 3) unit vessel axis (mm frame) at each voxel, see attach_image_axes

    @property
    def mean_radius_mm(self) -> float:
        return float(self.radii_mm.mean())

    @property
    def max_radius_mm(self) -> float:
        return float(self.radii_mm.max())

    def other_node(self, node: int) -> int:
        return self.nodes[1] if self.nodes[0] == node else self.nodes[0]


@dataclass
class VesselGraph:
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    skeleton: np.ndarray  # bool, input grid
    radius_mm: np.ndarray  # float32 distance transform of the mask (mm), input grid
    branches: list[Branch]
    nodes: list[Node]

    def branch_index_map(self) -> np.ndarray:
        """int32 map on the input grid: branch index + 1 on its centerline voxels, 0 elsewhere."""
        out = np.zeros(self.shape, np.int32)
        for b in self.branches:
            out[tuple(b.voxels.T)] = b.index + 1
        return out

    def node_position_mm(self, node: int) -> np.ndarray:
        return self.nodes[node].centre * np.asarray(self.spacing)

    def node_radius_mm(self, node: int) -> float:
        """Largest distance-transform value over the node's voxels (the vessel radius there)."""
        return float(self.radius_mm[tuple(self.nodes[node].voxels.T)].max())

    def end_axis(self, branch: int, end: int, reach_mm: float = 6.0) -> tuple[np.ndarray, float, np.ndarray, float]:
        """(unit axis direction pointing into the branch, radius mm, a point on the axis in mm,
        distance mm from that point back through the node) at the `end` (0 or 1) of a branch.

        The node's own bulge (within its radius) is skipped: the radius is the median beyond it
        and the axis is measured over the next `reach_mm` of centerline, from the image axes when
        attach_image_axes was called (the skeleton itself bends towards a junction over about a
        radius), else from the principal direction of the centerline voxels. Unlike the chord from
        the node centre (which only orients the axis), a vessel passing beside the node centre keeps
        its own line, so where two vessels only touch, their axes stay apart."""
        b = self.branches[branch]
        sp = np.asarray(self.spacing)
        order = slice(None, None, -1) if end else slice(None)
        vox, radii = b.voxels[order], b.radii_mm[order]
        axes = None if b.axes is None else b.axes[order]
        pts = vox * sp
        node = b.nodes[end]
        if node >= 0 and self.nodes[node].kind == "junction":
            origin, r_node = self.node_position_mm(node), self.node_radius_mm(node)
        else:
            origin, r_node = pts[0], 0.0
        d = np.linalg.norm(pts - origin, axis=1)
        beyond = d >= r_node
        r = float(median(radii[beyond])) if beyond.any() else float(median(radii))
        near = (d >= 0.5 * r_node) & (d <= r_node + reach_mm)
        # the chord from the node centre into the branch: which way the axis points
        u = pts[near if near.any() else slice(None)].mean(axis=0) - origin
        n = np.linalg.norm(u)
        if n < 1e-9 and len(pts) > 1:  # a one-voxel branch at an endpoint
            u = pts[-1] - pts[0]
            n = np.linalg.norm(u)
        u = u / n if n > 1e-9 else np.zeros(3)
        sel = beyond & (d <= r_node + reach_mm)
        if np.count_nonzero(sel) < 2:
            sel = near
        if not sel.any():
            sel = np.ones(len(pts), bool)
        window = pts[sel]
        centre = window.mean(axis=0)
        back = float(np.linalg.norm(centre - origin) + r_node)
        axis = u
        if axes is not None:
            a = axes[sel]  # length = tubularity weight
            if np.abs(a).sum() > 0:
                axis = np.linalg.eigh(a.T @ a)[1][:, -1]  # weighted mean axis, sign-free
        elif len(window) >= 3 and np.ptp(window @ u) >= 2 * float(np.min(sp)):
            axis = np.linalg.svd(window - centre, full_matrices=False)[2][0]
        if n > 1e-9:  # u is a unit vector (else zero)
            axis = axis if axis @ u >= 0 else -axis
        return axis, r, centre, back


def attach_image_axes(graph: VesselGraph, image: np.ndarray, sigma_mm: float = 2.0) -> None:
    """Give every branch the local vessel axis at each centerline voxel: the Hessian eigenvector of
    the Gaussian-smoothed image (sigma_mm) with the smallest |eigenvalue| (along a tube the
    intensity changes least). One smoothing of the skeleton's bounding box; derivatives by
    central differences at the centerline voxels only."""
    if not graph.branches:
        return
    sp = np.asarray(graph.spacing, float)
    coords = np.vstack([b.voxels for b in graph.branches])
    pad = np.ceil(3 * sigma_mm / sp).astype(int) + 1
    lo = np.maximum(coords.min(0) - pad, 0)
    hi = np.minimum(coords.max(0) + pad + 1, graph.shape)
    sub = np.asarray(image)[tuple(slice(a, b) for a, b in zip(lo, hi))].astype(np.float32)
    smooth = ndimage.gaussian_filter(sub, sigma_mm / sp, truncate=3.0)
    c = coords - lo
    shape = np.asarray(smooth.shape)

    def at(offset):
        return smooth[tuple(np.clip(c + offset, 0, shape - 1).T)]

    centre = at(np.zeros(3, int))
    hess = np.zeros((len(c), 3, 3), np.float32)
    eye = np.eye(3, dtype=int)
    for i in range(3):
        hess[:, i, i] = (at(eye[i]) - 2 * centre + at(-eye[i])) / sp[i] ** 2
        for j in range(i + 1, 3):
            v = ((at(eye[i] + eye[j]) - at(eye[i] - eye[j]) - at(eye[j] - eye[i]) + at(-eye[i] - eye[j]))
                 / (4 * sp[i] * sp[j]))
            hess[:, i, j] = hess[:, j, i] = v
    w, vec = np.linalg.eigh(hess)
    order = np.argsort(np.abs(w), axis=1)
    rows = np.arange(len(c))
    axes = vec[rows, :, order[:, 0]]
    # Weight by tubularity: ~1 along a tube (one small, two large eigenvalues), ~0 in a blob or
    # where two vessels cross.
    l1, l2 = np.abs(w[rows, order[:, 0]]), np.abs(w[rows, order[:, 1]])
    axes = axes * np.clip(1.0 - l1 / np.maximum(l2, 1e-9), 0.0, 1.0)[:, None]
    start = 0
    for b in graph.branches:
        b.axes = axes[start:start + len(b.voxels)]
        start += len(b.voxels)


def skeletonize_mask(mask: np.ndarray) -> np.ndarray:
    """3D thinning (Lee 1994, scikit-image) restricted to the mask's bounding box.

    Lee's thinning can delete a whole isolated object that is an even number of voxels thick
    (scikit-image issue 3757: a 2x2 or 4x4 rod vanishes). Such components are shrunk by one voxel
    along every axis (breaking the symmetry) and thinned again, so every component keeps a
    centerline.
    """
    mask = np.asarray(mask, bool)
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    sl = grow_box(box, 1, mask.shape)
    sub = mask[sl]
    skel = skeletonize(sub)
    comps, n = cc3d.connected_components(sub, connectivity=26, return_N=True)
    has_skel = np.zeros(n + 1, bool)
    has_skel[comps[skel]] = True
    missing = np.flatnonzero(~has_skel[1:]) + 1
    if len(missing):
        objs = ndimage.find_objects(comps)
        for c in missing:
            csl = grow_box(objs[c - 1], 1, sub.shape)
            comp = comps[csl] == c
            skel[csl] |= _thin_symmetric(comp)
    out[sl] = skel & sub
    return out


def _thin_symmetric(comp: np.ndarray) -> np.ndarray:
    shrunk = comp
    for _ in range(max(comp.shape)):
        smaller = shrunk[:-1, :-1, :-1] & shrunk[1:, 1:, 1:]
        if not smaller.any():
            break
        shrunk = np.zeros_like(comp)
        shrunk[:-1, :-1, :-1] = smaller
        sk = skeletonize(shrunk)
        if sk.any():
            return sk
    out = np.zeros_like(comp)  # nothing thinner survives: its deepest voxel
    edt = ndimage.distance_transform_edt(comp)
    out[np.unravel_index(np.argmax(edt), comp.shape)] = True
    return out


def build_vessel_graph(mask: np.ndarray, spacing, ct: np.ndarray | None = None, *,
                       skeleton: np.ndarray | None = None, spur_ratio: float = 1.0) -> VesselGraph:
    """Skeletonise `mask` and split the skeleton into branches and nodes (junctions, endpoints).

    Radii come from the Euclidean distance transform with sampling=spacing (distance from a
    centerline voxel centre to the nearest background voxel centre: up to half a voxel above the
    true radius). Terminal branches not longer than `spur_ratio` times the radius at their junction
    are bumps of the parent's wall, not vessels: they are pruned once. Branch lengths are measured
    on the centerline smoothed over 3 voxels (a raw voxel staircase overestimates oblique lengths),
    between the centres of their end nodes, and a terminal branch is extended by its end radius
    (thinning stops about one radius short of a blind end). Pass `skeleton` to reuse one.
    """
    mask = np.asarray(mask, bool)
    spacing = tuple(float(s) for s in spacing)
    shape = tuple(int(s) for s in mask.shape)
    radius = np.zeros(shape, np.float32)
    box = bounding_box(mask)
    if box is None:
        return VesselGraph(shape, spacing, np.zeros(shape, bool), radius, [], [])
    sl = grow_box(box, 1, shape)
    inside = np.nonzero(mask[sl])  # the transform is 0 elsewhere
    radius[sl][inside] = distances_at(feature_indices(mask[sl], spacing), inside, spacing)
    skel = skeletonize_mask(mask) if skeleton is None else (np.asarray(skeleton, bool) & mask)
    branches, nodes = _trace(np.argwhere(skel), shape)
    if spur_ratio > 0:
        sp = np.asarray(spacing)
        spurs = []
        for vox, (a, b) in branches:
            kinds = (nodes[a][0], nodes[b][0])
            if sorted(kinds) != ["endpoint", "junction"]:
                continue
            j = a if kinds[0] == "junction" else b
            r_junction = float(radius[tuple(nodes[j][1].T)].max())
            reach = float(np.max(np.linalg.norm((vox - nodes[j][1].mean(0)) * sp, axis=1)))
            if reach <= spur_ratio * r_junction:
                spurs.append(vox)
        if spurs:
            skel = skel.copy()
            skel[tuple(np.vstack(spurs).T)] = False
            branches, nodes = _trace(np.argwhere(skel), shape)
    return _assemble(branches, nodes, shape, spacing, skel, radius, ct)


def _assemble(branches, nodes, shape, spacing, skel, radius, ct) -> VesselGraph:
    sp = np.asarray(spacing)
    out_nodes = [Node(j, kind, vox) for j, (kind, vox) in enumerate(nodes)]
    out_branches = []
    for i, (vox, ends) in enumerate(branches):
        radii = radius[tuple(vox.T)].astype(float)
        pts = [vox * sp]
        for pos, n in ((0, ends[0]), (1, ends[1])):
            if n >= 0 and nodes[n][0] == "junction":
                c = nodes[n][1].mean(0)[None] * sp
                pts.insert(0 if pos == 0 else len(pts), c)
        pts = np.vstack(pts)
        if len(pts) > 3:  # smooth the interior, keep the end points fixed
            sm = ndimage.uniform_filter1d(pts, 3, axis=0, mode="nearest")
            sm[0], sm[-1] = pts[0], pts[-1]
            pts = sm
        length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
        free = [k for k, n in enumerate(ends) if n < 0 or nodes[n][0] == "endpoint"]
        length += sum(float(radii[0 if k == 0 else -1]) for k in set(free))
        hu = float(np.asarray(ct)[tuple(vox.T)].mean()) if ct is not None else None
        out_branches.append(Branch(i, vox, ends, length, radii, hu, bool(free)))
        for n in ends:
            if n >= 0:
                out_nodes[n].branches.append(i)
    return VesselGraph(shape, spacing, skel, radius, out_branches, out_nodes)


def summarize_tree(graph: VesselGraph, branch_ids=None) -> dict:
    """Branch count, centerline length (mm), length-weighted mean and max radius (mm), terminal
    branches, for the given branches (default: all)."""
    ids = range(len(graph.branches)) if branch_ids is None else branch_ids
    bs = [graph.branches[i] for i in ids]
    if not bs:
        return {"branches": 0, "total_length_mm": 0.0, "mean_radius_mm": 0.0, "max_radius_mm": 0.0,
                "terminal_branches": 0}
    lengths = np.array([max(b.length_mm, 1e-6) for b in bs])
    radii = np.array([b.mean_radius_mm for b in bs])
    return {
        "branches": len(bs),
        "total_length_mm": round(float(lengths.sum()), 2),
        "mean_radius_mm": round(float((lengths * radii).sum() / lengths.sum()), 3),
        "max_radius_mm": round(float(max(b.max_radius_mm for b in bs)), 3),
        "terminal_branches": int(sum(b.is_terminal for b in bs)),
    }


# --------------------------------------------------------------------------------------------------


def median(values: np.ndarray) -> np.float64:
    """np.median of a non-empty 1-D float array without NaNs, the same value (its order statistics,
    the mean of the middle two as (a + b) / 2), without np.median's overhead on short arrays."""
    n = len(values)
    half = n // 2
    if n % 2:
        return np.partition(values, half)[half]
    part = np.partition(values, [half - 1, half])
    return (part[half - 1] + part[half]) / 2


def feature_indices(background: np.ndarray, spacing) -> np.ndarray:
    """(3, ...) int32 indices of each voxel's nearest zero voxel of `background` (mm): scipy's feature
    transform without the full-volume distance map (callers need it at a few voxels only)."""
    return ndimage.distance_transform_edt(background, sampling=spacing, return_distances=False, return_indices=True)


def values_in_box_at(values: np.ndarray, box: tuple[slice, ...], points: np.ndarray, fill) -> np.ndarray:
    """values (given on `box` only) at points ((n, 3) voxel indices of the whole array); fill outside."""
    lo = np.array([b.start for b in box])
    local = points - lo
    inside = np.all((local >= 0) & (local < values.shape), axis=1)
    out = np.full(len(points), fill, values.dtype)
    out[inside] = values[tuple(local[inside].T)]
    return out


def distances_at(ind: np.ndarray, points: tuple, spacing) -> np.ndarray:
    """distance_transform_edt's distances (mm) at `points` (np.nonzero style) from its feature indices,
    with scipy's own arithmetic and order of operations (the same floats)."""
    total = None
    for axis, s in enumerate(np.asarray(spacing, np.float64)):
        t = (ind[axis][points] - points[axis]).astype(np.float64)
        t *= s
        t *= t
        total = t if total is None else total + t
    return np.sqrt(total)


def _voxel_adjacency(coords: np.ndarray, shape) -> sparse.csr_matrix:
    """26-neighbour adjacency between skeleton voxels (rows of coords)."""
    n = len(coords)
    flat = np.ravel_multi_index(coords.T, shape)
    order = np.argsort(flat)
    sorted_flat = flat[order]
    rows, cols = [], []
    for off in _OFFSETS:
        nb = coords + off
        ok = np.all((nb >= 0) & (nb < np.asarray(shape)), axis=1)
        idx = np.flatnonzero(ok)
        f = np.ravel_multi_index(nb[idx].T, shape)
        pos = np.searchsorted(sorted_flat, f)
        pos = np.minimum(pos, n - 1)
        hit = sorted_flat[pos] == f
        rows.append(idx[hit])
        cols.append(order[pos[hit]])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))


def _trace(coords: np.ndarray, shape):
    """Branches [(ordered voxels, (node_a, node_b))] and nodes [(kind, voxels)] of a skeleton."""
    n = len(coords)
    if n == 0:
        return [], []
    adj = _voxel_adjacency(coords, shape)
    degree = np.asarray(adj.sum(axis=1)).ravel()
    is_junction = degree >= 3
    nodes: list[tuple[str, np.ndarray]] = []
    node_of = np.full(n, -1)
    # Junction voxels that touch form one node.
    jidx = np.flatnonzero(is_junction)
    if len(jidx):
        _, comp = csgraph.connected_components(adj[jidx][:, jidx], directed=False)
        order = np.argsort(comp, kind="stable")  # each node's voxels in increasing order
        bounds = np.searchsorted(comp[order], np.arange(comp.max() + 2))
        for c in range(comp.max() + 1):
            members = jidx[order[bounds[c]:bounds[c + 1]]]
            node_of[members] = len(nodes)
            nodes.append(("junction", coords[members]))
    # Chains: connected runs of non-junction voxels (each has at most two chain neighbours).
    cidx = np.flatnonzero(~is_junction)
    branches = []
    if len(cidx):
        chain_adj = adj[cidx][:, cidx]
        chain_adj.sort_indices()
        _, comp = csgraph.connected_components(chain_adj, directed=False)
        order = np.argsort(comp, kind="stable")
        bounds = np.searchsorted(comp[order], np.arange(comp.max() + 2))
        # neighbour lists as Python lists: the walks below visit every voxel once
        chain_lists = (chain_adj.indptr.tolist(), chain_adj.indices.tolist())
        adj_ptr, adj_ind, node_of_list = adj.indptr.tolist(), adj.indices.tolist(), node_of.tolist()
        for c in range(comp.max() + 1):
            members = order[bounds[c]:bounds[c + 1]]  # positions in cidx
            path = _order_chain(members, chain_adj, chain_lists)
            vox = coords[cidx[path]]
            ends = []
            for end in (int(cidx[path[0]]), int(cidx[path[-1]])):
                nb = adj_ind[adj_ptr[end]:adj_ptr[end + 1]]
                touching = [node_of_list[k] for k in nb if node_of_list[k] >= 0]
                ends.append(touching)
            a, b = _assign_ends(ends, len(path))
            if a is None:  # free end
                a = len(nodes)
                nodes.append(("endpoint", vox[:1]))
            if b is None:
                if len(path) == 1 and not ends[0]:
                    b = a  # isolated single voxel: one endpoint node
                else:
                    b = len(nodes)
                    nodes.append(("endpoint", vox[-1:]))
            branches.append((vox, (a, b)))
    # A blob whose skeleton is all junction voxels (no chain leaves it) becomes one short branch.
    touched = {x for _, ends in branches for x in ends}
    for j, (kind, vox) in enumerate(list(nodes)):
        if kind == "junction" and j not in touched:
            centred = vox - vox.mean(axis=0)
            axis = np.linalg.svd(centred.astype(float), full_matrices=False)[2][0]
            vox = vox[np.argsort(centred @ axis)]  # along its longest extent
            nodes[j] = ("endpoint", vox[:1])
            branches.append((vox, (j, j)))
    return _drop_spurious_loops(branches, nodes)


def _order_chain(members: np.ndarray, chain_adj: sparse.csr_matrix, lists: tuple[list, list] | None = None
                 ) -> np.ndarray:
    """Order the voxels of one chain from one end to the other (a cycle from any voxel). `lists`:
    chain_adj's indptr and indices as Python lists, when the caller has them."""
    if len(members) == 1:
        return members
    indptr, indices = lists or (chain_adj.indptr.tolist(), chain_adj.indices.tolist())
    mset = set(members.tolist())
    nbrs = {m: [k for k in indices[indptr[m]:indptr[m + 1]] if k in mset] for m in members.tolist()}
    start = next((m for m, nb in nbrs.items() if len(nb) <= 1), int(members[0]))
    path, prev, cur = [start], -1, start
    seen = {start}
    while True:
        nxt = [k for k in nbrs[cur] if k != prev and k not in seen]
        if not nxt:
            break
        prev, cur = cur, nxt[0]
        seen.add(cur)
        path.append(cur)
    return np.asarray(path)


def _assign_ends(ends, length):
    """Node ids at the two ends of a chain (None: free endpoint)."""
    first, last = ends
    if length == 1:
        # One voxel between (up to) two junctions.
        uniq = list(dict.fromkeys(first))
        if len(uniq) == 1 and len(first) > 1:
            # Both its neighbours lie in one junction cluster: a staircase step that leaves and
            # re-enters the junction, not a spur (a loop that _drop_spurious_loops absorbs).
            return uniq[0], uniq[0]
        a = uniq[0] if uniq else None
        b = uniq[1] if len(uniq) > 1 else None
        return a, b
    a = first[0] if first else None
    b = last[0] if last else None
    return a, b


def _drop_spurious_loops(branches, nodes):
    """Absorb 1-2 voxel chains that leave and re-enter the same junction (voxel staircase
    artefacts), then join branches through junctions left with only two of them."""
    keep = []
    for vox, (a, b) in branches:
        if a == b and nodes[a][0] == "junction" and len(vox) <= 2:
            nodes[a] = ("junction", np.vstack([nodes[a][1], vox]))
            continue
        keep.append((vox, (a, b)))
    return _merge_pass_through(keep, nodes)


def _merge_pass_through(branches, nodes):
    branches = dict(enumerate(branches))
    incident: dict[int, list[int]] = {}
    for i, (_, ends) in branches.items():
        for n in ends:
            incident.setdefault(n, []).append(i)
    alive = set(range(len(nodes)))
    next_key = len(branches)
    for n in range(len(nodes)):
        inc = incident.get(n, [])
        if nodes[n][0] != "junction" or len(inc) != 2 or inc[0] == inc[1]:
            continue
        i, j = inc
        vi, ei = branches.pop(i)
        vj, ej = branches.pop(j)
        if ei[1] != n:  # orient i to end at n, j to start at n
            vi, ei = vi[::-1], (ei[1], ei[0])
        if ej[0] != n:
            vj, ej = vj[::-1], (ej[1], ej[0])
        nv = nodes[n][1]
        nv = nv[np.argsort(np.linalg.norm(nv - vi[-1], axis=1))]
        new = next_key
        next_key += 1
        branches[new] = (np.vstack([vi, nv, vj]), (ei[0], ej[1]))
        for m in (ei[0], ej[1]):
            incident[m] = [new if k in (i, j) else k for k in incident.get(m, [])]
        alive.discard(n)
    renumber = {old: k for k, old in enumerate(sorted(alive))}
    out_nodes = [nodes[old] for old in sorted(alive)]
    out_branches = [(v, (renumber[a], renumber[b])) for v, (a, b) in branches.values()]
    return out_branches, out_nodes
