"""Junction explanation of the portal/hepatic split (livervessels/split_junctions.py) on tubes drawn
in mm: two vessels crossing are explained as two straight vessels, a Murray bifurcation as one
vessel, a thin vessel ending on a thick one as no part of it; the same affinities after flipping
the volume, after scaling spacing and lengths together, and by the greedy search; the
directions leaving a junction; the partitions the exact search enumerates; the junction regions on
hand-made graphs; and each pair term (angle, axis offset, radius, Murray scale) computed by hand."""
from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from livervessels.split_junctions import (
    _axis_offsets,
    _group_cost,
    _junction_regions,
    _PairTerms,
    _partitions,
    _region_pair_affinities,
    junction_affinities,
)
from livervessels.split_types import SplitParams
from livervessels.vessel_graph import build_vessel_graph

from synthetic_ct import tube_mask

SPACING = (0.5, 0.5, 0.5)
SHAPE = (96, 96, 40)  # 48 x 48 x 20 mm
CENTRE = np.array([24.0, 24.0, 10.0])


def _draw(segments, spacing=SPACING, shape=SHAPE) -> np.ndarray:
    """Union of tubes ((start mm, end mm, radius mm), ...)."""
    mask = np.zeros(shape, bool)
    for a, b, r in segments:
        mask |= tube_mask(shape, spacing, [(a, b)], r)
    return mask


def _crossing(angle_deg: float, dz: float = 0.0) -> list:
    """A 2.5 mm vessel along x through the centre, crossed by a 2 mm one at angle_deg (its axis dz
    mm above the first's: touching, not passing through, when dz > 0)."""
    d = 20 * np.array([np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg)), 0.0])
    other = CENTRE + [0, 0, dz]
    return [((4, 24, 10), (44, 24, 10), 2.5), (tuple(other - d), tuple(other + d), 2.0)]


def _links(edges) -> dict[frozenset, tuple[float, float]]:
    return {frozenset((a, b)): (w, q) for w, a, b, q in edges}


def _vessel_of(graph, branch: int) -> str:
    """'x' for branches on the vessel along x (y = 24 mm), else 'other'."""
    y = graph.branches[branch].voxels[:, 1].mean() * graph.spacing[1]
    return "x" if abs(y - 24.0) < 1.0 else "other"


def _internal(graph) -> set[int]:
    return {b.index for b in graph.branches if all(graph.nodes[n].kind == "junction" for n in b.nodes)}


@pytest.mark.parametrize("angle, dz", [(90, 0.0), (90, 2.0), (60, 0.0), (60, 2.0)])
def test_crossing_vessels_are_explained_as_two_straight_vessels(angle, dz):
    # Going straight on costs nothing; turning 60-90 degrees into the other vessel costs 1-2.25 per
    # turn: each arm's straight continuation is its vessel (affinity 1), the other vessel's arms are
    # not (the skeleton may split the crossing into two junctions with a short piece between).
    graph = build_vessel_graph(_draw(_crossing(angle, dz)), SPACING)
    edges, _ = junction_affinities(graph, SplitParams())
    inner = _internal(graph)
    arms = [b.index for b in graph.branches if b.index not in inner]
    assert len(arms) == 4 and sorted(_vessel_of(graph, b) for b in arms) == ["other", "other", "x", "x"]
    links = _links(edges)
    for a, b in itertools.combinations(arms, 2):
        w, q = links[frozenset((a, b))]
        assert 0 < w <= 1 and 0 < q < 1
        if _vessel_of(graph, a) == _vessel_of(graph, b):
            assert w == 1.0 and q > 0.9
        else:
            assert w < 0.05 and q < 0.05
    # a short piece inside the crossing goes with an arm of the most similar radius, as one vessel
    for s in inner:
        (other,) = [b for pair in links if s in pair for b in pair if b != s]
        assert links[frozenset((s, other))] == (1.0, pytest.approx(1.0, abs=1e-5))
        r = {b: graph.branches[b].mean_radius_mm for b in arms + [s]}
        assert abs(np.log(r[s] / r[other])) == pytest.approx(min(abs(np.log(r[s] / r[b])) for b in arms))


