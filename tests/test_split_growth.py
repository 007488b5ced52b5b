"""Growth of the portal and hepatic trees (livervessels/split_growth.py) on hand-built branch graphs
whose answers are worked out by hand: least summed -ln(affinity) paths, thick vessels first, the
cost of climbing into a thicker vessel, the HU and turning-back costs, soft roots; subtree moves
by HU evidence; orphan and intensity roots; the evidence per branch (margins as sums of link
costs, weakest links, climbs, depths, neighbours of the other tree) and its summary; and, on tubes
drawn in mm, the trees grown through a crossing. (The turning-back cost's values are
tests/test_portal_hepatic.py's.)"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from livervessels import split_growth as growth
from livervessels.split_junctions import junction_affinities
from livervessels.split_types import HEPATIC, PORTAL, SplitParams
from livervessels.vessel_graph import Branch, Node, VesselGraph, build_vessel_graph

from synthetic_ct import tube_mask

P, H = PORTAL, HEPATIC
# the growth parameters the hand-worked answers below use (the defaults when written)
GROWTH = SplitParams(radius_bin_factor=0.6, upstream_weight=1.0, radius_log_sigma=0.15, tree_intensity_weight=0.5)


def _graph(branch_voxels=(), spacing=(1.0, 1.0, 1.0), radii=None, lengths=None) -> VesselGraph:
    """A VesselGraph of unconnected branches with the given centerline voxels (no nodes)."""
    branches = []
    for i, vox in enumerate(branch_voxels):
        vox = np.asarray(vox, np.int64).reshape(-1, 3)
        r = np.full(len(vox), 1.0 if radii is None else radii[i])
        branches.append(Branch(i, vox, (-1, -1), 10.0 if lengths is None else lengths[i], r, None, False))
    top = np.max([b.voxels.max(axis=0) for b in branches], axis=0) if branches else np.zeros(3, np.int64)
    shape = tuple(int(n) + 1 for n in top)
    return VesselGraph(shape, spacing, np.zeros(shape, bool), np.zeros(shape, np.float32), branches, [])


def _edges(links: dict[tuple[int, int], float]) -> list[tuple[float, int, int, float]]:
    """Edges (affinity, a, b, probability) from {(a, b): affinity}; the growth reads the affinity only."""
    return [(w, a, b, 0.5) for (a, b), w in links.items()]


def _grow(links, seeds, radius, p=GROWTH, **kw):
    seed_label = np.asarray(seeds, np.uint8)
    return growth.grow_trees(len(seed_label), _edges(links), seed_label, _graph(), p, None,
                             radius=np.asarray(radius, float), **kw)


# ---- growing the trees ------------------------------------------------------------------------------


def test_trees_meet_at_the_weakest_contact_of_a_chain():
    # Portal seed 0 ... hepatic seed 4, equal radii, one weak link (2-3): each branch goes to the
    # seed whose summed -ln(affinity) is least, and the one link between the trees is refused.
    labels, refused, parent = _grow({(0, 1): 0.9, (1, 2): 0.9, (2, 3): 0.1, (3, 4): 0.9}, [P, 0, 0, 0, H], [2.0] * 5)
    assert labels.tolist() == [P, P, P, H, H]
    assert parent.tolist() == [-1, 0, 1, 4, -1]
    assert refused == 1


def test_a_branch_goes_to_the_tree_with_the_least_summed_cost_not_the_best_weakest_link():
    # Branch 3 is three links of 0.5 from portal (summed cost 3 ln 2 = 2.08, weakest 0.5) and one
    # link of 0.2 from hepatic (cost 1.61, weakest 0.2): the sum decides.
    labels, _, parent = _grow({(0, 1): 0.5, (1, 2): 0.5, (2, 3): 0.5, (3, 4): 0.2}, [P, 0, 0, 0, H], [2.0] * 5)
    assert labels.tolist() == [P, P, P, H, H]
    assert parent[3] == 4


# Hepatic seed 0 (5 mm) - thin vessel 1 (1 mm) - thick vessel 2 (4 mm) - portal seed 3 (5 mm); the
# thick vessel's own link to the portal seed is weak.
_CLIMB_RADII = [5.0, 1.0, 4.0, 5.0]
_CLIMB_SEEDS = [H, 0, 0, P]


def _climb_links(w_portal: float):
    return {(0, 1): 1.0, (1, 2): 1.0, (2, 3): w_portal}


def test_thick_vessels_are_labelled_first():
    # Growing in radius bins, the 4 mm vessel is labelled before the 1 mm one exists for the
    # hepatic tree: it can only come from the portal seed. Without bins (and without the climb
    # cost) the hepatic tree reaches it for free through the thin vessel.
    no_climb = dict(upstream_weight=0.0)
    labels, _, _ = _grow(_climb_links(0.3), _CLIMB_SEEDS, _CLIMB_RADII, replace(GROWTH, **no_climb))
    assert labels[2] == P
    labels, _, _ = _grow(_climb_links(0.3), _CLIMB_SEEDS, _CLIMB_RADII,
                         replace(GROWTH, radius_bin_factor=1.0, **no_climb))
    assert labels[2] == H


@pytest.mark.parametrize("cost_portal, expected", [(6.9, P), (7.2, H)])
def test_climbing_into_a_thicker_vessel_costs_its_log_radius_ratio_over_sigma_squared(cost_portal, expected):
    # Without bins: from the 1 mm vessel into the 4 mm one costs (ln 4 / sigma)^2 with sigma =
    # hypot(0.15, 0.5 x 1 mm voxel / 1 mm) = 0.522: 7.05. The portal seed's own link decides
    # whether it is dearer.
    p = replace(GROWTH, radius_bin_factor=1.0)
    climb = (np.log(4.0) / np.hypot(p.radius_log_sigma, 0.5)) ** 2
    assert 6.9 < climb < 7.2
    labels, _, parent = _grow(_climb_links(np.exp(-cost_portal)), _CLIMB_SEEDS, _CLIMB_RADII, p)
    assert labels[2] == expected
    assert parent[2] == (3 if expected == P else 1)


@pytest.mark.parametrize("log_odds, expected", [(-0.8, P), (-1.1, H), (3.0, P), (-3.0, H)])
def test_hu_evidence_adds_minus_log_p_of_the_tree(log_odds, expected):
    # Branch 1 between the seeds: portal link 0.8 (cost 0.223), hepatic link 0.5 (0.693). Each tree
    # adds 0.5 x -log P(tree | HU); the difference of those is -0.5 x log-odds, so the hepatic tree
    # wins when -0.5 L > 0.693 - 0.223, i.e. L < -0.94.
    labels, _, _ = _grow({(0, 1): 0.8, (1, 2): 0.5}, [P, 0, H], [2.0] * 3, log_odds=np.array([0.0, log_odds, 0.0]))
    assert labels[1] == expected


def test_turning_back_towards_the_root_costs_what_radial_says():
    # Branch 1 between the seeds; radial[(a, b, tree)] is added when that tree steps from a into b.
    graph = _graph()
    for links, radial, expected in (
            ({(0, 1): 0.7, (1, 2): 0.8}, {}, H),  # hepatic's link is the stronger: 0.223 against 0.357
            ({(0, 1): 0.7, (1, 2): 0.8}, {(2, 1, H): 0.2}, P),  # its step turns back: 0.423 > 0.357
            ({(0, 1): 0.7, (1, 2): 0.8}, {(0, 1, H): 5.0, (2, 1, P): 5.0}, H),  # steps no tree takes
            ({(0, 1): 0.8, (1, 2): 0.7}, {}, P),
            ({(0, 1): 0.8, (1, 2): 0.7}, {(0, 1, P): 0.2}, H)):
        labels, _, _ = growth.grow_trees(3, _edges(links), np.array([P, 0, H], np.uint8), graph, GROWTH, radial,
                                         radius=np.full(3, 2.0))
        assert labels[1] == expected, (links, radial)


def test_soft_roots_root_their_tree_unless_the_other_tree_reaches_them_more_cheaply():
    # 0 portal seed - 1 - 2 hepatic seed, and a separate pair 3 - 4 no seed reaches.
    links, seeds, radius = {(0, 1): 0.5, (1, 2): 0.9, (3, 4): 0.9}, [P, 0, H, 0, 0], [2.0] * 5
    labels, _, parent = _grow(links, seeds, radius)
    assert labels.tolist() == [P, H, H, 0, 0] and parent.tolist() == [-1, 2, -1, -1, -1]
    labels, _, parent = _grow(links, seeds, radius, soft_roots={3: (H, 1.0)})
    assert labels[3:].tolist() == [H, H] and parent[3:].tolist() == [-1, 3]
    # branch 1 as a portal root: at cost 2 hepatic reaches it for 0.105; at cost 0.05 it is portal
    assert _grow(links, seeds, radius, soft_roots={1: (P, 2.0)})[0][1] == H
    assert _grow(links, seeds, radius, soft_roots={1: (P, 0.05)})[0][1] == P
    labels, refused, parent = _grow({}, np.zeros(0), np.zeros(0))
    assert len(labels) == len(parent) == 0 and refused == 0


def test_the_trees_grown_through_a_drawn_crossing_keep_each_vessel_whole():
    # Two tubes crossing at 90 degrees, portal seeded on one arm of the 2.5 mm vessel, hepatic on one
    # arm of the 2 mm one: each vessel's other arm is its straight continuation. Seeding the other
    # way round swaps the trees.
    spacing = (0.5, 0.5, 0.5)
    shape = (96, 96, 40)
    mask = (tube_mask(shape, spacing, [((4, 24, 10), (44, 24, 10))], 2.5)
            | tube_mask(shape, spacing, [((24, 4, 10), (24, 44, 10))], 2.0))
    graph = build_vessel_graph(mask, spacing)
    assert len(graph.branches) == 4
    p = SplitParams()
    edges, leaving = junction_affinities(graph, p)
    centre = {b.index: b.voxels.mean(axis=0) * spacing for b in graph.branches}
    (x_start,) = [b for b, c in centre.items() if c[0] < 20]
    (x_end,) = [b for b, c in centre.items() if c[0] > 28]
    (y_start,) = [b for b, c in centre.items() if c[1] < 20]
    (y_end,) = [b for b, c in centre.items() if c[1] > 28]
    for portal_arm, hepatic_arm, portal_end, hepatic_end in ((x_start, y_start, x_end, y_end),
                                                             (y_end, x_end, y_start, x_start)):
        seeds = np.zeros(4, np.uint8)
        seeds[portal_arm], seeds[hepatic_arm] = P, H
        radial = growth.radial_costs(leaving, growth.tree_roots(graph, seeds), p)
        labels, refused, parent = growth.grow_trees(4, edges, seeds, graph, p, radial)
        assert labels[portal_end] == P and labels[hepatic_end] == H
        assert parent[portal_end] == portal_arm and parent[hepatic_end] == hepatic_arm
        assert refused >= 1  # the contact between the trees


# ---- moving subtrees by HU evidence -----------------------------------------------------------------

# Portal seed 0 - 1 - 2 - 3, grown portal; hepatic seed 4 touches 3. HU log-odds (log P(portal) /
# P(hepatic)): branch 1 leans portal, 2 and 3 hepatic.
_FLIP_LABELS = np.array([P, P, P, P, H], np.uint8)
_FLIP_PARENT = np.array([-1, 0, 1, 2, -1])
_FLIP_SEEDS = np.array([P, 0, 0, 0, H], np.uint8)
FLIP = SplitParams(subtree_flip_margin=3.0, subtree_flip_mean=1.0)


def _flip_edges(contact: float):
    return _edges({(0, 1): 0.9, (1, 2): 0.5, (2, 3): 0.9, (3, 4): contact})


def test_a_subtree_whose_hu_outweighs_its_attachment_moves_to_the_other_tree():
    # Subtree {2, 3}: evidence 4 + 4 = 8 nats for hepatic, mean 4. Its best link to hepatic (3-4) costs
    # -ln(contact), its own link (1-2) ln 2: it moves when 8 > -ln(contact) - ln 2 + 3 (the margin),
    # i.e. -ln(contact) < 5.69. (Subtree {1, 2, 3} holds less evidence: 8 - 2.)
    log_odds = np.array([0.0, 2.0, -4.0, -4.0, 0.0])
    p = FLIP
    edges = _flip_edges(np.exp(-5.5))
    labels, _, moved = growth.flip_subtrees(_FLIP_LABELS, _FLIP_PARENT, edges, _FLIP_SEEDS, log_odds, p)
    assert labels.tolist() == [P, P, H, H, H] and moved == 1
    # the attachment to hepatic a little weaker: the evidence no longer outweighs it
    labels, parent, moved = growth.flip_subtrees(_FLIP_LABELS, _FLIP_PARENT, _flip_edges(np.exp(-6.0)), _FLIP_SEEDS,
                                                 log_odds, p)
    assert labels.tolist() == _FLIP_LABELS.tolist() and parent.tolist() == _FLIP_PARENT.tolist() and moved == 0
    # weak evidence (2 nats) or a mean under subtree_flip_mean: nothing moves
    weak = np.array([0.0, 2.0, -1.0, -1.0, 0.0])
    assert growth.flip_subtrees(_FLIP_LABELS, _FLIP_PARENT, _flip_edges(0.3), _FLIP_SEEDS, weak, p)[2] == 0
    assert growth.flip_subtrees(_FLIP_LABELS, _FLIP_PARENT, _flip_edges(0.3), _FLIP_SEEDS, log_odds,
                                replace(FLIP, subtree_flip_mean=4.5))[2] == 0
    # the inputs are not modified
    assert _FLIP_LABELS.tolist() == [P, P, P, P, H] and _FLIP_PARENT.tolist() == [-1, 0, 1, 2, -1]


@pytest.mark.parametrize("mirror", [False, True])
def test_a_subtree_moves_to_a_touching_branch_0_and_a_root_with_evidence_is_passed_over(mirror):
    # The same chain with the hepatic seed as branch 0, touching 3; the portal seed is 4 (4 - 1 - 2
    # - 3). The hepatic seed's HU look portal (10 nats): the most evidence, but a root never moves,
    # and the search goes on. Mirrored: the trees swapped, the evidence negated.
    a, b = (H, P) if not mirror else (P, H)
    labels = np.array([a, b, b, b, b], np.uint8)
    seeds = np.array([a, 0, 0, 0, b], np.uint8)
    parent = np.array([-1, 4, 1, 2, -1])
    edges = _edges({(4, 1): 0.9, (1, 2): 0.5, (2, 3): 0.9, (3, 0): 0.3})
    log_odds = np.array([10.0, 2.0, -4.0, -4.0, 0.0]) * (-1 if mirror else 1)
    new_labels, new_parent, moved = growth.flip_subtrees(labels, parent, edges, seeds, log_odds, FLIP)
    assert new_labels.tolist() == [a, b, a, a, b] and moved == 1
    assert new_parent[3] == 0 and new_parent[2] == 3


def test_a_moved_subtree_hangs_from_its_new_link():
    # After the move, following the growth parents from every moved branch must lead into the
    # hepatic tree through the new link (3 -> 4): branch 2 is reached over 4 -> 3 -> 2, two links
    # from the seed (the evidence computed from the parents: depth, weakest link, climb).
    log_odds = np.array([0.0, 2.0, -4.0, -4.0, 0.0])
    labels, parent, _ = growth.flip_subtrees(_FLIP_LABELS, _FLIP_PARENT, _flip_edges(0.3), _FLIP_SEEDS, log_odds,
                                             FLIP)
    assert labels.tolist() == [P, P, H, H, H]
    assert parent[3] == 4
    assert parent[2] == 3  # (returned: -1)
    assert growth.growth_depth(parent)[2] == 2


# ---- further roots -----------------------------------------------------------------------------------

# Voxel layout on a grid with 0.5 mm along y and 5 mm along z: the portal seed 12 voxels (6 mm) from
# the thick vessel along y, the hepatic seed 2 voxels (10 mm) from it along z. In voxels the hepatic
# seed is far nearer; in mm the portal one is (6 < 0.67 x 10).
_ORPHAN_VOXELS = [[(i, 0, 1) for i in range(3)],  # 0: portal seed
                  [(i, 12, 3) for i in range(3)],  # 1: hepatic seed
                  [(i, 12, 2) for i in range(3)],  # 2: thin vessel (1 mm), reached from 1
                  [(i, 12, 1) for i in range(3)]]  # 3: thick vessel (4 mm), reached from 2
_ORPHAN = dict(label=np.array([P, H, H, H], np.uint8), parent=np.array([-1, -1, 1, 2]),
               seed_label=np.array([P, H, 0, 0], np.uint8))
ORPHAN = SplitParams(orphan_climb_ratio=2.5, orphan_min_radius_mm=2.0, orphan_distance_ratio=0.67, root_cost_weight=3.0)


@pytest.mark.parametrize("spacing, expected", [((1.0, 0.5, 5.0), {3: (P, 3.0)}), ((1.0, 0.5, 3.0), {})])
def test_a_thick_vessel_reached_only_by_climbing_roots_itself_in_the_nearer_tree_in_mm(spacing, expected):
    # 4 mm reached through a 1 mm vessel: 4 >= 2.5 x 1 and >= 2 mm, cut off from its own tree. On the
    # second grid both seeds are 6 mm away: no clear call.
    graph = _graph(_ORPHAN_VOXELS, spacing)
    radius = np.array([5.0, 5.0, 1.0, 4.0])
    assert growth.orphan_roots(graph, radius=radius, p=ORPHAN, **_ORPHAN) == expected


@pytest.mark.parametrize("radii", [[5.0, 5.0, 1.0, 2.4], [5.0, 5.0, 0.7, 1.9], [5.0, 5.0, 2.0, 4.0]])
def test_vessels_that_did_not_climb_far_or_are_thin_are_no_orphans(radii):
    # 2.4 < 2.5 x 1 mm; 1.9 mm under orphan_min_radius_mm; 4 < 2.5 x 2 mm
    graph = _graph(_ORPHAN_VOXELS, (1.0, 0.5, 5.0))
    assert growth.orphan_roots(graph, radius=np.array(radii), p=ORPHAN, **_ORPHAN) == {}


# The same layout with the thin vessel first (index 0): [thin, portal seed, hepatic seed, thick]
_ORPHAN_FIRST = [_ORPHAN_VOXELS[i] for i in (2, 0, 1, 3)]


@pytest.mark.parametrize("spacing, tree", [((1.0, 0.5, 5.0), P), ((1.0, 5.0, 0.5), H)])
@pytest.mark.parametrize("climber_label", [P, H])
def test_an_orphan_of_either_label_hanging_from_branch_0_roots_itself_in_the_nearer_tree(spacing, tree,
                                                                                          climber_label):
    # portal seed 6 mm and hepatic seed 10 mm away, or 60 mm and 1 mm
    graph = _graph(_ORPHAN_FIRST, spacing)
    labels = np.array([climber_label, P, H, climber_label], np.uint8)
    parent = np.array([1 if climber_label == P else 2, -1, -1, 0])
    got = growth.orphan_roots(graph, labels, parent, np.array([0, P, H, 0], np.uint8), np.array([1.0, 5.0, 5.0, 4.0]),
                              ORPHAN)
    assert got == {3: (tree, 3.0)}


# exactly 2.5 x the thinnest vessel on its path; exactly the minimum radius
@pytest.mark.parametrize("radii, params", [([1.0, 5.0, 5.0, 2.5], {}),
                                           ([1.0, 5.0, 5.0, 4.0], {"orphan_min_radius_mm": 4.0})])
def test_an_orphan_may_sit_exactly_at_the_climb_ratio_and_the_minimum_radius(radii, params):
    graph = _graph(_ORPHAN_FIRST, (1.0, 0.5, 5.0))
    got = growth.orphan_roots(graph, np.array([H, P, H, H], np.uint8), np.array([2, -1, -1, 0]),
                              np.array([0, P, H, 0], np.uint8), np.array(radii), replace(ORPHAN, **params))
    assert got == {3: (P, 3.0)}


def test_the_climb_is_measured_from_the_thinnest_vessel_on_the_whole_path():
    # hepatic seed 1 (5 mm) -> 2 (1 mm) -> 4 (1.5 mm) -> 3 (3 mm): 3 >= 2.5 x 1 mm (the thinnest on
    # its path), though not 2.5 x its parent's 1.5 mm
    voxels = _ORPHAN_VOXELS + [[(i, 12, 4) for i in range(3)]]
    graph = _graph(voxels, (1.0, 0.5, 5.0))
    labels = np.array([P, H, H, H, H], np.uint8)
    got = growth.orphan_roots(graph, labels, np.array([-1, -1, 1, 4, 2]), np.array([P, H, 0, 0, 0], np.uint8),
                              np.array([5.0, 5.0, 1.0, 3.0, 1.5]), replace(ORPHAN, orphan_min_radius_mm=1.0,
                                                                          orphan_distance_ratio=1.0))
    assert 3 in got and 4 not in got


def test_tree_roots_are_the_centroids_of_the_seed_branches_in_mm():
    graph = _graph(_ORPHAN_VOXELS, (1.0, 0.5, 5.0))
    roots = growth.tree_roots(graph, np.array([P, H, 0, H], np.uint8))
    np.testing.assert_allclose(roots[P], [1.0, 0.0, 5.0])
    np.testing.assert_allclose(roots[H], [1.0, 6.0, 10.0])  # voxels y 12, z 3 and 1
    assert set(growth.tree_roots(graph, np.array([0, H, 0, 0], np.uint8))) == {H}


def test_thick_long_branches_whose_hu_names_the_other_tree_root_themselves_there():
    #            seed   ok     ok     thin   short  weak   unlabelled
    label = np.array([P, P, H, P, P, P, 0], np.uint8)
    seeds = np.array([P, 0, 0, 0, 0, 0, 0], np.uint8)
    log_odds = np.array([-9.0, -4.0, 3.5, -5.0, -5.0, -2.5, -5.0])  # log P(portal) / P(hepatic)
    radius = np.array([3.0, 3.0, 3.0, 1.5, 3.0, 3.0, 3.0])
    graph = _graph([[(0, 0, 0)]] * 7, lengths=[10.0, 10.0, 10.0, 10.0, 4.0, 10.0, 10.0])
    p = SplitParams(intensity_root_log_odds=3.0, intensity_root_min_radius_mm=2.0, intensity_root_min_length_mm=5.0,
                    intensity_root_cost=0.0)
    assert growth.intensity_roots(graph, label, log_odds, radius, seeds, p) == {1: (H, 0.0), 2: (P, 0.0)}
    assert growth.intensity_roots(graph, label, log_odds, radius, seeds, replace(p, intensity_root_cost=1.5)) == \
        {1: (H, 1.5), 2: (P, 1.5)}
    assert growth.intensity_roots(graph, label, log_odds, radius, seeds, replace(p, intensity_root_log_odds=0.0)) == {}


# ---- the evidence per branch ------------------------------------------------------------------------


def test_link_costs_keep_the_stronger_link_of_a_pair_and_parent_link_cost_reads_them():
    edges = _edges({(0, 1): 0.5, (2, 1): 0.25, (1, 1): 0.01})
    edges.append((0.8, 1, 0, 0.5))  # the pair 0-1 met again at another junction
    links = growth.link_costs(edges)
    assert links.keys() == {(0, 1), (1, 2)}  # ordered pairs; a branch's link to itself is none
    assert links[(0, 1)] == pytest.approx(-np.log(0.8)) and links[(1, 2)] == pytest.approx(np.log(4.0))
    # per branch, the link it was reached over; 0 for roots, unreached branches and missing links
    np.testing.assert_allclose(growth.parent_link_cost(edges, np.array([-1, 0, 1, -1, 0])),
                               [0.0, -np.log(0.8), np.log(4.0), 0.0, 0.0])


def test_growth_depth_counts_the_links_from_each_growth_root():
    # parents listed in any order: 0 <- 2 <- 1 <- 3, and 4 <- 5, 6 unreached
    parent = np.array([-1, 2, 0, 1, -1, 4, -1])
    assert growth.growth_depth(parent).tolist() == [0, 2, 1, 3, 0, 1, 0]
    rng = np.random.default_rng(0)
    for _ in range(5):  # a random forest: against a direct walk up the parents
        n = 30
        order = rng.permutation(n)
        parent = np.full(n, -1)
        for k in range(1, n):
            if rng.random() < 0.85:
                parent[order[k]] = order[rng.integers(0, k)]
        walk = []
        for b in range(n):
            d, x = 0, b
            while parent[x] >= 0:
                d, x = d + 1, parent[x]
            walk.append(d)
        assert growth.growth_depth(parent).tolist() == walk


def test_path_risks_are_the_weakest_link_and_largest_climb_from_the_root():
    # chain 0 -> 1 -> 2 -> 3, radii 4, 2, 3, 1 mm; links 0.5, 0.9, 0.2
    edges = _edges({(0, 1): 0.5, (1, 2): 0.9, (2, 3): 0.2})
    risks = growth.path_risks(edges, np.array([-1, 0, 1, 2]), np.array([4.0, 2.0, 3.0, 1.0]))
    np.testing.assert_allclose(risks["weakest_link"], [0.0, np.log(2), np.log(2), -np.log(0.2)])
    # climb: ln(radius / thinnest before it), never below the path's earlier climbs (or 0)
    np.testing.assert_allclose(risks["climb"], [0.0, 0.0, np.log(1.5), np.log(1.5)])


def test_other_tree_neighbours_is_the_share_of_linked_branches_with_the_other_label():
    # 0 meets 1 (same tree), 2 (other tree) and 3 (unlabelled), 1-2 linked twice (one neighbour)
    edges = _edges({(0, 1): 0.9, (0, 2): 0.9, (0, 3): 0.9, (1, 2): 0.9, (2, 1): 0.5, (4, 4): 0.9})
    share = growth.other_tree_neighbours(edges, np.array([P, P, H, 0, P], np.uint8))
    np.testing.assert_allclose(share, [1 / 3, 1 / 2, 2 / 2, 0.0, 0.0])
    assert growth.other_tree_neighbours([], np.array([P, H])).tolist() == [0.0, 0.0]


def test_a_branch_margin_is_the_difference_of_summed_link_costs_from_each_tree():
    # Portal seed 0 - 1 - 2 - hepatic seed 3, link probabilities 0.9, 0.8, 0.3 (the affinities differ:
    # margins use the probabilities). A path's cost is the sum of its links' -ln p.
    c01, c12, c23 = -np.log([0.9, 0.8, 0.3])
    edges = [(1.0, 0, 1, 0.9), (0.2, 1, 2, 0.8), (1.0, 2, 3, 0.3)]
    seeds = np.array([P, 0, 0, H], np.uint8)
    labels = np.array([P, P, P, H], np.uint8)
    expected = np.array([c01 + c12 + c23, c12 + c23 - c01, c23 - c01 - c12, c01 + c12 + c23])
    np.testing.assert_allclose(growth.branch_margin(4, edges, seeds, labels), expected, rtol=1e-6)
    # turning back towards the hepatic root on the step 3 -> 2 costs 0.5 more for hepatic paths
    with_radial = growth.branch_margin(4, edges, seeds, labels, {(3, 2, H): 0.5})
    np.testing.assert_allclose(with_radial, expected + [0.5, 0.5, 0.5, 0.0], rtol=1e-6)
    # and the step 1 -> 2 costs 0.25 more for portal paths: 2's own path and 3's portal one
    with_radial = growth.branch_margin(4, edges, seeds, labels, {(1, 2, P): 0.25})
    np.testing.assert_allclose(with_radial, expected + [0.0, 0.0, -0.25, 0.25], rtol=1e-6)
    # a pair met at two junctions (a loop) counts its more probable link, in either order
    for loop in ([(1.0, 0, 1, 0.5)] + edges, edges + [(1.0, 1, 0, 0.5)]):
        np.testing.assert_allclose(growth.branch_margin(4, loop, seeds, labels), expected, rtol=1e-6)
    # without portal branches the hepatic ones still get their margins
    all_hepatic = growth.branch_margin(4, edges, seeds, np.full(4, H, np.uint8))
    # (from the portal seed 0 minus from the hepatic seed 3, all links within the label)
    np.testing.assert_allclose(all_hepatic, [-(c01 + c12 + c23), c01 - (c12 + c23), c01 + c12 - c23, c01 + c12 + c23],
                               rtol=1e-6)
    # the own path stays within the label: hepatic 1 and portal 2 are each cut from their own seed
    # by the other tree's branches (-inf), as is an unlabelled branch (5); a portal branch no seed
    # reaches (a soft root's, 4) has no evidence either way (0)
    margin = growth.branch_margin(6, edges, np.r_[seeds, 0, 0], np.array([P, H, P, H, P, 0], np.uint8))
    np.testing.assert_allclose(margin[[0, 3]], [c01 + c12 + c23] * 2, rtol=1e-6)
    assert margin[[1, 2, 5]].tolist() == [-np.inf] * 3 and margin[4] == 0.0


def test_branch_core_radius_leaves_out_the_junction_bulge_measured_in_mm():
    # A branch leaving a junction (node radius 3.5 mm) along x: radii 6, 6, 6 inside the bulge, then
    # 2, 2, 3, 3. Beyond 3.5 mm of the node (1 mm voxels: x >= 4) the median is 2.5; with 0.5 mm
    # voxels the whole branch lies within the bulge and all of it counts (median 3).
    radius_mm = np.zeros((10, 1, 1), np.float32)
    radius_mm[0] = 3.5
    for spacing, kind, expected in (((1.0, 1.0, 1.0), "junction", 2.5), ((0.5, 0.5, 0.5), "junction", 3.0),
                                    ((1.0, 1.0, 1.0), "endpoint", 3.0)):
        nodes = [Node(0, kind, np.array([[0, 0, 0]]), [0]), Node(1, "endpoint", np.array([[8, 0, 0]]), [0])]
        branch = Branch(0, np.array([(x, 0, 0) for x in range(1, 8)]), (0, 1), 8.0,
                        np.array([6.0, 6.0, 6.0, 2.0, 2.0, 3.0, 3.0]), None, True)
        graph = VesselGraph((10, 1, 1), spacing, np.zeros((10, 1, 1), bool), radius_mm, [branch], nodes)
        assert growth.branch_core_radius(graph).tolist() == [expected], (spacing, kind)


def test_radial_costs_do_not_depend_on_where_the_liver_lies_or_how_it_is_turned():
    rng = np.random.default_rng(0)
    roots = {P: rng.normal(size=3) * 30, H: rng.normal(size=3) * 30}
    leaving = {(i, i + 1): (u / np.linalg.norm(u), rng.normal(size=3) * 40)
               for i, u in enumerate(rng.normal(size=(8, 3)))}
    leaving[(20, 21)] = (np.zeros(3), np.ones(3))  # no axis: no cost
    leaving[(22, 23)] = (np.array([1.0, 0.0, 0.0]), roots[P].copy())  # at the portal root itself
    p = SplitParams()
    cost = growth.radial_costs(leaving, roots, p)
    assert not {(20, 21, P), (20, 21, H), (22, 23, P)} & cost.keys() and (22, 23, H) in cost
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    shift = rng.normal(size=3) * 100
    moved = growth.radial_costs({k: (rotation @ u, rotation @ at + shift) for k, (u, at) in leaving.items()},
                                {lab: rotation @ r + shift for lab, r in roots.items()}, p)
    assert moved.keys() == cost.keys()
    for key, value in cost.items():
        assert 0 < value <= p.radial_weight
        assert moved[key] == pytest.approx(value, rel=1e-9, abs=1e-12)


def test_confidence_summary_averages_over_the_labelled_branches():
    graph = _graph([[(0, 0, 0)]] * 4, radii=[2.0, 1.006, 4.0, 1.0], lengths=[10.0, 20.04, 5.0, 1.0])
    labels = np.array([P, H, P, 0], np.uint8)
    conf = np.array([0.91234, 0.5, 0.6, 0.25])
    p = SplitParams(low_confidence=0.6, least_confident_listed=5)
    summary = growth.confidence_summary(graph, labels, conf, p)
    assert summary["confidence"] == 0.671  # (0.91234 + 0.5 + 0.6) / 3 = 0.67078: the unlabelled one does not count
    # weighted by volume, length x radius^2: 40, 20.28, 80
    w = np.array([10.0 * 2.0 ** 2, 20.04 * 1.006 ** 2, 5.0 * 4.0 ** 2])
    assert summary["confidence_volume_weighted"] == round(float((w * conf[:3]).sum() / w.sum()), 3) == 0.675
    assert summary["low_confidence_branches"] == 1  # below 0.6: 0.6 itself is not low
    listed = summary["least_confident_branches"]
    assert [(x["branch"], x["label"]) for x in listed] == [(1, "hepatic"), (2, "portal"), (0, "portal")]
    assert listed[0] == {"branch": 1, "label": "hepatic", "confidence": 0.5, "length_mm": 20.0, "mean_radius_mm": 1.01}
    assert listed[2]["confidence"] == 0.912
    assert len(growth.confidence_summary(graph, labels, conf, replace(p, least_confident_listed=2))
                                         ["least_confident_branches"]) == 2
    assert growth.confidence_summary(graph, np.zeros(4, np.uint8), conf, p) == {
        "confidence": 0.0, "low_confidence_branches": 0, "least_confident_branches": []}


@pytest.mark.parametrize("hepatic_cost, expected", [(0.16, P), (0.08, H)])
def test_growing_into_a_thicker_vessel_costs_the_log_radius_ratio_over_its_sigma_squared(hepatic_cost, expected):
    # Branch 1 (1 mm) between the portal seed 0 (0.5 mm, a free link) and the hepatic seed 2 (4 mm,
    # a link costing hepatic_cost). From portal it doubles the radius: sigma = hypot(0.2, half a
    # 2 mm voxel / 0.5 mm) = 2.01, cost (ln 2 / 2.01)^2 = 0.119; from hepatic it is thinner: no extra.
    p = SplitParams(radius_log_sigma=0.2, upstream_weight=1.0, radius_bin_factor=1.0)
    edges = [(1.0, 0, 1, 0.5), (float(np.exp(-hepatic_cost)), 2, 1, 0.5)]
    label, refused, parent = growth.grow_trees(3, edges, np.array([P, 0, H], np.uint8), _graph(spacing=(2.0, 2.0, 2.0)),
                                               p, radius=np.array([0.5, 1.0, 4.0]))
    assert label[1] == expected and parent[1] == (0 if expected == P else 2)
    assert refused >= 1  # the losing tree's link to 1


def test_every_contact_between_the_trees_is_counted():
    # two separate places where the trees meet: portal 0 - 1 - hepatic 2 and portal 3 - 4 - hepatic 5;
    # 1 and 4 each go to one tree, and the other's link into each is refused
    labels, refused, _ = _grow({(0, 1): 0.9, (1, 2): 0.5, (3, 4): 0.5, (4, 5): 0.9}, [P, 0, H, P, 0, H], [1.0] * 6)
    assert labels.tolist() == [P, P, H, P, H, H]
    assert refused >= 2
