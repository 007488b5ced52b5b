"""statistics.json: per structure volume and HU; per vessel tree its centerline graph measures.

Not named statistics.py: the MAP puts every folder of the package on PYTHONPATH, where that name
would hide the standard library's statistics module (tests/test_map_layout.py).
"""
from __future__ import annotations

import numpy as np

from livervessels.geometry import Volume
from livervessels.masks import padded_box

VESSEL_TREES = ("enhanced_liver_vessels", "portal_vein_branches", "hepatic_veins")


def structure_statistics(masks: dict[str, np.ndarray], volume: Volume) -> dict:
    """{name: {volume_ml, mean_hu, median_hu, voxels}} for every mask, plus vessel tree measures."""
    # a voxel's volume from the affine: on a tilted-gantry grid (kept sheared) the product of the
    # column lengths overstates it by 1 / cos(tilt)
    voxel_ml = abs(float(np.linalg.det(np.asarray(volume.affine, float)[:3, :3]))) / 1000.0
    ct = np.asarray(volume.array)
    out: dict = {"structures": {}, "vessel_trees": {}}
    for name, mask in masks.items():
        m = np.asarray(mask, bool)
        n = int(m.sum())
        values = ct[m] if n else np.empty(0)
        out["structures"][name] = {
            "voxels": n,
            "volume_ml": round(n * voxel_ml, 3),
            "mean_hu": round(float(values.mean()), 1) if n else None,
            "median_hu": round(float(np.median(values)), 1) if n else None,
        }
    for name in VESSEL_TREES:
        if name in masks and np.any(masks[name]):
            out["vessel_trees"][name] = vessel_tree_statistics(np.asarray(masks[name], bool), volume)
    return out


def vessel_tree_statistics(mask: np.ndarray, volume: Volume) -> dict:
    """Branches, centerline length (mm), radii (mm) and terminal branches from the skeleton graph."""
    from livervessels.vessel_graph import build_vessel_graph, summarize_tree

    # The graph keeps full-grid arrays: crop to the tree (plus a margin for the distance transform).
    box = padded_box(mask, 2)
    return summarize_tree(build_vessel_graph(mask[box], volume.spacing, ct=np.asarray(volume.array)[box]))
