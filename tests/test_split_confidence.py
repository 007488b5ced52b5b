"""The split's confidence model: a logistic map from the evidence to P(label right)."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.split_confidence import DEFAULT_MODEL, ConfidenceModel, fit_confidence_model


def test_fit_recovers_a_known_model():
    rng = np.random.default_rng(0)
    truth = ConfidenceModel(weights=(0.6, 0.8, 1.5, 0.4))
    n = 20000
    margin, llr, radius = rng.normal(1, 3, n), rng.normal(0, 1.5, n), rng.uniform(0.5, 5, n)
    right = rng.random(n) < truth(margin, llr, radius)
    fitted = fit_confidence_model(truth.features(margin, llr, radius), right, l2=0.0)
    assert np.allclose(fitted.weights, truth.weights, atol=0.1)
    # and its probabilities are calibrated on the data it was fitted on
    p = fitted(margin, llr, radius)
    for lo, hi in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01)):
        sel = (p >= lo) & (p < hi)
        assert abs(p[sel].mean() - right[sel].mean()) < 0.03


def test_more_evidence_more_confidence_and_infinite_margins_are_finite():
    m = DEFAULT_MODEL
    p = m(np.array([-5.0, 0.0, 5.0, np.inf, -np.inf]), np.zeros(5), np.full(5, 2.0))
    assert np.all(np.diff(p[:3]) > 0) and p[3] >= p[2] and p[4] <= p[0]
    assert np.all((p > 0) & (p < 1))
    # intensity evidence for the label raises the confidence when the model weighs it
    if m.weights[1] > 0:
        assert m(np.zeros(1), np.ones(1), np.full(1, 2.0))[0] > m(np.zeros(1), -np.ones(1), np.full(1, 2.0))[0]


def test_fit_needs_right_and_wrong_branches():
    with pytest.raises(ValueError):
        fit_confidence_model(np.ones((5, 4)), np.ones(5, bool))
