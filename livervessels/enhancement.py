"""Liver vessel enhancement: repair the network's raw vessel mask.

Placeholder stage of the application graph: it passes the raw mask through (restricted to the
liver region) and reports what it did, so the graph, its ports and outputs exist. The repair
itself (vesselness, gap bridging, pruning) is the enhancement issue's work.
"""
from __future__ import annotations

import time

import numpy as np

from livervessels import __version__


def enhance_liver_vessels(
    vessels: np.ndarray,
    liver: np.ndarray | None,
    ct: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    fallback_full_volume: bool = True,
) -> tuple[np.ndarray, dict]:
    """Returns (enhanced binary mask on the input grid, metadata)."""
    t0 = time.perf_counter()
    raw = np.asarray(vessels, bool)
    fallbacks = []
    if liver is None or not np.any(liver):
        fallbacks.append("liver mask missing or empty: whole volume used")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    metadata = {
        "method": "pass-through (enhancement not yet implemented)",
        "voxels": int(raw.sum()),
        "volume_ml": round(raw.sum() * voxel_ml, 3),
        "removed_voxels": 0,
        "added_voxels": 0,
        "fallbacks_used": fallbacks,
        "parameters": {},
        "timings_s": {"total": round(time.perf_counter() - t0, 4)},
        "software_versions": {"livervessels": __version__, "numpy": np.__version__},
    }
    return raw.astype(np.uint8), metadata
