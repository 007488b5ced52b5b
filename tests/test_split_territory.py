"""The check for liver regions left to one tree, and the roots that give them their tree back."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from livervessels.split_territory import TreeTerritory, _block_mean, hu_support, missing_tree_regions, territory_roots
from livervessels.split_types import HEPATIC, PORTAL, TREE_NAMES, SplitParams
from livervessels.vessel_graph import build_vessel_graph

SPACING = (1.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def comb():
    """A 100 x 60 x 40 mm block of liver with straight vessels along x every 8 mm in y and z, each
    line cut in two at x = 50 mm; alternate lines belong to the portal and the hepatic tree, so the
    trees interleave everywhere. Returns (graph, liver, true branch labels, branch x centre mm)."""
    shape = (100, 60, 40)
    liver = np.ones(shape, bool)
    vessels = np.zeros(shape, bool)
    tree_of_line = {}
    k = 0
    for y in range(4, 60, 8):
        for z in range(4, 40, 8):
            vessels[5:46, y - 1:y + 2, z - 1:z + 2] = True
            vessels[55:96, y - 1:y + 2, z - 1:z + 2] = True
            tree_of_line[(y, z)] = PORTAL if k % 2 == 0 else HEPATIC
            k += 1
    graph = build_vessel_graph(vessels, SPACING)
    truth, x_centre = [], []
    for b in graph.branches:
        y, z = np.round(b.voxels[:, 1:].mean(axis=0)).astype(int)
        truth.append(tree_of_line[(y, z)])
        x_centre.append(b.voxels[:, 0].mean())
    return graph, liver, np.array(truth, np.uint8), np.array(x_centre)


def test_interleaved_trees_leave_no_region_to_one_tree(comb):
    graph, liver, truth, _ = comb
    t = missing_tree_regions(graph, truth, liver, SplitParams())
    assert t.checked and t.flagged == [] and not t.suspect.any()
    assert max(t.missing_fraction.values()) < 0.01


def test_a_lobe_whose_portal_branches_went_hepatic_is_flagged(comb):
    # The failure on real livers: the portal branches of one side labelled hepatic.
    graph, liver, truth, x = comb
    labels = np.where(x < 50, HEPATIC, truth).astype(np.uint8)
    t = missing_tree_regions(graph, labels, liver, SplitParams())
    assert t.flagged == ["portal"]
    # liver beyond 30 mm from the nearest portal branch (x >= 55): x < 25, a quarter of the block
    assert t.missing_fraction["portal"] == pytest.approx(0.25, abs=0.05)
    assert t.missing_fraction["hepatic"] < 0.01
    # the suspect branches are the hepatic-labelled ones of that side, both truly hepatic and not
    assert t.suspect[(x < 50)].all() and not t.suspect[x > 50].any()
    # a smaller share than asked for is not flagged
    assert missing_tree_regions(graph, labels, liver, SplitParams(territory_min_fraction=0.3)).flagged == []


def test_without_a_liver_mask_nothing_is_checked(comb):
    graph, _, truth, x = comb
    t = missing_tree_regions(graph, np.where(x < 50, HEPATIC, truth).astype(np.uint8), None, SplitParams())
    assert not t.checked and t.flagged == [] and not t.suspect.any()


def _chain_parents(labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Growth parents for the comb: each tree's branches on one side hang from one entry branch."""
    parent = np.full(len(labels), -1, np.int64)
    for lab in (PORTAL, HEPATIC):
        for side in (x < 50, x > 50):
            ids = np.flatnonzero((labels == lab) & side)
            if len(ids) > 1:
                parent[ids[1:]] = ids[0]
    return parent


