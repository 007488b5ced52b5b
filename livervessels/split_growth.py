"""Growth of the portal and hepatic trees over the centerline graph (livervessels.portal_hepatic,
step 3): least-cost paths from the seeds with radius-climb and turning-back costs, thick vessels
first, orphan and intensity roots, subtree moves by HU evidence, and the evidence per branch that
the confidence model reads."""
from __future__ import annotations

import heapq

import numpy as np
from scipy import sparse, spatial
from scipy.sparse import csgraph

from livervessels.split_types import HEPATIC, PORTAL, TREE_NAMES, SplitParams
from livervessels.vessel_graph import VesselGraph, median


def tree_roots(graph: VesselGraph, seed_label: np.ndarray) -> dict[int, np.ndarray]:
    """Position (mm) of each tree's root: the centroid of its seed branches' centerlines."""
    sp = np.asarray(graph.spacing)
    roots = {}
    for lab in (PORTAL, HEPATIC):
        ids = np.flatnonzero(seed_label == lab)
        if len(ids):
            roots[lab] = np.vstack([graph.branches[i].voxels for i in ids]).mean(axis=0) * sp
    return roots


def radial_costs(leaving: dict, roots: dict[int, np.ndarray], p: SplitParams) -> dict[tuple[int, int, int], float]:
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


def branch_core_radius(graph: VesselGraph) -> np.ndarray:
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


def grow_trees(nb, edges, seed_label, graph, p: SplitParams, radial: dict | None = None, *,
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
    So does turning back towards the tree's root (`radial`, from radial_costs), and, where the
    scan shows the trees' HU difference, a branch whose HU speaks for the other tree (-log P(tree |
    HU) from `log_odds`, log P(portal) / P(hepatic)). soft_roots {branch: (label, cost)}: further
    roots a tree takes at that cost unless the other tree reaches them more cheaply.
    Returns the branch labels, the number of links refused between the trees, and the branch each
    branch was reached from (-1: a seed or unreached)."""
    radius = branch_core_radius(graph) if radius is None else radius
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


def flip_subtrees(label: np.ndarray, parent: np.ndarray, edges, seed_label: np.ndarray, log_odds: np.ndarray,
                   p: SplitParams) -> tuple[np.ndarray, np.ndarray, int]:
    """Hand a grown subtree to the other tree where the scan's intensity evidence over the whole
    subtree outweighs the junction evidence that attached it: a subtree should not sit in the wrong
    tree because one contact looked like a branching, but neither should it switch on weak evidence.

    For each branch b (not a seed) and its growth subtree S: S moves when the summed log-odds for
    the other tree over S exceed [cost of S's best link to the other tree - cost of b's own link]
    + subtree_flip_margin, and their mean reaches subtree_flip_mean. Largest evidence first; a
    subtree holding a seed or a moved branch stays.
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
            # the subtree now hangs from its new link: the growth path from its entry branch up to b
            # is walked the other way (no moved branch is left looking like a root)
            chain = [best[2]]
            while chain[-1] != b:
                chain.append(int(parent[chain[-1]]))
            for child, up in zip(chain[:-1], chain[1:]):
                parent[up] = child
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


def orphan_roots(graph: VesselGraph, label: np.ndarray, parent: np.ndarray, seed_label: np.ndarray,
                  radius: np.ndarray, p: SplitParams) -> dict[int, tuple[int, float]]:
    """{branch: (label, cost)} for thick branches the growth reached only by climbing from vessels
    orphan_climb_ratio times thinner (radii shrink away from a tree's root, so such a vessel lost
    its own connection), labelled by the nearer root (a clear call only) at the usual root cost."""
    nb = len(label)
    path_min = np.full(nb, np.inf)
    order = np.argsort(growth_depth(parent), kind="stable")
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


def intensity_roots(graph: VesselGraph, label: np.ndarray, log_odds: np.ndarray, radius: np.ndarray,
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


def path_risks(edges, parent: np.ndarray, radius: np.ndarray) -> dict[str, np.ndarray]:
    """Per branch, along its growth path from the root: the weakest link (largest -ln probability)
    and the largest climb, ln(radius / thinnest radius before it)."""
    nb = len(parent)
    link = link_costs(edges)
    weakest, climb, thinnest = np.zeros(nb), np.zeros(nb), radius.astype(float).copy()
    for b in np.argsort(growth_depth(parent), kind="stable"):  # parents before children
        a = parent[b]
        if a < 0:
            continue
        step = link.get((min(a, b), max(a, b)), 0.0)
        weakest[b] = max(weakest[a], step)
        climb[b] = max(climb[a], float(np.log(max(radius[b], 1e-3) / max(thinnest[a], 1e-3))))
        thinnest[b] = min(thinnest[a], radius[b])
    return {"weakest_link": weakest, "climb": climb}


def link_costs(edges) -> dict[tuple[int, int], float]:
    """{(a, b) with a < b: -ln affinity} of the links between branches (a pair met at two junctions:
    its stronger link)."""
    link: dict[tuple[int, int], float] = {}
    for w, a, b, _ in edges:
        if a != b:
            key = (min(a, b), max(a, b))
            link[key] = min(link.get(key, np.inf), -np.log(max(w, 1e-12)))
    return link


def parent_link_cost(edges, parent: np.ndarray) -> np.ndarray:
    """Per branch: -ln affinity of the link the growth reached it over (0 for roots and unreached)."""
    link = link_costs(edges)
    return np.array([0.0 if a < 0 else link.get((min(a, b), max(a, b)), 0.0)
                     for b, a in enumerate(parent.tolist())])


def other_tree_neighbours(edges, branch_label: np.ndarray) -> np.ndarray:
    """Per branch: the share of the branches linked to it at junctions that carry the other label."""
    nb = len(branch_label)
    pairs = np.array(sorted({(min(a, b), max(a, b)) for _, a, b, _ in edges if a != b}), np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(nb)
    a, b = np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]]
    other = (branch_label[a] > 0) & (branch_label[b] > 0) & (branch_label[a] != branch_label[b])
    total = np.bincount(a, minlength=nb)
    return np.bincount(a, weights=other.astype(float), minlength=nb) / np.maximum(total, 1)


def growth_depth(parent: np.ndarray) -> np.ndarray:
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


def branch_margin(nb, edges, seed_label, branch_label, radial: dict | None = None) -> np.ndarray:
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


def confidence_summary(graph, branch_label, conf, p: SplitParams) -> dict:
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
            {"branch": int(i), "label": TREE_NAMES[int(branch_label[i])], "confidence": round(float(conf[i]), 3),
             "length_mm": round(graph.branches[i].length_mm, 1),
             "mean_radius_mm": round(graph.branches[i].mean_radius_mm, 2)} for i in worst],
    }