def test_a_bifurcation_obeying_murrays_law_is_one_vessel():
    # 3.0^3 = 27 ~ 2 x 2.4^3 = 27.6, children at +-30 degrees from the trunk's flow: the best
    # explanation groups all three ends, so every pair is one vessel.
    fork = (24, 24, 10)
    graph = build_vessel_graph(_draw([((4, 24, 10), fork, 3.0), (fork, (41, 34, 10), 2.4),
                                      (fork, (41, 14, 10), 2.4)]), SPACING)
    assert len(graph.branches) == 3
    edges, _ = junction_affinities(graph, SplitParams())
    assert len(edges) == 3
    for w, _, _, q in edges:
        assert w == 1.0 and q > 0.5


def _t_junction(flip_axis=None):
    """A 3 mm vessel along x with a 1.2 mm vessel ending on it at 90 degrees (towards +y):
    (graph, {'left'|'right'|'side': branch}) with left / right named in the unflipped frame."""
    mask = _draw([((4, 24, 10), (44, 24, 10), 3.0), ((24, 24, 10), (24, 44, 10), 1.2)])
    if flip_axis is not None:
        mask = np.flip(mask, flip_axis)
    graph = build_vessel_graph(mask, SPACING)
    assert len(graph.branches) == 3
    side = min(graph.branches, key=lambda b: b.mean_radius_mm).index
    x = {b.index: b.voxels[:, 0].mean() for b in graph.branches if b.index != side}
    left, right = sorted(x, key=x.get)
    if flip_axis == 0:
        left, right = right, left
    return graph, {"left": left, "right": right, "side": side}


def test_a_thin_vessel_ending_on_a_thick_one_is_no_part_of_it():
    # The thick vessel runs straight through: its halves are one vessel. The thin one meets it at
    # 90 degrees with a radius far from Murray's split: less likely one vessel with either half,
    # and equally linked to both (the geometry is mirror-symmetric).
    graph, name = _t_junction()
    links = _links(junction_affinities(graph, SplitParams())[0])
    w_through, q_through = links[frozenset((name["left"], name["right"]))]
    w_left, q_left = links[frozenset((name["left"], name["side"]))]
    w_right, q_right = links[frozenset((name["right"], name["side"]))]
    assert w_through == 1.0 and q_through > 0.9
    assert w_left < 1.0 and q_left < 0.5
    assert w_right == pytest.approx(w_left, rel=0.05) and q_right == pytest.approx(q_left, rel=0.05)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_flipping_the_volume_gives_the_same_affinities(axis):
    # Flow directions come from the geometry, not from the order of the voxels.
    graph, name = _t_junction()
    links = _links(junction_affinities(graph, SplitParams())[0])
    graph_f, name_f = _t_junction(axis)
    links_f = _links(junction_affinities(graph_f, SplitParams())[0])
    for a, b in itertools.combinations(("left", "right", "side"), 2):
        w, q = links[frozenset((name[a], name[b]))]
        w_f, q_f = links_f[frozenset((name_f[a], name_f[b]))]
        assert w_f == pytest.approx(w, abs=0.02) and q_f == pytest.approx(q, abs=0.02)