def test_a_root_that_gives_the_region_its_tree_back_is_kept(comb):
    graph, liver, truth, x = comb
    p = SplitParams(territory_candidates=5)
    wrong = np.where(x < 50, HEPATIC, truth).astype(np.uint8)
    parent = _chain_parents(wrong, x)
    # the growth's entry into the left side's former portal branches: it holds their subtree
    left_portal = np.flatnonzero((x < 50) & (truth == PORTAL))
    entry = left_portal[0]
    parent[left_portal] = entry
    parent[entry] = np.flatnonzero((x < 50) & (truth == HEPATIC))[0]
    link_cost = np.zeros(len(wrong))
    link_cost[entry] = 5.0  # the contact where the hepatic tree came in: a weak link
    tried = []

    def regrow(extra):
        tried.append(dict(extra))
        labels = wrong.copy()
        for b, (lab, _) in extra.items():
            if b == entry:
                labels[left_portal] = lab
            else:
                labels[b] = lab
        return labels, parent

    territory = missing_tree_regions(graph, wrong, liver, p)
    # the scan's HU: portal branches a little brighter than hepatic ones (log-odds +0.5 nats each)
    log_odds = np.where(truth == PORTAL, 0.5, -0.5)
    roots = territory_roots(graph, wrong, np.zeros(len(wrong), np.uint8), parent, link_cost, log_odds, liver,
                            territory, p, regrow)
    assert roots == {int(entry): (PORTAL, 0.0)}
    assert list(tried[0]) == [int(entry)]  # the weakest link is tried first
    # the same move where the HU says nothing (equal HU) or speaks against it is refused: a region
    # without one tree is no proof on its own (a mask can lack that tree's thin branches there)
    for hu in (np.zeros(len(wrong)), -log_odds):
        assert territory_roots(graph, wrong, np.zeros(len(wrong), np.uint8), parent, link_cost, hu, liver,
                               territory, p, regrow) == {}


def test_hu_support_sums_the_evidence_for_the_new_tree():
    before = np.array([HEPATIC, HEPATIC, PORTAL, HEPATIC, 0], np.uint8)
    after = np.array([PORTAL, PORTAL, HEPATIC, HEPATIC, PORTAL], np.uint8)
    log_odds = np.array([1.0, 2.0, -0.5, 9.0, 9.0])  # log P(portal) / P(hepatic)
    # the changed branches only (an unlabelled one gaining a label is no change of tree)
    assert hu_support(before, after, log_odds) == pytest.approx(1.0 + 2.0 + 0.5)
    assert hu_support(before, before, log_odds) == 0.0


def test_a_root_that_only_moves_the_gap_is_refused(comb):
    # Where the mask itself lacks one tree in a region, re-rooting a vessel of the other tree
    # leaves another region to one tree: nothing is kept.
    graph, liver, truth, x = comb
    p = SplitParams(territory_candidates=5)
    wrong = np.where(x < 50, HEPATIC, truth).astype(np.uint8)
    parent = _chain_parents(wrong, x)
    left = np.flatnonzero((wrong == HEPATIC) & (x < 50))
    parent[left[0]] = np.flatnonzero((wrong == HEPATIC) & (x > 50))[0]  # the side hangs from the other
    tried = []

    def regrow(extra):
        tried.append(dict(extra))
        labels = wrong.copy()
        labels[x < 50] = PORTAL  # the whole side changes tree: now the hepatic tree is missing there
        return labels, parent

    territory = missing_tree_regions(graph, wrong, liver, p)
    log_odds = np.where(x < 50, 1.0, 0.0)  # even with the HU all for the move
    assert territory_roots(graph, wrong, np.zeros(len(wrong), np.uint8), parent, np.ones(len(wrong)), log_odds,
                           liver, territory, p, regrow) == {}
    assert tried  # a root was tried, and refused
    tried.clear()
    off = SplitParams(territory_candidates=0)
    assert territory_roots(graph, wrong, np.zeros(len(wrong), np.uint8), parent, np.ones(len(wrong)), log_odds,
                           liver, territory, off, regrow) == {}
    assert not tried


def test_the_confidence_cap_falls_with_the_region(comb):
    graph, liver, truth, x = comb
    p = SplitParams()
    wrong = np.where(x < 50, HEPATIC, truth).astype(np.uint8)
    t = missing_tree_regions(graph, wrong, liver, p)
    cap = t.confidence_cap(wrong, p)
    assert np.allclose(cap[~t.suspect], 1.0)
    assert np.allclose(cap[t.suspect], p.territory_confidence * (1 - t.missing_fraction["portal"]))
    # a larger region left without portal veins: a lower cap
    wider = replace(t, missing_fraction={**t.missing_fraction, "portal": 0.6})
    assert np.allclose(wider.confidence_cap(wrong, p)[t.suspect], p.territory_confidence * 0.4)


# ---- by hand, on a liver that is one row of voxels --------------------------------------------------
# A stub graph (branches with voxels, a spacing) along x: every distance is a difference of x.

def _line(branches_x: list[range], spacing=(1.0, 1.0, 1.0)) -> SimpleNamespace:
    return SimpleNamespace(spacing=spacing,
                           branches=[SimpleNamespace(voxels=np.array([[x, 0, 0] for x in xs])) for xs in branches_x])


LINE_P = SplitParams(territory_block_mm=1.0, territory_far_mm=10.0, territory_near_mm=5.0,
                     territory_min_fraction=0.5)


