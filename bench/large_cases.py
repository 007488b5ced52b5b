"""Full-size inputs shared by the speed benchmarks (split, repair).

`large_noisy_case()`: a 512 x 512 x 300 CT at 0.8 x 0.8 x 1.5 mm (make_phantom seed 1, vessels that
touch, 20 HU noise) with a network-like vessel mask made worse than the accuracy benchmarks use:
40 gaps, 60 false-positive blobs and noise speckles (parenchyma voxels whose smoothed HU is 2.5
robust SD above the parenchyma, away from vessels), about 280 components. It stands in for what a
user's noisy network output looks like on a full-size scan: many fragments and spurs, which is where
the cost of the split and the repair grows.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.synthetic.phantom import LABELS, make_phantom  # noqa: E402
from livervessels.synthetic.phantom_degrade import simulate_network_mask  # noqa: E402


@dataclass
class LargeCase:
    ct: np.ndarray  # int16 HU
    vessels: np.ndarray  # bool, the noisy network-like mask
    truth: np.ndarray  # uint8 0 / 1 portal / 2 hepatic (intrahepatic vessels)
    liver: np.ndarray  # bool
    ivc: np.ndarray  # bool
    portal_vein: np.ndarray  # bool (portal / splenic trunk)
    spacing: tuple[float, float, float]
    affine: np.ndarray


def large_noisy_case(seed: int = 1, shape=(512, 512, 300), spacing=(0.8, 0.8, 1.5)) -> LargeCase:
    """The full-size noisy case described in the module docstring (about 10 s to make)."""
    ph = make_phantom(seed=seed, shape=shape, spacing=spacing, noise_hu=20.0, vessel_clearance_mm=0.0)
    raw = simulate_network_mask(ph, seed, n_gaps=40, n_blobs=60) > 0
    truth_vessels = ph.labels == LABELS["liver_vessels"]
    liver = (ph.labels == LABELS["liver"]) | truth_vessels
    smooth = ndimage.gaussian_filter(ph.ct.astype(np.float32), 0.8 / np.asarray(ph.spacing))
    background = smooth[liver & ~raw]
    par = float(np.median(background))
    spread = 1.4826 * float(np.median(np.abs(background - par)))
    speckle = liver & (smooth > par + 2.5 * spread) & ~ndimage.binary_dilation(raw, iterations=2)
    return LargeCase(ct=ph.ct, vessels=raw | speckle, truth=ph.vessel_tree, liver=liver,
                     ivc=ph.labels == LABELS["inferior_vena_cava"],
                     portal_vein=ph.labels == LABELS["portal_vein_and_splenic_vein"],
                     spacing=ph.spacing, affine=ph.affine)