def test_scaling_the_spacing_with_the_lengths_changes_no_affinity():
    # The same mask on voxels twice as large, with the axis measured over twice the length: angles,
    # radius ratios and offsets over radii are the same, hence the same affinities (power-of-two
    # scaling: the same floats) and the same leaving directions at twice the position.
    mask = _draw(_crossing(60))
    edges, leaving = junction_affinities(build_vessel_graph(mask, SPACING), SplitParams())
    p2 = SplitParams(direction_reach_mm=2 * SplitParams().direction_reach_mm)
    edges2, leaving2 = junction_affinities(build_vessel_graph(mask, tuple(2 * s for s in SPACING)), p2)
    assert len(edges) == 7
    for (w, a, b, q), (w2, a2, b2, q2) in zip(edges, edges2):
        assert (a, b) == (a2, b2) and w2 == pytest.approx(w, rel=1e-9) and q2 == pytest.approx(q, rel=1e-9)
    assert leaving.keys() == leaving2.keys()
    for key, (u, at) in leaving.items():
        np.testing.assert_allclose(leaving2[key][0], u, atol=1e-9)
        np.testing.assert_allclose(leaving2[key][1], 2 * at, atol=1e-9)


def test_leaving_directions_point_from_the_junction_into_each_branch():
    graph = build_vessel_graph(_draw(_crossing(90)), SPACING)
    _, leaving = junction_affinities(graph, SplitParams())
    ids = [b.index for b in graph.branches]
    assert len(ids) == 4 and set(leaving) == set(itertools.permutations(ids, 2))
    sp = np.asarray(SPACING)
    for (_, b), (u, at) in leaving.items():
        assert np.linalg.norm(at - CENTRE) < 1.0  # the crossing's centre
        away = graph.branches[b].voxels.mean(axis=0) * sp - at
        assert np.linalg.norm(u) == pytest.approx(1.0)
        assert u @ away > 0.95 * np.linalg.norm(away)  # the arm is straight: along its axis


@pytest.mark.parametrize("angle", [90, 60])
def test_the_greedy_search_of_large_junctions_agrees_on_a_clear_crossing(angle):
    graph = build_vessel_graph(_draw(_crossing(angle)), SPACING)
    exact = _links(junction_affinities(graph, SplitParams())[0])
    greedy = _links(junction_affinities(graph, SplitParams(max_enumerated_ends=2))[0])
    assert exact.keys() == greedy.keys()
    for pair, (w, _) in exact.items():
        # the same vessels: straight continuations together, turns into the other vessel apart
        assert (greedy[pair][0] == 1.0) == (w == 1.0)
        assert w == 1.0 or greedy[pair][0] < 0.05


def test_the_exact_search_enumerates_every_partition_into_groups_of_up_to_four():
    # Set partitions of k ends (Bell numbers 1, 2, 5, 15, 52, 203) without groups over 4: for k = 5
    # the one 5-group goes (51), for k = 6 the 6-group and the six 5 + 1 splits (196).
    for k, expected in ((1, 1), (2, 2), (3, 5), (4, 15), (5, 51), (6, 196)):
        parts = list(_partitions(tuple(range(k)), 4))
        assert len(parts) == expected
        canonical = {frozenset(frozenset(g) for g in part) for part in parts}
        assert len(canonical) == expected  # no partition twice
        for part in parts:
            assert sorted(i for g in part for i in g) == list(range(k)) and max(map(len, part)) <= 4


# ---- junction regions on hand-made graphs ------------------------------------------------------------

class _Graph:
    """What _junction_regions reads of a VesselGraph: node kinds and incident branches, branch ends
    and lengths, node radii. nodes: {index: (kind, radius mm)}; branches: [(node_a, node_b, length)]."""

    def __init__(self, nodes: dict[int, tuple[str, float]], branches: list[tuple[int, int, float]]):
        self.nodes = [SimpleNamespace(index=i, kind=nodes[i][0], branches=[]) for i in range(len(nodes))]
        self.branches = [SimpleNamespace(index=k, nodes=(a, c), length_mm=length)
                         for k, (a, c, length) in enumerate(branches)]
        for b in self.branches:
            for n in b.nodes:
                if n >= 0:
                    self.nodes[n].branches.append(b.index)
        self._radius = {i: r for i, (_, r) in nodes.items()}

    def node_radius_mm(self, node: int) -> float:
        return self._radius[node]


