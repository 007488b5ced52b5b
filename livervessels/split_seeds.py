"""Seeds of the portal/hepatic split: vessel voxels near the portal vein (hilum) and near the IVC at
the hepatic vein confluence, keeping only contacts made by thick vessels (see
livervessels.portal_hepatic's module note, step 1)."""
from __future__ import annotations

import cc3d
import numpy as np
from scipy import ndimage

from livervessels.masks import padded_box, reach_voxels
from livervessels.split_types import HEPATIC, PORTAL, SplitParams
from livervessels.vessel_graph import distances_at, feature_indices, values_in_box_at


def find_seeds(vessels: np.ndarray, spacing: tuple[float, float, float], *, portal_vein: np.ndarray | None = None,
               ivc: np.ndarray | None = None, affine: np.ndarray | None = None,
               params: SplitParams | None = None) -> dict[int, np.ndarray]:
    """Seed voxels {PORTAL: mask, HEPATIC: mask} on the input grid: vessel voxels within
    seed_distance_mm of the portal vein / IVC (the nearer one), hepatic ones near the dome, in
    contact patches made by thick vessels (seed_radius_ratio of the thickest). The split then
    picks the root branches at these contacts."""
    p = params or SplitParams()
    vessels = np.asarray(vessels, bool)
    superior = superior_height(affine) if affine is not None else None
    pv = None if portal_vein is None else np.asarray(portal_vein, bool)
    centroid = np.argwhere(pv).mean(axis=0) if pv is not None and pv.any() else None
    return seed_contacts(vessels, pv, None if ivc is None else np.asarray(ivc, bool),
                       tuple(float(s) for s in spacing), p, superior, centroid)


def crop_to_box(mask, box):
    return None if mask is None else np.asarray(mask, bool)[box]


def superior_height(affine) -> np.ndarray:
    """mm of superior (RAS +z) displacement per voxel step along each array axis."""
    return np.asarray(affine, float)[2, :3]


def _distance_near(mask, spacing, reach_mm: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """(box, distance (mm) to the mask on that box): the mask's bounding box grown by reach_mm, which
    holds every voxel that near and every mask voxel, so the values are the whole volume's
    transform's, bit for bit (farther voxels are left out). None for a missing or empty mask."""
    if mask is None or not mask.any():
        return None
    box = padded_box(mask, reach_voxels(spacing, reach_mm))  # every voxel within reach_mm
    return box, ndimage.distance_transform_edt(~mask[box], sampling=spacing)


def seed_contacts(vessels, portal_vein, ivc, spacing, p: SplitParams, superior, pv_centroid) -> dict:
    # Only distances up to seed_distance_mm matter: transforms near each structure only (a voxel
    # outside a structure's box is farther, read as inf).
    near_pv = _distance_near(portal_vein, spacing, p.seed_distance_mm)
    near_ivc = _distance_near(ivc, spacing, p.seed_distance_mm)

    def dist(near, pts):
        return np.full(len(pts), np.inf) if near is None else values_in_box_at(near[1], near[0], pts, fill=np.inf)

    # A voxel near both structures belongs to the nearer one.
    portal = np.zeros(vessels.shape, bool)
    hepatic = np.zeros(vessels.shape, bool)
    for out, own, other in ((portal, near_pv, near_ivc), (hepatic, near_ivc, near_pv)):
        if own is None:
            continue
        box, d = own
        pts = np.argwhere(vessels[box] & (d <= p.seed_distance_mm)) + [b.start for b in box]
        mine, theirs = dist(own, pts), dist(other, pts)
        out[tuple(pts[mine <= theirs if out is portal else mine < theirs].T)] = True
    idx = np.argwhere(hepatic)
    if len(idx):
        # Hepatic veins join the IVC at the dome; portal branches may brush the IVC lower down
        # (caudate lobe). Keep the contacts within dome_window_mm of the highest one.
        if superior is not None:
            height = idx @ superior
        elif pv_centroid is not None:
            height = np.linalg.norm((idx - pv_centroid) * np.asarray(spacing), axis=1)
        else:
            height = None
        if height is not None:
            drop = idx[height < height.max() - p.dome_window_mm]
            hepatic[tuple(drop.T)] = False
    return {PORTAL: _thick_contacts(portal, vessels, spacing, p, p.emerging_root_ratio),
            HEPATIC: _thick_contacts(hepatic, vessels, spacing, p, p.seed_radius_ratio)}


def _thick_contacts(contact: np.ndarray, vessels: np.ndarray, spacing, p: SplitParams, ratio: float) -> np.ndarray:
    """Keep the contact patches made by vessels at least `ratio` x as thick as the thickest. The
    portal tree continues the portal vein and the hepatic veins drain into the IVC through their
    largest vessels; thin vessels of the other tree merely brushing a support structure are not
    roots. A patch's thickness is the largest vessel radius within seed_reach_mm of it (the support
    label may cover the root's first millimetres). The portal vein divides into right and left
    branches of unequal size, so its patches are kept down to the thinner roots the split may
    accept (emerging_root_ratio)."""
    patches, n = cc3d.connected_components(contact, connectivity=26, return_N=True)
    if n <= 1:
        return contact
    # Only vessels near the contacts matter (their radius: room for a thick vessel beyond the reach).
    box = padded_box(patches > 0, reach_voxels(spacing, p.seed_reach_mm + 10.0))
    # (transforms evaluated at the vessel voxels only)
    inside = np.nonzero(vessels[box])
    nearest = feature_indices(patches[box] == 0, spacing)
    near = distances_at(nearest, inside, spacing) <= p.seed_reach_mm
    at = tuple(x[near] for x in inside)
    owner = patches[box][tuple(i[at] for i in nearest)]
    radius = distances_at(feature_indices(vessels[box], spacing), at, spacing)
    thick = ndimage.maximum(radius, owner, index=np.arange(1, n + 1))
    keep = np.r_[False, np.asarray(thick) >= ratio * np.max(thick)]
    return keep[patches]
