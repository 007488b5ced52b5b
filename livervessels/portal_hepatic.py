"""Portal vein vs hepatic vein split of the intrahepatic vessel tree.

Placeholder stage of the application graph: it labels nothing yet (every vessel voxel 0) and says
so in its QC, so the graph, ports and outputs exist. The split itself is the split issue's work.
"""
from __future__ import annotations

import numpy as np

PORTAL, HEPATIC = 1, 2


def split_portal_hepatic(
    vessels: np.ndarray,
    ct: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    liver: np.ndarray | None = None,
    portal_vein: np.ndarray | None = None,
    ivc: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Returns (label map 0/1 portal/2 hepatic on the input grid, QC dict)."""
    labeled = np.zeros(np.shape(vessels), np.uint8)
    total = int(np.count_nonzero(vessels))
    qc = {
        "method": "not yet implemented: no vessel voxel labelled",
        "portal_voxels": 0,
        "hepatic_voxels": 0,
        "total_vessel_voxels": total,
        "portal_fraction": 0.0,
        "hepatic_fraction": 0.0,
        "flags": ["split_not_implemented"],
    }
    return labeled, qc