@pytest.mark.parametrize("side_branches", [False, True])
def test_a_region_far_from_one_tree_and_near_the_other_by_hand(side_branches):
    # liver x = 0..39 mm; portal at 0..9; hepatic at 0..9 and 25..39. Portal is farther than 10 mm
    # from x >= 20 (x = 19 is exactly 10: not farther), and hepatic is within 5 mm of all of it
    # (x = 20 exactly 5): 20 of 40 blocks, exactly the minimum share, flagged. Suspect: hepatic
    # branches mostly within 5 mm of the region (x >= 15): 25..39, and of the side branches 14..16
    # (2 of 3), not 13..16 (2 of 4, not more than half); never 0..9.
    graph = _line([range(0, 10), range(0, 10), range(25, 40)] + [range(13, 17), range(14, 17)] * side_branches)
    labels = np.array([PORTAL, HEPATIC, HEPATIC] + [HEPATIC, HEPATIC] * side_branches, np.uint8)
    t = missing_tree_regions(graph, labels, np.ones((40, 1, 1), bool), LINE_P, far_ratio=0.0)
    assert t.checked is True and t.far_mm == 10.0
    assert t.missing_fraction == {"portal": 0.5, "hepatic": 0.0}
    assert t.flagged == ["portal"]
    assert t.suspect.tolist() == [False, False, True] + [False, True] * side_branches
    assert t.as_qc() == {"checked": True, "far_mm": 10.0, "missing_fraction": {"portal": 0.5, "hepatic": 0.0},
                         "flagged": ["portal"], "suspect_branches": 1 + side_branches}


def test_far_grows_with_the_median_gap_between_the_liver_and_any_vessel():
    # portal at x = 0, hepatic at x = 39: the liver's distances to the nearest vessel are 0, 0, 1, 1,
    # ..., 19, 19, median 9.5: far is 2 x 9.5 = 19 mm with far_ratio 2 (more than the 1 mm set)
    graph = _line([range(0, 1), range(39, 40)])
    labels = np.array([PORTAL, HEPATIC], np.uint8)
    p = replace(LINE_P, territory_far_mm=1.0, territory_far_ratio=6.0)
    assert missing_tree_regions(graph, labels, np.ones((40, 1, 1), bool), p, far_ratio=2.0).far_mm == 19.0
    assert missing_tree_regions(graph, labels, np.ones((40, 1, 1), bool), p).far_mm == 57.0  # the default ratio


def test_blocks_are_the_block_size_in_voxels_of_each_axis():
    # 0.5 mm voxels, 2 mm blocks: 4 voxels a side. Portal at x = 0..9.5 mm (blocks 0..4), far 9 mm:
    # blocks from 9 on (9 - 4 = 5 blocks = 10 mm > 9) lack it, 11 of 20. On 0.5 mm blocks it would be
    # voxels from 38 on, 42 of 80.
    # The region widened by the near reach (5 mm: 2 blocks, not 5) covers blocks 7 on: a hepatic
    # branch over blocks 5..8 (voxels 20..35) is half in it, not suspect.
    graph = _line([range(0, 20), range(0, 80), range(20, 36)], spacing=(0.5, 0.5, 0.5))
    labels = np.array([PORTAL, HEPATIC, HEPATIC], np.uint8)
    p = replace(LINE_P, territory_block_mm=2.0, territory_far_mm=9.0, territory_near_mm=5.0,
                territory_min_fraction=0.05)
    t = missing_tree_regions(graph, labels, np.ones((80, 4, 4), bool), p, far_ratio=0.0)
    assert t.missing_fraction["portal"] == pytest.approx(11 / 20)
    assert t.suspect.tolist() == [False, True, False]


def test_a_block_counts_as_liver_when_more_than_half_of_it_is_liver():
    # 2 x 2 x 2 voxel blocks; the last block in x is cut by the volume's edge (padded with non-liver)
    liver = np.zeros((5, 2, 2), bool)
    liver[0:2] = True  # block 0: all liver
    liver[2, :, :] = True  # block 1: half
    liver[4, 0, :] = True  # block 2: half of its voxels exist (x = 5 is padding), half of those liver
    assert _block_mean(liver, np.array([2, 2, 2]), (3, 1, 1)).ravel().tolist() == [1.0, 0.5, 0.25]
    # blocks of different sizes per axis: 2 x 1 x 1
    assert _block_mean(liver[:4, :, :1], np.array([2, 1, 1]), (2, 2, 1)).tolist() == [[[1.0], [1.0]], [[0.5], [0.5]]]
    # both trees in block 0 only, 2 mm from block 1 (farther than the 1 mm set): block 1, half
    # liver, is not liver, so no liver lacks a tree
    graph = _line([range(0, 1), range(0, 1)])
    t = missing_tree_regions(graph, np.array([PORTAL, HEPATIC], np.uint8), liver[:4],
                             replace(LINE_P, territory_block_mm=2.0, territory_far_mm=1.0), far_ratio=0.0)
    assert t.checked and t.missing_fraction == {"portal": 0.0, "hepatic": 0.0}


