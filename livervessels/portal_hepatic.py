"""Portal vein vs hepatic vein split of the intrahepatic vessel tree.

Placeholder stage of the application graph: it labels nothing yet (every vessel voxel 0) and says
so in its QC, so the graph, ports and outputs exist. The split itself is the split issue's work.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PORTAL, HEPATIC = 1, 2


@dataclass
class PortalHepaticSplit:
    labels: np.ndarray  # uint8 on the input grid: 0 background, 1 portal, 2 hepatic
    skeleton_labels: np.ndarray | None  # uint8 centerline voxels with their label, when computed
    qc: dict  # portal_hepatic_split_qc


def split_portal_hepatic(
    vessels: np.ndarray,
    ct: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    liver: np.ndarray | None = None,
    portal_vein: np.ndarray | None = None,
    ivc: np.ndarray | None = None,
    use_skeleton: bool = True,
    min_component_size: int = 0,
) -> PortalHepaticSplit:
    """Label every vessel voxel portal (1) or hepatic (2)."""
    labeled = np.zeros(np.shape(vessels), np.uint8)
    total = int(np.count_nonzero(vessels))
    qc = {
        "method": "not yet implemented: no vessel voxel labelled",
        "portal_voxels": 0,
        "hepatic_voxels": 0,
        "total_vessel_voxels": total,
        "portal_fraction": 0.0,
        "hepatic_fraction": 0.0,
        "portal_seed_voxels": 0,
        "hepatic_seed_voxels": 0,
        "use_skeleton": use_skeleton,
        "flags": ["split_not_implemented"],
    }
    return PortalHepaticSplit(labeled, None, qc)
