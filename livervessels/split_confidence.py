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

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

# The evidence behind a branch's label (arrays, one value per branch), as the split reports it:
#   margin: cost of the best path from the other tree's roots minus that from its own (inf: none)
#   log_odds_own: the scan's intensity log-odds for the branch's label (0 where the cue is off)
#   radius_mm: core radius
#   other_tree_neighbours: share of the branches it meets at its junctions that have the other label
#     (a branch at a contact between the trees; wrong subtrees start there)
#   growth_depth: junctions crossed on its growth path from a root (every crossing is a decision)
#   weakest_link: the largest -ln(link probability) on that path (a subtree entered through a
#     contact that only looked like a branching hangs on one weak link)
#   climb: the largest ln(radius / thinnest radius before it) on that path (radii shrink away from
#     a root: a path that has to widen again crossed into another vessel)
EVIDENCE = ("margin", "log_odds_own", "radius_mm", "other_tree_neighbours", "growth_depth", "weakest_link", "climb")
FEATURES = ("margin", "log_odds_own", "log_radius", "other_tree_neighbours", "log_growth_depth", "weakest_link",
            "climb", "intercept")


@dataclass(frozen=True)
class ConfidenceModel:
    """p(right) = 1 / (1 + exp(-w . features)); the margin is squashed to +-margin_scale first (an
    infinite margin, no path from the other tree, is as good as a very large one)."""

    weights: tuple[float, ...]  # one per FEATURES
    margin_scale: float = 8.0

    def features(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n, len(FEATURES)) from the evidence arrays (EVIDENCE keys; a missing one counts as 0)."""
        n = len(next(iter(evidence.values()))) if evidence else 0
        get = {k: np.asarray(evidence[k], float) if k in evidence else np.zeros(n) for k in EVIDENCE}
        m = np.nan_to_num(get["margin"], nan=0.0, posinf=1e6, neginf=-1e6)
        m = self.margin_scale * np.tanh(m / self.margin_scale)
        return np.column_stack([m, get["log_odds_own"], np.log(np.maximum(get["radius_mm"], 0.1)),
                                get["other_tree_neighbours"], np.log1p(np.maximum(get["growth_depth"], 0)),
                                np.minimum(np.nan_to_num(get["weakest_link"]), 20.0),
                                np.clip(np.nan_to_num(get["climb"]), 0.0, 5.0), np.ones(n)])

    def __call__(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        z = self.features(evidence) @ np.asarray(self.weights, float)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


# Fitted by bench/fit_split_confidence.py (see bench/results/split_confidence_fit.json).
# 74 tuning phantoms (realistic 1000, 1001, 1005, 1006 x 3 conditions x truth / network;
# first family 200-209 x 5 cases), 46017 branches, 6075 wrong.
DEFAULT_MODEL = ConfidenceModel(weights=(0.1397, 0.3543, 0.4441, -1.3443, -0.3592, -0.0472, -0.8018, 2.7609))


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
