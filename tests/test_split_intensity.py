"""The scan's own portal / hepatic intensity difference as evidence for the split."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.portal_hepatic import split_portal_hepatic
from livervessels.split_intensity import TreeIntensity, branch_log_odds
from livervessels.synthetic.realistic import ScanProtocol, make_realistic_phantom

SEED = 1005  # a tuning seed (shares its trees with tests/test_synthetic_realistic.py)


def _protocol(delta_hu: float) -> ScanProtocol:
    return ScanProtocol(pixel_mm=0.8, slice_mm=1.5, noise_hu=12.0, parenchyma_hu=100.0, portal_hu=185.0,
                        hepatic_hu=185.0 - delta_hu)


@pytest.fixture(scope="module")
def splits():
    out = {}
    for delta in (0.0, 30.0):
        ph = make_realistic_phantom(SEED, protocol=_protocol(delta))
        out[delta] = (ph, split_portal_hepatic(ph.vessel_mask, ph.ct, ph.spacing, affine=ph.affine, **ph.support()))
    return out


def test_the_cue_switches_itself_off_when_the_trees_are_equally_bright(splits):
    _, split = splits[0.0]
    measured = split.qc["intensity"]
    assert measured["used"] is False
    assert abs(measured["difference_hu"]) < 6.0
    assert "equally bright" in measured["reason"]


def test_the_difference_is_measured_on_the_scan_and_used(splits):
    ph, split = splits[30.0]
    measured = split.qc["intensity"]
    assert measured["used"] is True
    assert abs(measured["difference_hu"] - 30.0) < 6.0  # the protocol's portal - hepatic lumen HU
    assert abs(measured["parenchyma_hu"] - 100.0) < 6.0
    assert measured["difference_se_hu"] < 5.0


def test_branch_log_odds_separate_the_trees(splits):
    ph, split = splits[30.0]
    br = split.branches
    truth = np.array([np.argmax(np.bincount(ph.vessel_tree[tuple(br.input_voxels(b.index).T)], minlength=3)[1:]) + 1
                      for b in br.graph.branches])
    # the evidence for each branch's own label, signed by whether the label is right
    # back to log P(portal) / P(hepatic)
    llr = np.where(br.labels == 2, -br.evidence["log_odds_own"], br.evidence["log_odds_own"])
    thick = br.evidence["radius_mm"] >= 1.5
    assert np.mean(llr[thick & (truth == 1)] > 0) > 0.85
    assert np.mean(llr[thick & (truth == 2)] < 0) > 0.85


def test_unused_measurement_gives_no_evidence(splits):
    ph, split = splits[0.0]
    br = split.branches
    assert not np.any(br.evidence["log_odds_own"])
    off = TreeIntensity(False, "not used")
    assert not branch_log_odds(br.graph, ph.ct, br.evidence["radius_mm"], off).any()


def test_evidence_that_does_not_tell_the_first_labelling_apart_is_not_used(splits):
    # A radius bin whose log-odds do not separate the trees of the geometry-only labelling (here a
    # labelling unrelated to the trees) gives no evidence: the partial-volume model does not hold.
    from livervessels.vessel_graph import build_vessel_graph

    ph, split = splits[30.0]
    measured = TreeIntensity(**split.qc["intensity"])
    assert measured.used
    graph = build_vessel_graph(ph.vessel_mask, ph.spacing, ph.ct)
    truth = np.array([np.argmax(np.bincount(ph.vessel_tree[tuple(b.voxels.T)], minlength=3)[1:]) + 1
                      for b in graph.branches]).astype(np.uint8)
    radius = np.array([b.mean_radius_mm for b in graph.branches])
    right = branch_log_odds(graph, ph.ct, radius, measured, truth)
    assert np.count_nonzero(right) > 0.5 * len(radius)
    shuffled = np.random.default_rng(0).permutation(truth)
    # (a small bin may separate a random labelling by chance)
    assert np.count_nonzero(branch_log_odds(graph, ph.ct, radius, measured, shuffled)) < 0.2 * np.count_nonzero(right)


def test_thick_vessels_keep_their_evidence_when_the_first_labelling_lost_one_tree_there(splits):
    # The failure on real livers: the geometry-only labelling gave a lobar portal branch and all it
    # feeds to the hepatic veins. The thick radius bins then hold (almost) no portal branches, and
    # judging the evidence by that labelling would switch it off exactly where it is clearest.
    from livervessels.split_intensity import IntensityParams
    from livervessels.vessel_graph import build_vessel_graph

    ph, split = splits[30.0]
    measured = TreeIntensity(**split.qc["intensity"])
    graph = build_vessel_graph(ph.vessel_mask, ph.spacing, ph.ct)
    truth = np.array([np.argmax(np.bincount(ph.vessel_tree[tuple(b.voxels.T)], minlength=3)[1:]) + 1
                      for b in graph.branches]).astype(np.uint8)
    radius = np.array([b.mean_radius_mm for b in graph.branches])
    thick = radius >= IntensityParams().root_min_radius_mm + 0.3  # clear of the bin holding the threshold
    lost = np.where(thick, 2, truth).astype(np.uint8)  # every thick branch labelled hepatic
    llr = branch_log_odds(graph, ph.ct, radius, measured, lost)
    # the same evidence as under the true labelling, and it still tells the trees apart
    right = branch_log_odds(graph, ph.ct, radius, measured, truth)
    np.testing.assert_allclose(llr[thick], right[thick], atol=1e-6)
    assert np.mean(llr[thick & (truth == 1)] > 0.0) > 0.9
    assert np.mean(llr[thick & (truth == 2)] < 0.0) > 0.9
