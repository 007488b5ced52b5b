"""The check for liver regions left to one tree, and the roots that give them their tree back."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from livervessels.split_territory import hu_support, missing_tree_regions, territory_roots
from livervessels.split_types import HEPATIC, PORTAL, SplitParams
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
