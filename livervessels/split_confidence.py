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
    infinite margin, no path from the other tree, is as good as a very large one). Then, where
    given, a monotone recalibration (knots of an isotonic fit, linear between them): the logistic
    form is too stiff for what the branches show (under-confident at 0.4-0.7, over-confident at
    0.8-0.9), and the recalibration maps it onto the share of branches found right."""

    weights: tuple[float, ...]  # one per FEATURES
    margin_scale: float = 8.0
    recalibration: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (logistic p knots, calibrated p)

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

    def logistic(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        """The logistic model's probability, before the recalibration."""
        z = self.features(evidence) @ np.asarray(self.weights, float)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))

    def __call__(self, evidence: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.logistic(evidence)
        if self.recalibration is None:
            return p
        knots, values = self.recalibration
        return np.interp(p, knots, values)


# Fitted by bench/fit_split_confidence.py (see bench/results/split_confidence_fit.json) on the
# benchmarks' reference branches of 110 tuning phantoms (realistic 1000-1009 x 3 conditions x truth /
# network; first family 200-209 x 5 cases), 84165 branches, 10635 wrong.
DEFAULT_MODEL = ConfidenceModel(
    weights=(0.0763, 0.6404, 0.7648, -1.5477, -0.1053, -0.0512, -1.0869, 2.5245),
    recalibration=((0.246, 0.403, 0.5061, 0.6527, 0.749, 0.8046, 0.842, 0.8686, 0.8888, 0.9052, 0.9186, 0.9317,
                    0.9454, 0.9597, 0.9799),
                   (0.2289, 0.4832, 0.6064, 0.662, 0.7531, 0.7664, 0.7986, 0.8256, 0.8468, 0.8872, 0.9089, 0.9401,
                    0.9757, 0.9905, 0.9927)),
)


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


def fit_recalibration(probability: np.ndarray, right: np.ndarray, weight: np.ndarray | None = None,
                      bins: int = 12) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Knots of a monotone map from the logistic probability to the share right: the weighted
    share right in `bins` quantile bins of the probability (split further at 0.3, 0.45 and 0.55),
    made non-decreasing (isotonic regression),
    placed at each bin's weighted mean probability (constant beyond the first and last knot).

    Raises:
        ValueError: no data.
    """
    p = np.asarray(probability, float)
    y = np.asarray(right, float)
    w = np.ones(len(p)) if weight is None else np.asarray(weight, float)
    if not len(p):
        raise ValueError("fitting the recalibration needs branches")
    # quantile bins, plus fixed edges in the sparse low range so the few unsure branches keep
    # their order instead of sharing the lowest bin's value
    edges = np.unique(np.r_[np.quantile(p, np.linspace(0.0, 1.0, bins + 1))[1:-1], 0.3, 0.45, 0.55])
    edges = np.r_[-np.inf, edges, np.inf]
    xs, ys, ws = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi)
        if w[m].sum() > 0:
            xs.append(float(np.average(p[m], weights=w[m])))
            ys.append(float(np.average(y[m], weights=w[m])))
            ws.append(float(w[m].sum()))
    ys = optimize.isotonic_regression(np.array(ys), weights=np.array(ws)).x
    values = np.maximum.accumulate(np.round(ys, 4))  # stays monotone after rounding
    return tuple(round(x, 4) for x in xs), tuple(float(v) for v in values)