def _regions(graph: _Graph, max_ends: int = 8) -> set[tuple[frozenset, frozenset]]:
    return {(frozenset(nodes), frozenset(internal)) for nodes, internal in _junction_regions(graph, max_ends)}


J, E = "junction", "endpoint"


def test_junctions_whose_spheres_overlap_along_their_link_form_one_region():
    # junction 1 and junction 0 (node index 0, the link's second node) 1.5 mm apart with radii 1 and
    # 1 mm: one region holding the link; junction 2 is 3 mm from junction 1: a region of its own.
    # A short terminal branch (to an endpoint) and a closed loop at a junction never join anything.
    graph = _Graph({0: (J, 1.0), 1: (J, 1.0), 2: (J, 1.0), 3: (E, 1.0), 4: (E, 1.0), 5: (E, 1.0)},
                   [(1, 0, 1.5), (1, 2, 3.0), (0, 3, 0.5), (0, 4, 4.0), (2, 5, 4.0), (2, 2, 1.0)])
    assert _regions(graph) == {(frozenset({0, 1}), frozenset({0})), (frozenset({2}), frozenset())}


def test_the_closest_pairs_join_first_relative_to_their_radii():
    # junction 1 lies 1.8 mm from junction 0 (radii 1 + 1: 0.9 of the overlap distance) and 4 mm from
    # junction 2 (radii 1 + 5: 0.67 of it). Each has 3 ends, so a pair joined has 4 and all three 5:
    # with at most 4 ends only one pair can join, the closer relative to its radii, (1, 2).
    outer = [(0, 3, 9.0), (0, 4, 9.0), (1, 5, 9.0), (2, 6, 9.0), (2, 7, 9.0)]
    graph = _Graph({0: (J, 1.0), 1: (J, 1.0), 2: (J, 5.0), **{i: (E, 1.0) for i in range(3, 8)}},
                   [(0, 1, 1.8), (1, 2, 4.0)] + outer)
    assert _regions(graph, max_ends=4) == {(frozenset({1, 2}), frozenset({1})), (frozenset({0}), frozenset())}
    # exactly max_ends is allowed: with 5 the second join goes ahead
    assert _regions(graph, max_ends=5) == {(frozenset({0, 1, 2}), frozenset({0, 1}))}


def test_a_refused_join_does_not_stop_the_later_ones():
    # four junctions in a chain, 3 ends each: (0, 1) at ratio 0.5 joins (4 ends); (1, 2) at 0.6 would
    # make 5, over 4; (2, 3) at 0.8 still joins
    nodes = {0: (J, 1.0), 1: (J, 1.0), 2: (J, 1.0), 3: (J, 1.0), **{i: (E, 1.0) for i in range(4, 10)}}
    outer = [(0, 4, 9.0), (0, 5, 9.0), (1, 6, 9.0), (2, 7, 9.0), (3, 8, 9.0), (3, 9, 9.0)]
    graph = _Graph(nodes, [(0, 1, 1.0), (1, 2, 1.2), (2, 3, 1.6)] + outer)
    assert _regions(graph, max_ends=4) == {(frozenset({0, 1}), frozenset({0})), (frozenset({2, 3}), frozenset({2}))}


def test_a_second_link_between_joined_junctions_is_inside_and_leaves_room_for_more():
    # junctions 0 and 1 joined twice (a small loop, ratios 0.25 and 0.3): 3 + 3 - 2 = 4 ends, and the
    # second link turns two more ends inwards: 2 left, so junction 2 (ratio 0.9 from 1, 3 ends) still
    # fits under max_ends 4
    nodes = {0: (J, 1.0), 1: (J, 1.0), 2: (J, 1.0), **{i: (E, 1.0) for i in range(3, 6)}}
    graph = _Graph(nodes, [(0, 1, 0.5), (0, 1, 0.6), (1, 2, 1.8), (0, 3, 9.0), (2, 4, 9.0), (2, 5, 9.0)])
    assert _regions(graph, max_ends=4) == {(frozenset({0, 1, 2}), frozenset({0, 1, 2}))}


