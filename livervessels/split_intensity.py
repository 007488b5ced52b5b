"""The scan's own intensity difference between the portal and the hepatic veins, as evidence for the split.

In the portal venous phase the portal veins are brighter than the hepatic veins (typically 10-40 HU);
in the equilibrium phase they are equally bright. So the difference is measured on each scan, on the
thick branches of both trees after a first labelling without it (no partial volume there, and thick
vessels are what that labelling gets right), and used only when it is clearly larger than its
uncertainty. Thin branches look darker (partial volume); how much is measured on the scan
too, from all branches of a radius, so no point-spread model is assumed. Each branch then gets the
log-odds that its centerline HU came from the portal rather than the hepatic tree.

Plain functions over the centerline graph (livervessels.vessel_graph); HU and mm.
Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import median_abs_deviation

from livervessels.vessel_graph import VesselGraph

PORTAL, HEPATIC = 1, 2


@dataclass(frozen=True)
class IntensityParams:
    """When and how the intensity difference is used (HU, mm)."""

    root_min_radius_mm: float = 2.0  # lumen HU of a tree: its branches' centerline voxels this thick
    min_difference_hu: float = 8.0  # below this the trees count as equally bright
    min_z: float = 3.0  # ... and the difference must be this many standard errors
    structure_fraction: float = 0.15  # branch-to-branch spread of the contrast beyond noise (partial volume, mixing)
    max_log_odds: float = 4.0  # one branch's evidence is capped (a blob or a merge can fake any HU)
    voxels_per_sample: float = 4.0  # centerline voxels per independent sample (neighbours are correlated: blur)
    min_bin_separation: float = 0.5  # a radius bin's evidence is used only where it tells the first labelling's
    # trees apart: their mean log-odds differ by at least this (else the partial-volume model does not hold there)


@dataclass
class TreeIntensity:
    """What was measured on this scan."""

    used: bool  # the difference is large and certain enough to be evidence
    reason: str
    parenchyma_hu: float | None = None
    portal_hu: float | None = None  # lumen HU of the portal roots
    hepatic_hu: float | None = None
    difference_hu: float | None = None  # portal - hepatic
    difference_se_hu: float | None = None
    noise_hu: float | None = None  # of one centerline voxel

    def as_qc(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure_tree_intensity(graph: VesselGraph, ct: np.ndarray, branch_label: np.ndarray,
                           parenchyma: np.ndarray | None, radius: np.ndarray,
                           params: IntensityParams = IntensityParams(), phase: str | None = None) -> TreeIntensity:
    """Lumen HU of both trees on their thick branches, the parenchyma HU, and whether the
    difference can be used.

    graph and ct share a grid; branch_label (n_branches,) 0/1/2 (a first labelling: thick vessels
    are the ones it gets right); parenchyma: bool mask of liver tissue away from vessels (or None);
    radius (n_branches,) core radius in mm. Each thick branch gives one value, the median HU of its
    lumen core; the standard error of the difference comes from the spread between branches (it
    holds partial volume, mixing and mislabelled branches, not only noise).

    phase: the scan's contrast phase (livervessels.contrast_phase.PHASES) when known. Unenhanced
    (native) scans have no difference to use. In every phase the portal veins fill before the
    hepatic veins, so they are never clearly darker: a labelling whose hepatic thick branches are
    brighter has probably swapped trees, and the difference would confirm the swap; it is not used."""
    if ct is None:
        return TreeIntensity(False, "no CT")
    if parenchyma is None or not parenchyma.any():
        return TreeIntensity(False, "no liver parenchyma to measure against")
    par = float(np.median(ct[parenchyma]))
    values = {}
    for lab in (PORTAL, HEPATIC):
        per_branch = []
        for i in np.flatnonzero((branch_label == lab) & (radius >= params.root_min_radius_mm)):
            vox = graph.branches[i].voxels
            # the lumen core only: not the branch's ends, where it narrows or meets a junction
            core = graph.radius_mm[tuple(vox.T)] >= params.root_min_radius_mm
            if core.sum() >= 3:
                per_branch.append(float(np.median(ct[tuple(vox[core].T)])))
        if len(per_branch) < 2:
            return TreeIntensity(False, f"fewer than two {'portal' if lab == PORTAL else 'hepatic'} branches "
                                        f"{params.root_min_radius_mm} mm thick", parenchyma_hu=par)
        values[lab] = np.asarray(per_branch)
    # noise of one centerline voxel: robust spread of differences between neighbours along branches
    diffs = [np.diff(ct[tuple(b.voxels.T)].astype(float)) for b in graph.branches if len(b.voxels) > 2]
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    noise = max(float(median_abs_deviation(d, scale="normal")) / np.sqrt(2.0), 1.0)
    mp, mh = (float(np.median(values[lab])) for lab in (PORTAL, HEPATIC))
    spread = {lab: max(float(median_abs_deviation(values[lab], scale="normal")), 1.0) for lab in (PORTAL, HEPATIC)}
    se = 1.2533 * float(np.sqrt(sum(spread[lab] ** 2 / len(values[lab]) for lab in (PORTAL, HEPATIC))))
    diff = mp - mh
    out = TreeIntensity(False, "", par, mp, mh, diff, se, noise)
    if phase == "native":
        out.reason = "native (unenhanced) phase: no contrast between the trees"
    elif abs(diff) < params.min_difference_hu:
        out.reason = f"portal and hepatic veins equally bright ({diff:+.0f} HU < {params.min_difference_hu:.0f} HU)"
    elif abs(diff) < params.min_z * se:
        out.reason = f"difference {diff:+.0f} HU not certain (standard error {se:.0f} HU)"
    elif diff < 0:
        out.reason = (f"hepatic veins {-diff:.0f} HU brighter than portal veins, which no contrast phase gives: "
                      "the first labelling may have swapped thick branches")
    elif min(mp, mh) - par < params.min_difference_hu:
        out.reason = "vessels barely brighter than the parenchyma"
    else:
        out.used = True
        out.reason = f"portal veins {diff:+.0f} HU brighter than hepatic veins (standard error {se:.1f} HU)"
    return out


def branch_log_odds(graph: VesselGraph, ct: np.ndarray, radius: np.ndarray, measured: TreeIntensity,
                    branch_label: np.ndarray | None = None,
                    params: IntensityParams = IntensityParams()) -> np.ndarray:
    """log P(centerline HU | portal) / P(centerline HU | hepatic) for every branch (0 when unused).

    A branch's expected contrast over the parenchyma is its tree's root contrast times g(r), the
    share of the contrast a vessel of radius r keeps under partial volume; g is measured on this
    scan as the median contrast of all branches of that radius over the mean root contrast. The
    spread around that expectation is noise plus how much branches of one measured radius differ
    (thin vessels all look about one voxel wide in a mask, whatever their true width): measured
    per radius bin on a first labelling (branch_label) when given, else structure_fraction of the
    contrast."""
    nb = len(graph.branches)
    if not measured.used or nb == 0:
        return np.zeros(nb)
    par = measured.parenchyma_hu
    cp, ch = measured.portal_hu - par, measured.hepatic_hu - par
    contrast = np.array([float(np.mean(ct[tuple(b.voxels.T)])) for b in graph.branches]) - par
    n = np.array([max(len(b.voxels) / params.voxels_per_sample, 1.0) for b in graph.branches])
    g, which = _partial_volume_share(radius, contrast, 0.5 * (cp + ch))
    mu_p, mu_h = cp * g, ch * g
    structure = (params.structure_fraction * 0.5 * (cp + ch) * g) ** 2
    if branch_label is not None and (branch_label > 0).any():
        expected = np.where(branch_label == PORTAL, mu_p, mu_h)
        resid = np.where(branch_label > 0, contrast - expected, np.nan)
        # Thick vessels: the spread around whichever tree's HU is nearer, so that a labelling which
        # gave one tree's thick branches to the other (see below) does not widen it.
        thick = (radius >= params.root_min_radius_mm) & (branch_label > 0)
        nearer = np.where(np.abs(contrast - mu_p) < np.abs(contrast - mu_h), contrast - mu_p, contrast - mu_h)
        resid = np.where(thick, nearer, resid)
        for k in np.unique(which):
            sel = (which == k) & np.isfinite(resid)
            if sel.sum() >= 10:
                r = resid[sel]
                spread2 = float(median_abs_deviation(r, scale="normal")) ** 2
                noise2 = float(np.median(measured.noise_hu ** 2 / n[sel]))
                structure[which == k] = np.maximum(structure[which == k], spread2 - noise2)
    var = measured.noise_hu ** 2 / n + structure
    llr = np.clip(((contrast - mu_h) ** 2 - (contrast - mu_p) ** 2) / (2 * var), -params.max_log_odds,
                  params.max_log_odds)
    if branch_label is not None:
        # Checked on this scan: in each radius bin the evidence must separate the trees of the
        # geometry-only labelling (right for most branches). Where thin vessels' HU depends on
        # more than the model knows (their true width, what they touch), both trees' branches
        # get the same log-odds and the evidence would only push subtrees across.
        for k in np.unique(which):
            sel = which == k
            if np.median(radius[sel]) >= params.root_min_radius_mm:
                # As thick as the vessels the difference was measured on: no partial volume to
                # model, and this labelling may have lost most of one tree's thick branches (a
                # lobar portal branch taken by the hepatic veins), so it cannot be the judge.
                continue
            lp, lh = llr[sel & (branch_label == PORTAL)], llr[sel & (branch_label == HEPATIC)]
            if len(lp) < 3 or len(lh) < 3 or lp.mean() - lh.mean() < params.min_bin_separation:
                llr[sel] = 0.0
    return llr


def _partial_volume_share(radius: np.ndarray, contrast: np.ndarray, root_contrast: float
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(g(r) in (0, 1] per branch, its radius bin): median contrast of the branches of each radius
    (log bins of 15 %), made non-decreasing in r, over the root contrast."""
    r = np.maximum(radius, 1e-3)
    edges = np.exp(np.arange(np.log(r.min()) - 1e-6, np.log(r.max()) + 0.15, 0.14))
    which = np.clip(np.digitize(r, edges) - 1, 0, len(edges) - 2)
    med = ndimage.median(contrast, which, index=np.arange(len(edges) - 1))
    med = np.asarray(med, float)
    count = np.bincount(which, minlength=len(edges) - 1)
    med[count == 0] = np.nan
    # empty bins take the nearest thinner bin's value; then non-decreasing with radius
    for i in range(len(med)):
        if np.isnan(med[i]):
            med[i] = med[i - 1] if i > 0 and not np.isnan(med[i - 1]) else 0.0
    med = np.maximum.accumulate(med)
    share = np.clip(med / max(root_contrast, 1e-6), 0.05, 1.0)
    return share[which], which