@pytest.mark.parametrize("case", ["no liver", "empty liver", "one tree", "no branches"])
def test_nothing_is_checked_without_a_liver_or_both_trees(case):
    graph = _line([range(0, 10), range(20, 30)])
    labels = np.array([PORTAL, HEPATIC], np.uint8)
    liver = np.ones((40, 1, 1), bool)
    if case == "no liver":
        liver = None
    elif case == "empty liver":
        liver = np.zeros((40, 1, 1), bool)
    elif case == "one tree":
        labels = np.array([HEPATIC, HEPATIC], np.uint8)
    else:
        graph, labels = _line([]), np.zeros(0, np.uint8)
    t = missing_tree_regions(graph, labels, liver, LINE_P)
    assert t.checked is False and t.flagged == [] and t.far_mm == 0.0
    assert t.missing_fraction == {"portal": 0.0, "hepatic": 0.0}
    assert t.suspect.dtype == bool and t.suspect.shape == (len(labels),) and not t.suspect.any()


def test_a_single_liver_block_with_both_trees_is_checked():
    graph = _line([range(0, 1), range(0, 1)])
    t = missing_tree_regions(graph, np.array([PORTAL, HEPATIC], np.uint8), np.ones((1, 1, 1), bool), LINE_P)
    assert t.checked and t.flagged == []


def test_the_qc_rounds_distances_to_0_1_mm_and_shares_to_0_001():
    t = TreeTerritory({"portal": 0.12345, "hepatic": 0.0006}, np.array([True, False, True]), ["portal"], True,
                      12.345)
    assert t.as_qc() == {"checked": True, "far_mm": 12.3, "missing_fraction": {"portal": 0.123, "hepatic": 0.001},
                         "flagged": ["portal"], "suspect_branches": 2}


def test_the_cap_falls_on_the_present_trees_suspects_only():
    # portal missing: the hepatic suspects are capped; hepatic missing: the portal ones
    p = SplitParams(territory_confidence=0.8)
    labels = np.array([PORTAL, HEPATIC, PORTAL, HEPATIC])
    suspect = np.array([True, True, False, False])
    portal_missing = TreeTerritory({"portal": 0.25, "hepatic": 0.0}, suspect, ["portal"], True)
    assert portal_missing.confidence_cap(labels, p).tolist() == pytest.approx([1.0, 0.6, 1.0, 1.0])
    hepatic_missing = TreeTerritory({"portal": 0.0, "hepatic": 0.5}, suspect, ["hepatic"], True)
    assert hepatic_missing.confidence_cap(labels, p).tolist() == pytest.approx([0.4, 1.0, 1.0, 1.0])


def _line_case(missing: int):
    """The failure on a line liver (x = 0..39 mm): branch 0 the present tree's root (seed) at 0..9,
    branch 1 the missing tree's root (seed) at 0..9; branches 2 (20..29) and 3 (30..39, grown through
    2) truly of the missing tree, taken by the present one through 2; branch 4 (20..39) of the present
    tree. Returns (graph, labels, seeds, growth parents, regrow, the trials it was handed)."""
    present = HEPATIC if missing == PORTAL else PORTAL
    graph = _line([range(0, 10), range(0, 10), range(20, 30), range(30, 40), range(20, 40)])
    labels = np.array([present, missing, present, present, present], np.uint8)
    seeds = np.array([present, missing, 0, 0, 0], np.uint8)
    parent = np.array([-1, -1, 0, 2, 0])
    trials = []

    def regrow(extra):
        trials.append(dict(extra))
        out = labels.copy()
        for b, (lab, _) in extra.items():
            out[[b, 3] if b == 2 else [b]] = lab  # a root takes its growth subtree along
        return out, parent

    return graph, labels, seeds, parent, regrow, trials


TERRITORY_P = replace(LINE_P, territory_min_fraction=0.25, territory_far_ratio=0.0, territory_search_ratio=0.0,
                      territory_candidates=5, territory_subtree_share=0.2, territory_hu_support=2.0)