def test_every_link_is_a_probability_and_an_affinity_between_0_and_1():
    graph = build_vessel_graph(_draw(_crossing(60)), SPACING)
    edges, _ = junction_affinities(graph, SplitParams())
    assert edges and all(0.0 <= w <= 1.0 and 0.0 <= q <= 1.0 for w, _, _, q in edges)


def _end(branch: int, u, r: float, c=(0.0, 0.0, 0.0), back: float = 5.0) -> tuple:
    """One branch end as _region_ends makes it: (branch, unit axis into it, radius mm, point mm, length back)."""
    return (branch, np.asarray(u, float), r, np.asarray(c, float), back)


@pytest.mark.parametrize("u_child, angle", [((0, 0, -1), 0.0), ((0, 1, 0), 90.0), ((0, 0, 1), 180.0),
                                            ((0, 1, -1), 45.0), ((0, 0, 0), 90.0)])
def test_the_angle_term_is_the_turn_from_the_parents_flow_over_the_angle_scale_squared(u_child, angle):
    # the parent's axis points into it, (0, 0, 1): its flow through the junction runs along -z; an
    # end without an axis (a zero vector) counts as a right angle
    u = np.asarray(u_child, float)
    u = u / np.linalg.norm(u) if u.any() else u
    p = SplitParams(angle_scale_deg=45.0)
    terms = _PairTerms([_end(0, (0, 0, 1), 2.0), _end(1, u, 1.0)], p, 0.5)(0, 1)
    assert terms[0] == pytest.approx((angle / 45.0) ** 2, abs=1e-9)


def test_an_end_without_an_axis_as_the_parent_also_counts_as_a_right_angle():
    p = SplitParams(angle_scale_deg=30.0)
    terms = _PairTerms([_end(0, (0, 0, 0), 2.0), _end(1, (0, 0, -1), 1.0)], p, 0.5)(0, 1)
    assert terms[0] == pytest.approx(9.0)


def test_a_thinner_child_adds_no_radius_term_and_a_thicker_one_its_log_ratio_over_sigma_squared():
    p = SplitParams(radius_log_sigma=0.2)
    voxel = 0.8
    ends = [_end(0, (0, 0, 1), 2.0), _end(1, (0, 0, -1), 1.5), _end(2, (0, 0, -1), 3.0), _end(3, (0, 0, -1), 2.0)]
    terms = _PairTerms(ends, p, voxel)
    # (angle, radius, child radius cubed) without axis offsets
    assert len(terms(0, 1)) == 3
    assert terms(0, 1)[1] == 0.0 and terms(0, 1)[2] == pytest.approx(1.5 ** 3)
    assert terms(0, 3)[1] == 0.0  # as thick as its parent: nothing
    sigma = np.hypot(0.2, 0.5 * voxel / 2.0)  # the thinner of the two radii sets the measurement error
    assert terms(0, 2)[1] == pytest.approx((np.log(3.0 / 2.0) / sigma) ** 2)
    assert terms(0, 2)[2] == pytest.approx(27.0)
    # the Murray scale is the parent's: relative noise and half a voxel over its radius
    assert terms.murray_sigma(0) == pytest.approx(np.hypot(0.2, 0.5 * voxel / 2.0))
    assert terms.murray_sigma(1) == pytest.approx(np.hypot(0.2, 0.5 * voxel / 1.5))
    assert terms(0, 2) is terms(0, 2)  # computed once per pair


