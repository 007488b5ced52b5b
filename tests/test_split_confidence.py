"""The split's confidence model: a logistic map from the evidence to P(label right)."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.split_confidence import DEFAULT_MODEL, ConfidenceModel, fit_confidence_model, fit_recalibration


def test_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    truth = ConfidenceModel(weights=(0.6, 0.8, 1.5, -1.0, -0.5, -0.3, -0.8, 0.4))
    n = 40000
    ev = {"margin": rng.normal(1, 3, n), "log_odds_own": rng.normal(0, 1.5, n), "radius_mm": rng.uniform(0.5, 5, n),
          "other_tree_neighbours": rng.uniform(0, 1, n), "growth_depth": rng.integers(0, 60, n),
          "weakest_link": rng.exponential(2.0, n), "climb": rng.exponential(0.5, n)}
    right = rng.random(n) < truth(ev)
    fitted = fit_confidence_model(truth.features(ev), right, l2=0.0)
    assert np.allclose(fitted.weights, truth.weights, atol=0.12)
    # and its probabilities are calibrated on the data it was fitted on
    p = fitted(ev)
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01)):
        sel = (p >= lo) & (p < hi)
        assert abs(p[sel].mean() - right[sel].mean()) < 0.03


def test_more_evidence_more_confidence_and_infinite_margins_are_finite():
    m = DEFAULT_MODEL
    p = m({"margin": np.array([-5.0, 0.0, 5.0, np.inf, -np.inf]), "log_odds_own": np.zeros(5),
           "radius_mm": np.full(5, 2.0)})
    assert np.all(np.diff(p[:3]) > 0) and p[3] >= p[2] and p[4] <= p[0]
    assert np.all((p > 0) & (p < 1))
    # intensity evidence for the label raises the confidence when the model weighs it
    if m.weights[1] > 0:
        ev = {"margin": np.zeros(2), "log_odds_own": np.array([1.0, -1.0]), "radius_mm": np.full(2, 2.0)}
        assert m(ev)[0] > m(ev)[1]


def test_recalibration_maps_a_miscalibrated_probability_onto_the_share_right():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.3, 1.0, 60000)
    share = 0.55 + 0.45 * p**3  # under-confident at 0.3-0.7, over-confident near 0.85, as the split was
    right = rng.random(len(p)) < share
    knots, values = fit_recalibration(p, right)
    assert np.all(np.diff(knots) > 0) and np.all(np.diff(values) >= 0)
    q = np.interp(p, knots, values)
    for lo, hi in ((0.3, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.0)):
        sel = (p >= lo) & (p < hi)
        assert abs(q[sel].mean() - right[sel].mean()) < 0.02, (lo, hi)
        if lo < 0.7:
            assert abs(p[sel].mean() - right[sel].mean()) > 0.05  # it was off there before
    # the model applies it after its logistic part
    ev = {"margin": np.array([-2.0, 0.0, 3.0]), "radius_mm": np.full(3, 2.0)}
    plain = ConfidenceModel(weights=DEFAULT_MODEL.weights)
    recalibrated = ConfidenceModel(weights=DEFAULT_MODEL.weights, recalibration=(knots, values))
    assert np.allclose(recalibrated(ev), np.interp(plain(ev), knots, values))
    assert np.allclose(recalibrated.logistic(ev), plain(ev))


def test_fit_needs_right_and_wrong_branches():
    with pytest.raises(ValueError):
        fit_confidence_model(np.ones((5, 8)), np.ones(5, bool))


# ---------------------------------------------------------------------------------------------
# On a dense liver: the confidence falls where the split is wrong
# ---------------------------------------------------------------------------------------------


def _dense_split(delta_hu: float):
    from livervessels.portal_hepatic import split_portal_hepatic
    from livervessels.synthetic.realistic import ScanProtocol, make_realistic_phantom

    # a tuning seed (its trees are shared with the other realistic-phantom tests)
    ph = make_realistic_phantom(1005, protocol=ScanProtocol(pixel_mm=0.8, slice_mm=1.5, noise_hu=12.0,
                                                            parenchyma_hu=100.0, portal_hu=185.0,
                                                            hepatic_hu=185.0 - delta_hu))
    split = split_portal_hepatic(ph.vessel_mask, ph.ct, ph.spacing, affine=ph.affine, **ph.support())
    br = split.branches
    truth = np.array([np.bincount(ph.vessel_tree[tuple(br.input_voxels(b.index).T)], minlength=3)
                      for b in br.graph.branches])
    scored = (truth[:, 1:].sum(axis=1) > 0) & (br.labels > 0)
    right = br.labels == np.argmax(truth[:, 1:], axis=1) + 1
    return split, br.confidence[scored], right[scored]


@pytest.fixture(scope="module", params=[30.0, 0.0], ids=["portal-venous", "equilibrium"])
def dense_split(request):
    return request.param, _dense_split(request.param)


def _auc(conf: np.ndarray, right: np.ndarray) -> float:
    """Chance that a right branch is more confident than a wrong one."""
    order = np.argsort(conf)
    ranks = np.empty(len(conf))
    ranks[order] = np.arange(1, len(conf) + 1)
    return float((ranks[right].sum() - right.sum() * (right.sum() + 1) / 2) / (right.sum() * (~right).sum()))


def test_confidence_is_lower_on_wrong_branches(dense_split):
    delta, (_, conf, right) = dense_split
    assert 0.02 < (~right).mean() < 0.4  # the case has errors to find
    assert conf[~right].mean() < conf[right].mean()
    if delta:
        # the scan's HU difference speaks against most wrong labels: they stand out
        assert conf[~right].mean() < conf[right].mean() - 0.08
        assert _auc(conf, right) > 0.7
        low = conf <= np.quantile(conf, 0.2)  # the least confident fifth: wrong far more often
        assert (~right[low]).mean() > 2.5 * (~right[~low]).mean()
    # With equally bright trees the geometry alone barely tells a wrongly attached subtree from a
    # right one (the README reports it); only the case's overall confidence holds there.


def test_overall_confidence_predicts_the_share_of_right_branches(dense_split):
    _, (split, _, right) = dense_split
    assert abs(split.qc["confidence"] - right.mean()) < 0.08


# ---------------------------------------------------------------------------------------------
# By hand: the features, the logistic map and the recalibration knots
# ---------------------------------------------------------------------------------------------


def test_features_by_hand():
    m = ConfidenceModel(weights=(0.0,) * 8, margin_scale=4.0)
    ev = {"margin": np.array([2.0, np.inf, -np.inf, np.nan]), "log_odds_own": np.array([1.5, 0.0, -2.0, 0.0]),
          "radius_mm": np.array([2.0, 0.05, 0.0, 1.0]), "other_tree_neighbours": np.array([0.5, 0.0, 1.0, 0.25]),
          "growth_depth": np.array([3, 0, -2, 10]), "weakest_link": np.array([1.0, 25.0, np.nan, 20.0]),
          "climb": np.array([0.5, -1.0, 7.0, np.nan])}
    f = m.features(ev)
    assert f.shape == (4, 8)
    np.testing.assert_allclose(f[:, 0], [4 * np.tanh(0.5), 4.0, -4.0, 0.0])  # squashed to +-margin_scale; nan: 0
    np.testing.assert_allclose(f[:, 1], [1.5, 0.0, -2.0, 0.0])
    np.testing.assert_allclose(f[:, 2], np.log([2.0, 0.1, 0.1, 1.0]))  # radii under 0.1 mm count as 0.1
    np.testing.assert_allclose(f[:, 3], [0.5, 0.0, 1.0, 0.25])
    np.testing.assert_allclose(f[:, 4], np.log1p([3, 0, 0, 10]))
    np.testing.assert_allclose(f[:, 5], [1.0, 20.0, 0.0, 20.0])  # capped at 20; nan: 0
    np.testing.assert_allclose(f[:, 6], [0.5, 0.0, 5.0, 0.0])  # within [0, 5]
    np.testing.assert_allclose(f[:, 7], 1.0)
    # a missing key counts as 0 (a radius of 0 as 0.1 mm); no evidence at all gives no rows
    only = m.features({"margin": np.array([0.0, 1.0])})
    np.testing.assert_allclose(only[:, 1:], [[0, np.log(0.1), 0, 0, 0, 0, 1]] * 2)
    assert m.features({}).shape == (0, 8)


def test_logistic_and_recalibration_by_hand():
    w = (1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, -0.25)
    m = ConfidenceModel(weights=w)
    ev = {"margin": np.array([0.0, 1.0, 1e9]), "log_odds_own": np.array([0.5, -2.0, 0.0])}
    z = np.array([0.0 + 0.25 - 0.25, 8 * np.tanh(1 / 8) - 1.0 - 0.25, 8.0 - 0.25])
    np.testing.assert_allclose(m(ev), 1 / (1 + np.exp(-z)))
    assert m(ev)[0] == 0.5
    # the linear score is clipped at +-40 before the exponential (no overflow, never exactly 0 or 1)
    steep = ConfidenceModel(weights=(100.0,) + (0.0,) * 7)
    p = steep({"margin": np.array([-10.0, 10.0])})
    np.testing.assert_allclose(p, [1 / (1 + np.exp(40.0)), 1 / (1 + np.exp(-40.0))])
    assert 0.0 < p[0] < 1e-17
    # recalibration: linear between knots, constant beyond them
    cal = ConfidenceModel(weights=w, recalibration=((0.2, 0.6), (0.1, 0.9)))
    q = cal({"margin": np.array([-8.0, 0.0, 8.0]), "log_odds_own": np.array([0.0, 0.0, 0.0])})
    logistic = cal.logistic({"margin": np.array([-8.0, 0.0, 8.0])})
    np.testing.assert_allclose(q, np.interp(logistic, (0.2, 0.6), (0.1, 0.9)))
    assert q[0] == 0.1 and q[2] == 0.9 and q[1] == pytest.approx(0.1 + 0.8 * (1 / (1 + np.exp(0.25)) - 0.2) / 0.4)


def test_recalibration_knots_by_hand():
    # twelve branches, two quantile bins (the median, 0.65) split further at 0.3, 0.45 and 0.55
    p = np.array([0.1, 0.2, 0.35, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.991])
    right = np.array([0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0], bool)
    knots, values = fit_recalibration(p, right, bins=2)
    # bins [< 0.3], [0.3, 0.45), [0.45, 0.55) (an edge belongs to the bin above it), [0.55, 0.65),
    # [>= 0.65]; each knot at its bin's mean probability, rounded to 4 places (5.311 / 6)
    assert knots == (0.15, 0.35, 0.475, 0.6, 0.8852)
    # shares right 1/2, 0, 1, 0, 5/6 made non-decreasing: the first two pooled (1/3), the next two (2/3)
    assert values == (0.3333, 0.3333, 0.6667, 0.6667, 0.8333)
    # weights move the knots and the shares: the first bin 0.175 and 3/4, pooled with the next, 3/5
    w = np.array([1, 3] + [1] * 10, float)
    knots_w, values_w = fit_recalibration(p, right, weight=w, bins=2)
    assert knots_w[:2] == (0.175, 0.35) and values_w[:2] == (0.6, 0.6)
    # by default 12 quantile bins: on 200 spread probabilities, 11 inner edges and the three fixed ones
    q = np.linspace(0.005, 0.995, 200)
    assert len(fit_recalibration(q, q > 0.5)[0]) == 15
    with pytest.raises(ValueError, match="^fitting the recalibration needs branches$"):
        fit_recalibration(np.zeros(0), np.zeros(0, bool))


def test_fit_errors_and_the_penalty():
    with pytest.raises(ValueError, match="^fitting the confidence needs both right and wrong branches$"):
        fit_confidence_model(np.ones((5, 8)), np.zeros(5, bool))
    with pytest.raises(ValueError, match="both right and wrong"):
        fit_confidence_model(np.zeros((0, 8)), np.zeros(0, bool))
    # separable data: without a penalty the weight runs off, the L2 penalty holds it (not the intercept)
    x = np.column_stack([np.r_[-np.ones(20), np.ones(20)], np.ones(40)])
    y = np.r_[np.zeros(20), np.ones(20)]
    free, held = fit_confidence_model(x, y, l2=0.0), fit_confidence_model(x, y, l2=0.1)
    assert free.weights[0] > 5.0 and 0.5 < held.weights[0] < 3.0 and abs(held.weights[1]) < 1e-3

    def objective(w):  # mean negative log-likelihood + l2 |w without the intercept|^2, written out
        z = x @ w
        return np.mean(y * np.log1p(np.exp(-z)) + (1 - y) * np.log1p(np.exp(z))) + 0.1 * w[0] ** 2

    w = np.array(held.weights)
    for step in ([1e-3, 0.0], [-1e-3, 0.0], [0.0, 1e-3], [0.0, -1e-3]):
        assert objective(w) < objective(w + step)  # the minimum
    # the default penalty (1e-3) is slight: it holds the weight far less than 0.1 does
    default = fit_confidence_model(x, y)
    assert default.weights[0] > 2.0 * held.weights[0]
    assert held.margin_scale == 8.0 and fit_confidence_model(x, y, margin_scale=3.0).margin_scale == 3.0
    # the intercept is not penalised: 90 % right with no other feature gives p = 0.9
    ones = np.ones((100, 1))
    assert 1 / (1 + np.exp(-fit_confidence_model(ones, np.arange(100) < 90, l2=10.0).weights[0])) == pytest.approx(
        0.9, abs=1e-3)