def _roots(missing, log_odds_for_missing, link_cost, **params):
    graph, labels, seeds, parent, regrow, trials = _line_case(missing)
    p = replace(TERRITORY_P, **params)
    liver = np.ones((40, 1, 1), bool)
    territory = missing_tree_regions(graph, labels, liver, p, far_ratio=0.0)
    sign = 1.0 if missing == PORTAL else -1.0  # log_odds: log P(portal) / P(hepatic)
    roots = territory_roots(graph, labels, seeds, parent, np.asarray(link_cost, float),
                            sign * np.asarray(log_odds_for_missing, float), liver, territory, p, regrow)
    return roots, trials, territory


@pytest.mark.parametrize("missing", [PORTAL, HEPATIC])
def test_of_two_roots_that_give_the_region_its_tree_back_the_one_with_more_hu_evidence_is_kept(missing):
    # x >= 20 lacks the missing tree (half the liver). Suspects: 2, 3, 4. Re-rooting 2 (with 3)
    # or 4 each gives it back; the HU speak for 2 and 3 (1.5 nats each: 3.0) more than for 4 (2.5)
    roots, trials, territory = _roots(missing, [0, 0, 1.5, 1.5, 2.5], [0, 0, 1.0, 0.5, 3.0])
    assert territory.flagged == [TREE_NAMES[missing]] and territory.suspect.tolist() == [False, False, True, True, True]
    assert roots == {2: (missing, 0.0)}
    # every candidate tried, weakest link first (4: cost 3, then 2, then 3), each alone at cost 0
    assert trials[:3] == [{4: (missing, 0.0)}, {2: (missing, 0.0)}, {3: (missing, 0.0)}]


def test_the_weakest_links_are_tried_first_up_to_the_number_of_candidates():
    # HU against 4: with one candidate only 4 (the weakest link) is tried and refused; with two, 2
    # follows and is kept (a refused trial does not end the search)
    hu, cost = [0, 0, 1.5, 1.5, -1.0], [0, 0, 1.0, 0.5, 3.0]
    assert _roots(PORTAL, hu, cost, territory_candidates=1)[0] == {}
    roots, trials, _ = _roots(PORTAL, hu, cost, territory_candidates=2)
    assert roots == {2: (PORTAL, 0.0)} and [list(t) for t in trials] == [[4], [2]]


def test_a_candidate_holds_at_least_the_subtree_share_of_the_suspects():
    # 3 suspects; 2 holds two of them (itself and 3), 4 and 3 one each. A share of 2/3 leaves 2 alone
    # (exactly at the share) even with 4 the weakest link and one candidate
    roots, trials, _ = _roots(PORTAL, [0, 0, 1.5, 1.5, 2.5], [0, 0, 1.0, 0.5, 3.0], territory_candidates=1,
                              territory_subtree_share=2 / 3)
    assert roots == {2: (PORTAL, 0.0)} and trials == [{2: (PORTAL, 0.0)}]


def test_the_hu_must_give_at_least_the_support_asked_for():
    # moving 2 and 3 with exactly 2.0 nats for it is enough; 4 has HU against it
    assert _roots(PORTAL, [0, 0, 1.0, 1.0, -1.0], [0, 0, 1.0, 0.5, 3.0])[0] == {2: (PORTAL, 0.0)}
    assert _roots(PORTAL, [0, 0, 0.9, 1.0, -1.0], [0, 0, 1.0, 0.5, 3.0])[0] == {}


def test_seeds_and_roots_are_never_candidates():
    graph, labels, seeds, parent, regrow, trials = _line_case(PORTAL)
    liver = np.ones((40, 1, 1), bool)
    territory = missing_tree_regions(graph, labels, liver, TERRITORY_P, far_ratio=0.0)
    hu = np.array([0, 0, 1.5, 1.5, 2.5])
    seeds[2] = HEPATIC  # 2 is a seed of the present tree: it stays where it is
    roots = territory_roots(graph, labels, seeds, parent, np.array([0, 0, 1.0, 0.5, 3.0]), hu, liver, territory,
                            TERRITORY_P, regrow)
    assert roots == {4: (PORTAL, 0.0)} and all(2 not in t for t in trials)
    parent[4] = -1  # 4 a root of the growth (no parent): not a candidate either
    trials.clear()
    assert territory_roots(graph, labels, seeds, parent, np.array([0, 0, 1.0, 0.5, 3.0]), hu, liver, territory,
                           TERRITORY_P, regrow) == {}
    assert all(4 not in t and 2 not in t for t in trials)
