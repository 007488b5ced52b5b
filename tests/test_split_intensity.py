"""The scan's own portal / hepatic intensity difference as evidence for the split."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from livervessels.portal_hepatic import split_portal_hepatic
from livervessels.split_intensity import (
    IntensityParams,
    TreeIntensity,
    _partial_volume_share,
    branch_log_odds,
    measure_tree_intensity,
)
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


# ---------------------------------------------------------------------------------------------
# By hand, on a stand-in graph: branches are rows of voxels whose HU and radius are set directly
# ---------------------------------------------------------------------------------------------



def _graph(rows: list[list[float]], radii: list[float | list[float]]):
    """A graph whose branch i runs along row i of a (n, L, 1) array, with those HU and radii (mm)."""
    length = max(len(r) for r in rows)
    ct = np.zeros((len(rows), length, 1), np.float32)
    radius = np.zeros_like(ct)
    branches = []
    for i, (hu, r) in enumerate(zip(rows, radii)):
        ct[i, :len(hu), 0] = hu
        radius[i, :len(hu), 0] = r
        branches.append(SimpleNamespace(voxels=np.array([(i, j, 0) for j in range(len(hu))])))
    return SimpleNamespace(branches=branches, radius_mm=radius), ct


def _measured(**kw) -> TreeIntensity:
    base = dict(used=True, reason="", parenchyma_hu=100.0, portal_hu=180.0, hepatic_hu=140.0,
                difference_hu=40.0, difference_se_hu=2.0, noise_hu=10.0)
    return TreeIntensity(**{**base, **kw})


def _measure(portal: list[list[float]], hepatic: list[list[float]], par_hu: float = 100.0, phase=None, **params):
    rows = portal + hepatic
    graph, ct = _graph(rows, [3.0] * len(rows))
    labels = np.array([1] * len(portal) + [2] * len(hepatic))
    ct_par = np.concatenate([ct, np.full((len(rows),) + ct.shape[1:], par_hu, np.float32)])
    parenchyma = np.zeros(ct_par.shape, bool)
    parenchyma[len(rows):] = True
    return measure_tree_intensity(graph, ct_par, labels, parenchyma, np.full(len(rows), 3.0),
                                  IntensityParams(**params), phase=phase)


def test_tree_hu_is_the_median_over_branches_of_each_branch_median():
    # portal branch medians 180, 190, 200 (median 190), hepatic 150, 150, 170 (150); no noise along
    # branches, so the noise floor (1 HU) holds
    m = _measure([[180] * 4, [190, 190, 190, 500], [200] * 5], [[150] * 3, [150] * 4, [170] * 4])
    assert (m.portal_hu, m.hepatic_hu, m.parenchyma_hu, m.difference_hu) == (190.0, 150.0, 100.0, 40.0)
    assert m.noise_hu == 1.0
    # branch spreads: MAD x 1.4826 = 14.826 (portal), 0 -> 1 (hepatic); se = 1.2533 sqrt(s_p^2/3 + 1/3)
    assert m.difference_se_hu == pytest.approx(1.2533 * np.sqrt((14.826 ** 2 + 1.0) / 3), rel=1e-3)
    assert m.used
    assert m.reason == f"portal veins +40 HU brighter than hepatic veins (standard error {m.difference_se_hu:.1f} HU)"


def test_noise_is_the_spread_of_neighbour_differences_over_root_two():
    # differences along the branches alternate +-10: MAD of them 10 x 1.4826, over sqrt 2
    zigzag = [180, 190, 180, 190, 180, 190, 180]
    m = _measure([zigzag, zigzag], [[140, 150, 140, 150, 140, 150, 140]] * 2)
    assert m.noise_hu == pytest.approx(10 * 1.4826 / np.sqrt(2), rel=1e-3)
    # branches of three voxels already give differences (only two or fewer do not)
    short = _measure([[180, 190, 180]] * 2, [[140, 150, 140]] * 2)
    assert short.noise_hu == pytest.approx(10 * 1.4826 / np.sqrt(2), rel=1e-3)


def test_each_refusal_says_why():
    assert measure_tree_intensity(None, None, np.zeros(0), None, np.zeros(0)).reason == "no CT"
    graph, ct = _graph([[180] * 4], [3.0])
    for parenchyma in (None, np.zeros(ct.shape, bool)):
        m = measure_tree_intensity(graph, ct, np.array([1]), parenchyma, np.array([3.0]))
        assert (m.used, m.reason) == (False, "no liver parenchyma to measure against")
    one = _measure([[180] * 4], [[140] * 4] * 2)
    assert (one.used, one.reason, one.parenchyma_hu) == (False, "fewer than two portal branches 2.0 mm thick", 100.0)
    assert _measure([[180] * 4] * 2, [[140] * 4]).reason == "fewer than two hepatic branches 2.0 mm thick"
    equal = _measure([[180] * 4] * 2, [[173] * 4] * 2)
    assert (equal.used, equal.reason) == (False, "portal and hepatic veins equally bright (+7 HU < 8 HU)")
    # the size of the difference counts, whichever tree is brighter
    assert _measure([[180] * 4] * 2, [[187] * 4] * 2).reason == "portal and hepatic veins equally bright (-7 HU < 8 HU)"
    # hepatic veins clearly brighter: no contrast phase does that, so the labelling is suspect, not the scan
    swapped = _measure([[180] * 4] * 2, [[189] * 4] * 2)
    assert (swapped.used, swapped.difference_hu) == (False, -9.0)
    assert swapped.reason.startswith("hepatic veins 9 HU brighter than portal veins, which no contrast phase gives")
    # exactly 8 HU apart is a difference (the spread floor of 1 HU gives se 1.25 HU)
    eight = _measure([[180] * 4] * 2, [[172] * 4] * 2)
    assert eight.used and eight.difference_se_hu == pytest.approx(1.2533, rel=1e-4)
    uncertain = _measure([[180] * 4, [200] * 4], [[160] * 4] * 2)  # 30 HU, se 1.2533 sqrt(14.826^2/2 + 1/2)
    assert uncertain.used is False and uncertain.reason.startswith("difference +30 HU not certain (standard error 13")
    faint = _measure([[120] * 4] * 2, [[106] * 4] * 2)  # hepatic veins 6 HU over the parenchyma
    assert (faint.used, faint.reason) == (False, "vessels barely brighter than the parenchyma")
    assert _measure([[120] * 4] * 2, [[108] * 4] * 2).used  # 8 HU over it is enough


def test_only_the_thick_lumen_core_of_thick_branches_counts():
    rows = [[180] * 4, [180] * 4, [500] * 4, [140] * 4, [140] * 4, [0, 0, 0, 140]]
    radii = [3.0, 3.0, 1.0, 3.0, 3.0, [1.0, 1.0, 1.0, 3.0]]
    graph, ct = _graph(rows, radii)
    labels = np.array([1, 1, 1, 2, 2, 2])
    parenchyma = np.zeros(ct.shape, bool)
    parenchyma[2, :, 0] = True  # the thin portal branch's 500 HU is the parenchyma here
    radius = np.array([3.0, 3.0, 1.9, 3.0, 3.0, 2.0])
    m = measure_tree_intensity(graph, ct, labels, parenchyma, radius)
    # the thin branch (1.9 mm) is left out; the last branch is 2 mm thick but its core is one voxel
    assert (m.portal_hu, m.hepatic_hu) == (180.0, 140.0)
    labels[0] = 0
    assert measure_tree_intensity(graph, ct, labels, parenchyma, radius).reason.startswith("fewer than two portal")
    # a core of exactly three voxels counts
    rows[5], radii[5] = [0, 140, 140, 140], [1.0, 2.0, 2.0, 2.0]
    graph, ct = _graph(rows, radii)
    ct[2] = 60.0
    m = measure_tree_intensity(graph, ct, np.array([1, 1, 0, 2, 2, 2]), parenchyma, radius)
    assert m.hepatic_hu == 140.0 and m.parenchyma_hu == 60.0


def test_qc_rounds_floats_to_a_tenth():
    qc = _measured(difference_se_hu=1.26, noise_hu=10.04).as_qc()
    assert qc == {"used": True, "reason": "", "parenchyma_hu": 100.0, "portal_hu": 180.0, "hepatic_hu": 140.0,
                  "difference_hu": 40.0, "difference_se_hu": 1.3, "noise_hu": 10.0}


def test_log_odds_by_hand_without_a_first_labelling():
    # five thick branches of eight voxels: contrasts 80, 80, 40, 40, 70 over 100 HU parenchyma;
    # root contrasts 80 / 40 (mean 60); the bin's median contrast 70 > 60, so no partial volume (g = 1)
    hu = [180, 180, 140, 140, 170]
    graph, ct = _graph([[v] * 8 for v in hu], [3.0] * 5)
    llr = branch_log_odds(graph, ct, np.full(5, 3.0), _measured())
    # variance: noise^2 / (8 voxels / 4 per sample) + (0.15 x 60)^2 = 50 + 81
    var = 100 / 2 + 81
    expected = np.clip(((np.array(hu) - 100 - 40.0) ** 2 - (np.array(hu) - 100 - 80.0) ** 2) / (2 * var), -4, 4)
    np.testing.assert_allclose(llr, expected)
    assert llr[4] == pytest.approx((30 ** 2 - 10 ** 2) / (2 * var))  # not clipped: 3.05
    assert llr[0] == 4.0 and llr[2] == -4.0
    # a branch of two voxels counts as one sample, not half of one
    graph2, ct2 = _graph([[170] * 2] + [[v] * 8 for v in hu[:4]], [3.0] * 5)
    llr2 = branch_log_odds(graph2, ct2, np.full(5, 3.0), _measured())
    assert llr2[0] == pytest.approx((30 ** 2 - 10 ** 2) / (2 * (100 + 81)))
    # switched off, or no branches: zeros of the right length
    assert branch_log_odds(graph, ct, np.full(5, 3.0), _measured(used=False)).tolist() == [0.0] * 5
    empty = SimpleNamespace(branches=[], radius_mm=ct)
    assert branch_log_odds(empty, ct, np.zeros(0), _measured()).shape == (0,)


def test_log_odds_scale_with_the_partial_volume_share_of_thin_branches():
    # thick branches (3 mm) at the root contrasts; thin ones (1 mm) keep half of it
    hu = [180, 140, 180, 140] + [140, 120, 140, 120, 130]
    radius = np.array([3.0] * 4 + [1.0] * 5)
    graph, ct = _graph([[v] * 8 for v in hu], radius)
    llr = branch_log_odds(graph, ct, radius, _measured())
    # thin bin: median contrast 30 over the root contrast 60: g = 0.5, expected 40 / 20 HU
    var = 100 / 2 + (0.15 * 60 * 0.5) ** 2
    assert llr[8] == pytest.approx(((30 - 20) ** 2 - (30 - 40) ** 2) / (2 * var)) == 0.0
    assert llr[4] == pytest.approx(((40 - 20) ** 2 - 0) / (2 * var))
    assert llr[5] == pytest.approx((0 - (20 - 40) ** 2) / (2 * var))


def test_partial_volume_share_bins_fill_gaps_and_never_fall_with_radius():
    radius = np.array([1.0, 1.0, 1.05, 2.0, 2.0, 4.0, 4.0])
    contrast = np.array([10.0, 30.0, 40.0, 60.0, 20.0, 50.0, 200.0])
    share, which = _partial_volume_share(radius, contrast, 100.0)
    # bins of 15 % in radius from the thinnest: 1.0 and 1.05 share one, 2 and 4 mm have their own
    assert which[0] == which[1] == which[2] and which[3] == which[4] < which[5] == which[6]
    assert which[3] - which[0] == 4  # ln 2 / 0.14 = 4.95 bin widths above the first bin's lower edge
    np.testing.assert_allclose(share, [0.3, 0.3, 0.3, 0.4, 0.4, 1.0, 1.0])
    # a bin darker than a thinner one takes the thinner one's share; shares stay within [0.05, 1]
    share, _ = _partial_volume_share(np.array([1.0, 2.0, 2.0]), np.array([60.0, 1.0, 3.0]), 100.0)
    np.testing.assert_allclose(share, [0.6, 0.6, 0.6])
    share, _ = _partial_volume_share(np.array([1.0, 2.0]), np.array([-5.0, 1.0]), 100.0)
    np.testing.assert_allclose(share, [0.05, 0.05])
    # thin radii keep their own bins (0.5 and 0.9 mm are four bins apart)
    share, which = _partial_volume_share(np.array([0.5, 0.9]), np.array([10.0, 50.0]), 100.0)
    assert which.tolist() == [0, 4] and share.tolist() == [0.1, 0.5]
    # radii at or below zero are measured as 1 micrometre; a zero root contrast does not divide by zero
    share, which = _partial_volume_share(np.array([0.0, 1e-3]), np.array([10.0, 30.0]), 0.0)
    assert which[0] == which[1] and np.all(share == 1.0)


def _labelled_bin(thin_portal_hu: float, thin_hepatic_hu: float, n: int = 6):
    """Thick roots (3 mm) of both trees at 180 / 140 HU, and n thin (1 mm) branches of each tree."""
    hu = [180, 140] * 3 + [thin_portal_hu] * n + [thin_hepatic_hu] * n
    labels = np.array([1, 2] * 3 + [1] * n + [2] * n)
    radius = np.array([3.0] * 6 + [1.0] * (2 * n))
    graph, ct = _graph([[v] * 8 for v in hu], radius)
    return graph, ct, radius, labels


def test_a_thin_bin_that_does_not_separate_the_first_labelling_gives_no_evidence():
    graph, ct, radius, labels = _labelled_bin(140, 120)
    llr = branch_log_odds(graph, ct, radius, _measured(), labels)
    assert np.all(llr[6:12] > 0.5) and np.all(llr[12:] < -0.5)
    # the same HU, labelled against the trees: that bin's mean log-odds for portal is below hepatic's
    llr = branch_log_odds(graph, ct, radius, _measured(), 3 - labels)
    assert not llr[6:].any() and np.all(llr[[0, 2, 4]] > 0)  # the thick bin keeps its evidence
    # fewer than three branches of a tree in the bin: no evidence there either
    graph, ct, radius, labels = _labelled_bin(140, 120, n=2)
    assert not branch_log_odds(graph, ct, radius, _measured(), labels)[6:].any()
    graph, ct, radius, labels = _labelled_bin(140, 120, n=3)
    assert branch_log_odds(graph, ct, radius, _measured(), labels)[6:].all()
    # ... nor where only one of the trees has fewer than three
    graph, ct, radius, labels = _labelled_bin(140, 120, n=6)
    labels[6:10] = 0  # two portal branches left in the thin bin, six hepatic
    assert not branch_log_odds(graph, ct, radius, _measured(), labels)[6:].any()


def test_the_bin_separation_threshold():
    # thin bin: portal mean log-odds minus hepatic just above / below min_bin_separation
    graph, ct, radius, labels = _labelled_bin(131, 129)
    llr = branch_log_odds(graph, ct, radius, _measured(), labels, IntensityParams(min_bin_separation=0.0))
    assert not branch_log_odds(graph, ct, radius, _measured(), labels)[6:].any()  # the default 0.5 is more
    sep = llr[6:12].mean() - llr[12:].mean()
    params = IntensityParams(min_bin_separation=sep - 1e-6)
    assert branch_log_odds(graph, ct, radius, _measured(), labels, params)[6:].all()
    params = IntensityParams(min_bin_separation=sep + 1e-6)
    assert not branch_log_odds(graph, ct, radius, _measured(), labels, params)[6:].any()


def test_spread_of_each_radius_bin_measured_on_a_first_labelling_by_hand():
    # Thick bin (3 mm): branches around the root contrasts 80 / 40 HU (e = -20..20), eight unlabelled
    # ones at 95 HU; thin bin (1 mm): around 40 / 20 HU (e' = -4..4), its median 30 HU: g = 0.5.
    e, e_thin = [-20, -10, 0, 0, 10, 20], [-4, -2, 0, 2, 4]
    contrast = np.array([80 + v for v in e] + [40 + v for v in e] + [95] * 8
                        + [40 + v for v in e_thin] + [20 + v for v in e_thin], float)
    labels = np.array([1] * 6 + [2] * 6 + [0] * 8 + [1] * 5 + [2] * 5)
    radius = np.array([3.0] * 20 + [1.0] * 10)
    graph, ct = _graph([[100 + c] * 8 for c in contrast], radius)
    llr = branch_log_odds(graph, ct, radius, _measured(), labels)
    # thick: residuals from the nearer tree (the unlabelled left out): MAD 10 HU x 1.4826, squared,
    # less the noise of a branch (10^2 / 2 samples); above the floor (0.15 x 60)^2 = 81
    var_thick = 50 + (10 * 1.4826) ** 2 - 50
    # thin: residuals e' (MAD 2 HU): 2.9652^2 - 50 is below the floor (0.15 x 60 x 0.5)^2 = 20.25
    var_thin = 50 + 20.25
    mu_p = np.where(radius > 2, 80.0, 40.0)
    mu_h = np.where(radius > 2, 40.0, 20.0)
    var = np.where(radius > 2, var_thick, var_thin)
    expected = np.clip(((contrast - mu_h) ** 2 - (contrast - mu_p) ** 2) / (2 * var), -4, 4)
    np.testing.assert_allclose(llr, expected, rtol=1e-4)
    assert 0 < llr[1] < 4 and -4 < llr[8] < 0 and llr[20] > 1.5  # not all clipped
    # In a thick bin the spread is taken around the nearer tree whatever the label: a labelling that
    # gave every thick branch to the portal tree gets the same evidence there.
    lost = np.where(radius > 2, np.minimum(labels, 1), labels)
    lost[12:20] = 0
    np.testing.assert_allclose(branch_log_odds(graph, ct, radius, _measured(), lost), llr, rtol=1e-6)


def test_the_native_phase_switches_the_cue_off_and_other_phases_do_not():
    for phase in (None, "arterial_early", "arterial_late", "portal_venous", "delayed"):
        assert _measure([[180] * 4] * 2, [[140] * 4] * 2, phase=phase).used, phase
    native = _measure([[180] * 4] * 2, [[140] * 4] * 2, phase="native")
    assert (native.used, native.difference_hu) == (False, 40.0)
    assert native.reason == "native (unenhanced) phase: no contrast between the trees"
