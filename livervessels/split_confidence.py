"""Calibrated confidence of the portal / hepatic split: the probability that a branch's label is right.

The split's raw evidence for a branch is the margin between the costs of the best paths reaching it
from the other tree's roots and from its own (cost = -ln of the junction explanations' link
probabilities plus the path terms); a sigmoid of that margin alone claims 0.95-0.99 where one wrong
decision at a contact hands a whole subtree to the other tree. So the margin, the scan's intensity
evidence for the branch's label and the branch's radius are mapped to a probability by a logistic
model fitted on labelled synthetic livers of both phantom families (tuning seeds only; refit with
`bench/fit_split_confidence.py`, checked on unseen seeds by the split benchmarks' reliability
tables). The case's overall confidence is the mean over its branches: the expected share of
branches labelled right, i.e. a prediction of the branch accuracy.

Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

FEATURES = ("margin", "log_odds_own", "log_radius", "intercept")


@dataclass(frozen=True)
class ConfidenceModel:
    """p(right) = 1 / (1 + exp(-w . features)); the margin is squashed to +-margin_scale first (an
    infinite margin, no path from the other tree, is as good as a very large one)."""

    weights: tuple[float, ...]  # one per FEATURES
    margin_scale: float = 8.0

    def features(self, margin: np.ndarray, log_odds_own: np.ndarray, radius_mm: np.ndarray) -> np.ndarray:
        m = np.nan_to_num(np.asarray(margin, float), nan=0.0, posinf=1e6, neginf=-1e6)
        m = self.margin_scale * np.tanh(m / self.margin_scale)
        return np.column_stack([m, np.asarray(log_odds_own, float), np.log(np.maximum(radius_mm, 0.1)),
                                np.ones(len(m))])

    def __call__(self, margin: np.ndarray, log_odds_own: np.ndarray, radius_mm: np.ndarray) -> np.ndarray:
        z = self.features(margin, log_odds_own, radius_mm) @ np.asarray(self.weights, float)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


# Fitted by bench/fit_split_confidence.py (see bench/results/split_confidence_fit.json).
DEFAULT_MODEL = ConfidenceModel(weights=(1.0, 0.0, 0.0, 0.0))


def fit_confidence_model(features: np.ndarray, right: np.ndarray, l2: float = 1e-3,
                         margin_scale: float = 8.0) -> ConfidenceModel:
    """Logistic regression (maximum likelihood with a small L2 penalty) of right/wrong on features
    made by ConfidenceModel.features.

    Raises:
        ValueError: no data, or only right (or only wrong) branches.
    """
    x = np.asarray(features, float)
    y = np.asarray(right, float)
    if not len(y) or y.min() == y.max():
        raise ValueError("fitting the confidence needs both right and wrong branches")

    def loss(w):
        z = x @ w
        nll = np.logaddexp(0.0, -z) * y + np.logaddexp(0.0, z) * (1 - y)
        grad = x.T @ (1.0 / (1.0 + np.exp(-z)) - y)
        return nll.mean() + l2 * (w[:-1] @ w[:-1]), grad / len(y) + 2 * l2 * np.r_[w[:-1], 0.0]

    w0 = np.zeros(x.shape[1])
    res = optimize.minimize(loss, w0, jac=True, method="L-BFGS-B")
    return ConfidenceModel(weights=tuple(float(v) for v in res.x), margin_scale=margin_scale)