def test_the_axis_offset_term_scales_the_offset_by_the_two_radii_and_half_a_voxel():
    p = SplitParams(axis_offset_weight=2.0)
    ends = [_end(0, (0, 0, 1), 2.0), _end(1, (0, 0, -1), 1.0)]
    offsets = np.array([[0.0, 3.0], [3.0, 0.0]])
    angle, offset, radius, cube = _PairTerms(ends, p, 0.6, offsets)(0, 1)
    assert offset == pytest.approx(2.0 * (3.0 / np.hypot(0.35 * 3.0, 0.3)) ** 2)
    assert angle == pytest.approx(0.0, abs=1e-9) and radius == 0.0 and cube == pytest.approx(1.0)


def test_axis_offsets_are_the_closest_approach_of_the_axes_back_through_the_junction():
    # end 0's axis runs from (0, 0, 10) back to the junction at the origin; end 1's from (3, 0, -10)
    # back 5 mm to (3, 0, -5): closest approach from the origin to (3, 0, -5). End 2 from (11, 0, 0)
    # back to the origin meets end 0 there (its 12 samples fall on whole millimetres).
    ends = [_end(0, (0, 0, 1), 1.0, (0, 0, 10), 10.0), _end(1, (0, 0, -1), 1.0, (3, 0, -10), 5.0),
            _end(2, (1, 0, 0), 1.0, (11, 0, 0), 11.0)]
    out = _axis_offsets(ends)
    assert out[0, 1] == pytest.approx(np.hypot(3.0, 5.0)) and out[1, 0] == out[0, 1]
    assert out[0, 2] == pytest.approx(0.0, abs=1e-9)
    assert out[1, 2] == pytest.approx(5.0)  # (3, 0, -5) to (3, 0, 0)
    assert np.array_equal(np.diag(out), np.zeros(3))


def test_two_ends_in_line_but_side_by_side_are_less_one_vessel_than_ends_on_one_axis():
    # a straight continuation (flow angle 0, equal radii) whose axes are 0 or 4 mm apart: with the
    # axis-offset term the side-by-side pair is two touching vessels; without it both look alike
    def affinity(dx: float, weight: float) -> float:
        ends = [_end(0, (0, 0, 1), 2.0, (0, 0, 5), 5.0), _end(1, (0, 0, -1), 2.0, (dx, 0, -5), 5.0)]
        ((_, _, w, q),) = list(_region_pair_affinities(ends, SplitParams(axis_offset_weight=weight), 0.5))
        return w, q

    (w_on, q_on), (w_side, q_side) = affinity(0.0, 1.0), affinity(4.0, 1.0)
    assert w_on == pytest.approx(1.0) and q_on > 0.5
    assert w_side < 0.5 * w_on and q_side < q_on
    assert affinity(4.0, 0.0) == pytest.approx(affinity(0.0, 0.0))


def test_a_group_of_four_ends_pays_the_trifurcation_prior_and_smaller_groups_do_not():
    # a parent of radius 2 and three children straight on whose radii obey Murray's law exactly
    # ((8/3)^(1/3) each, 3 x 8/3 = 2^3): every term is 0, so the group costs the prior alone
    rc = (8.0 / 3.0) ** (1.0 / 3.0)
    ends = [_end(0, (0, 0, 1), 2.0)] + [_end(i, (0, 0, -1), rc) for i in (1, 2, 3)]
    voxel = 0.8
    for prior in (2.0, 3.5):
        p = SplitParams(trifurcation_penalty=prior)
        assert _group_cost((0, 1, 2, 3), ends, p, voxel) == pytest.approx(prior, abs=1e-12)
        # two of the children: no prior, only Murray's law missed (2 x 8/3 of the parent's 8)
        sigma = np.hypot(p.radius_log_sigma, 0.5 * voxel / 2.0)
        murray = (np.log((16.0 / 3.0) ** (1.0 / 3.0) / 2.0) / sigma) ** 2
        assert _group_cost((0, 1, 2), ends, p, voxel) == pytest.approx(murray, rel=1e-12)
        # a lone end: a vessel ending on another one
        assert _group_cost((2,), ends, p, voxel) == p.end_penalty
