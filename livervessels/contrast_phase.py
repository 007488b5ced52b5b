"""Contrast phase of a CT from the HU of the blood pools and organs the models segment.

After an intravenous bolus the aorta enhances first (peak about 25-35 s after the injection
starts), the portal vein next (40-60 s, fed by the spleen and the bowel), the liver parenchyma and
the hepatic veins last (60-90 s), and by 3-5 min all blood pools have equilibrated. So the
post-injection time is estimated by fitting time-attenuation curves of those structures to the
medians measured on the scan, and the phase is the time bin TotalSegmentator uses
(`totalseg_get_phase`: native < 10 s, arterial early 10-30 s, arterial late 30-60 s, portal venous
60-100 s, beyond that delayed; TotalSegmentator itself folds delayed into portal venous).

The curves are enhancement over native HU for a standard injection (1.5-2 ml/kg of 300-370 mgI/ml
at 3-5 ml/s), read off the time-attenuation curves published for those protocols (Bae, Radiology
2010;256:32-61, figures of aortic, portal venous and hepatic enhancement; Kanematsu et al., AJR
2006 for the liver). How strongly a patient enhances (dose per weight, cardiac output) is one free
factor that scales every curve (log-normal about 1); a structure's spread around its curve is a floor plus a share of
its enhancement, with Student-t tails so that one bad mask cannot decide the phase. Time and
factor are integrated over a grid: the phase probabilities are the posterior mass in each bin,
with every phase equally likely beforehand.

Plain functions over arrays, HU and seconds. Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from livervessels.masks import padded_box

PHASES = ("native", "arterial_early", "arterial_late", "portal_venous", "delayed")
# phase -> [start, end) of the post-injection time in s (TotalSegmentator's bins; delayed up to 5 min)
PHASE_TIMES_S = {"native": (0.0, 10.0), "arterial_early": (10.0, 30.0), "arterial_late": (30.0, 60.0),
                 "portal_venous": (60.0, 100.0), "delayed": (100.0, 300.0)}

# Structures the phase is read from, as TotalSegmentator names them, with their unenhanced HU.
NATIVE_HU = {"aorta": 42.0, "portal_vein_and_splenic_vein": 42.0, "inferior_vena_cava": 42.0,
             "liver": 58.0, "spleen": 47.0}

# Enhancement over native (HU) at these times (s) after the start of the injection.
_CURVE_TIMES_S = np.array([0, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 100, 120, 180, 300], float)
_CURVES_HU = {
    "aorta": [0, 0, 80, 220, 290, 300, 240, 190, 165, 155, 150, 140, 130, 110, 85],
    "portal_vein_and_splenic_vein": [0, 0, 5, 25, 60, 100, 150, 170, 175, 170, 165, 150, 140, 120, 90],
    # the intrahepatic / suprarenal IVC: renal return early, hepatic venous return later
    "inferior_vena_cava": [0, 0, 0, 10, 30, 50, 80, 100, 115, 125, 130, 130, 125, 110, 85],
    "liver": [0, 0, 2, 5, 8, 12, 25, 40, 52, 58, 60, 58, 55, 45, 35],
    "spleen": [0, 0, 20, 60, 90, 105, 110, 100, 90, 85, 80, 75, 70, 60, 45],
}
# spread of a structure's median around its curve: floor (HU) and share of the enhancement
_SPREAD_FLOOR_HU = {"aorta": 15.0, "portal_vein_and_splenic_vein": 15.0, "inferior_vena_cava": 10.0,
                    "liver": 10.0, "spleen": 12.0}
# Until the blood has mixed, the IVC at the liver carries opacified renal and hepatic return beside
# unopacified blood from the legs (inflow streaming): its median varies widely between scans. At
# equilibrium it matches the other blood pools. Extra floor (HU) before 90 s, fading out by 150 s.
_IVC_MIXING_HU, _IVC_MIXED_S = 20.0, (90.0, 150.0)
_SPREAD_SHARE = 0.2
WARN_BELOW_PORTAL_VENOUS = 0.25  # the QC warns when the portal venous phase is less likely than this
_T_DOF = 4.0  # Student-t tails: a mis-segmented structure costs little more than a few sigma


@dataclass(frozen=True)
class PhaseParams:
    """Measurement and fit settings (mm, s)."""

    erode_mm: float = 2.0  # a structure's HU is measured this far inside its mask (no partial volume)
    min_voxels: int = 50  # fewer measured voxels: the structure is left out
    min_structures: int = 2  # fewer structures measured: no estimate
    time_step_s: float = 1.0
    # how strongly a patient enhances against the curves: log-normal about 1 (dose per weight, cardiac
    # output; low-dose protocols such as PET/CT reach half), integrated over this range
    scale_log_sd: float = 0.4
    scale_range: tuple[float, float] = (0.3, 2.5)
    scale_steps: int = 33


@dataclass
class ContrastPhase:
    """The estimate: the phase, its probability and the post-injection time behind it."""

    phase: str | None  # one of PHASES, None when too little was measured
    probability: float | None
    probabilities: dict[str, float] = field(default_factory=dict)
    post_injection_s: float | None = None  # posterior median
    post_injection_interval_s: tuple[float, float] | None = None  # central 80 %
    structures_hu: dict[str, float] = field(default_factory=dict)  # the medians used
    reason: str = ""

    @property
    def is_portal_venous(self) -> bool:
        return self.phase == "portal_venous"

    def as_qc(self) -> dict:
        return {"phase": self.phase,
                "probability": None if self.probability is None else round(self.probability, 3),
                "probabilities": {k: round(v, 3) for k, v in self.probabilities.items()},
                "post_injection_s": None if self.post_injection_s is None else round(self.post_injection_s, 1),
                "post_injection_interval_s": (None if self.post_injection_interval_s is None
                                              else [round(v, 1) for v in self.post_injection_interval_s]),
                "structures_hu": {k: round(v, 1) for k, v in self.structures_hu.items()},
                "method": "time-attenuation curves fitted to blood-pool and organ HU",
                "reason": self.reason}


def expected_hu(structure: str, time_s: np.ndarray | float, scale: float = 1.0) -> np.ndarray:
    """The curves' HU of a structure at post-injection times (s), its enhancement scaled by scale.

    Raises:
        KeyError: a structure without a curve (see NATIVE_HU).
    """
    t = np.asarray(time_s, float)
    return NATIVE_HU[structure] + scale * np.interp(t, _CURVE_TIMES_S, _CURVES_HU[structure])


def measure_structure_hu(ct: np.ndarray, masks: dict[str, np.ndarray], spacing: tuple[float, float, float],
                         params: PhaseParams = PhaseParams()) -> dict[str, float]:
    """Median HU of each phase structure present in masks, inside its mask eroded by erode_mm
    (the whole mask where erosion leaves too little: thin vessels on thick slices).

    ct and masks share a grid of voxel size spacing (mm). Structures with fewer than min_voxels
    voxels are left out.

    Raises:
        ValueError: a mask is not on the CT's grid.
    """
    out = {}
    radius = np.maximum(np.round(params.erode_mm / np.asarray(spacing, float)).astype(int), 0)
    for name in NATIVE_HU:
        mask = masks.get(name)
        if mask is None:
            continue
        mask = np.asarray(mask, bool)  # no copy of a boolean mask
        if mask.shape != ct.shape:
            raise ValueError(f"the {name} mask {mask.shape} is not on the CT's grid {ct.shape}")
        if mask.sum() < params.min_voxels:
            continue
        box = padded_box(mask, 1)  # erode on the structure's box only: full-size scans are large
        mask, values = mask[box], ct[box]
        structure = np.ones(tuple(2 * r + 1 for r in radius), bool)
        core = ndimage.binary_erosion(mask, structure) if radius.any() else mask
        use = core if core.sum() >= params.min_voxels else mask
        out[name] = float(np.median(values[use]))
    return out


def estimate_contrast_phase(structures_hu: dict[str, float], params: PhaseParams = PhaseParams()) -> ContrastPhase:
    """The contrast phase that best explains the structures' median HU (names as in NATIVE_HU;
    others are ignored).

    Returns a ContrastPhase with phase None (and the reason) when fewer than min_structures
    structures were measured.
    """
    hu = {k: float(v) for k, v in structures_hu.items() if k in NATIVE_HU and np.isfinite(v)}
    if len(hu) < params.min_structures:
        return ContrastPhase(None, None, structures_hu=hu,
                             reason=f"only {len(hu)} of the phase structures ({', '.join(NATIVE_HU)}) measured; "
                                    f"{params.min_structures} are needed")
    times = np.arange(0.0, PHASE_TIMES_S["delayed"][1], params.time_step_s) + params.time_step_s / 2
    scales = np.geomspace(*params.scale_range, params.scale_steps)
    log_like = np.zeros((len(scales), len(times)))
    for name, value in hu.items():
        enhancement = np.interp(times, _CURVE_TIMES_S, _CURVES_HU[name])[None, :] * scales[:, None]
        floor = np.full(times.shape, _SPREAD_FLOOR_HU[name])
        if name == "inferior_vena_cava":
            unmixed = np.clip((_IVC_MIXED_S[1] - times) / (_IVC_MIXED_S[1] - _IVC_MIXED_S[0]), 0.0, 1.0)
            floor = np.hypot(floor, _IVC_MIXING_HU * unmixed)
        sigma = np.hypot(floor[None, :], _SPREAD_SHARE * enhancement)
        z = (value - NATIVE_HU[name] - enhancement) / sigma
        log_like += -0.5 * (_T_DOF + 1) * np.log1p(z * z / _T_DOF) - np.log(sigma)
    # prior: every phase equally likely, time uniform within a phase, log-normal scale
    bins = np.digitize(times, [PHASE_TIMES_S[p][1] for p in PHASES[:-1]])
    widths = np.array([PHASE_TIMES_S[p][1] - PHASE_TIMES_S[p][0] for p in PHASES])
    log_scale_prior = -0.5 * (np.log(scales) / params.scale_log_sd) ** 2
    log_post = log_like - np.log(widths[bins])[None, :] + log_scale_prior[:, None]
    post = np.exp(log_post - log_post.max()).sum(axis=0)
    post /= post.sum()
    probabilities = {p: float(post[bins == i].sum()) for i, p in enumerate(PHASES)}
    best = max(probabilities, key=probabilities.get)
    cdf = np.cumsum(post)
    quantile = lambda q: float(times[min(np.searchsorted(cdf, q), len(times) - 1)])  # noqa: E731
    return ContrastPhase(best, probabilities[best], probabilities, quantile(0.5), (quantile(0.1), quantile(0.9)),
                         hu, reason=f"from {', '.join(hu)}")


def contrast_phase_of_scan(ct: np.ndarray, masks: dict[str, np.ndarray], spacing: tuple[float, float, float],
                           params: PhaseParams = PhaseParams()) -> ContrastPhase:
    """measure_structure_hu then estimate_contrast_phase.

    Raises:
        ValueError: a mask is not on the CT's grid.
    """
    return estimate_contrast_phase(measure_structure_hu(ct, masks, spacing, params), params)


def phase_warning(phase: dict) -> str | None:
    """The QC warning for a scan that is clearly not in the portal venous phase (probability of that
    phase below WARN_BELOW_PORTAL_VENOUS), else None; phase as ContrastPhase.as_qc() gives it.
    Portal venous and delayed (and late arterial near 60 s) are often alike in these five medians:
    warning on every such doubt would drown the warnings that matter."""
    name, probability = phase.get("phase"), phase.get("probability")
    if name is None or name == "portal_venous":
        return None
    if phase.get("probabilities", {}).get("portal_venous", 0.0) >= WARN_BELOW_PORTAL_VENOUS:
        return None
    return (f"contrast phase looks {name.replace('_', ' ')} (probability {probability:.2f}), not "
            "portal venous: the hepatic veins and thin portal branches are less enhanced, so the vessel mask "
            "and the portal/hepatic split are less reliable")
