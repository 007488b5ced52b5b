"""Ground-truth Couinaud segments of a realistic phantom: the plane model on the phantom's own
landmarks, known exactly from its construction (IVC axis, portal bifurcation, hepatic vein
confluence, the paths of the right, middle and left hepatic veins, the end of the left portal vein's
transverse part where the umbilical part begins: the end of the left portal vein's thick part).

The phantom's hepatic veins are built to run between its portal sectors (realistic._hepatic_skeleton),
so its segments are its portal territories with the hepatic veins between them; but its segment II
and III portal branches are often cut short by the liver surface and the tree grown around them
does not keep to segments, so the territories are taken from the landmarks, not from branch
ancestry. A method scored against this truth is scored on finding the landmarks in the masks.
"""
from __future__ import annotations

import numpy as np

from livervessels.couinaud import CouinaudLandmarks, CouinaudParams, azimuth_deg, segments_from_landmarks
from livervessels.synthetic.realistic import Anatomy, RealisticPhantom
from livervessels.synthetic.vascular_tree import VascularTree

VEIN_BAND_MM = CouinaudParams().vein_band_mm  # a vein's azimuth: its course this far from the IVC axis
MAIN_VEIN_MIN_RADIUS_MM = 1.5  # ... on its branches at least this thick


def _mean_azimuth(points: np.ndarray, weights: np.ndarray, ivc_xy) -> float:
    """Weighted circular mean azimuth of points within VEIN_BAND_MM of the IVC axis."""
    d = np.hypot(points[:, 0] - ivc_xy[0], points[:, 1] - ivc_xy[1])
    far = (d >= VEIN_BAND_MM[0]) & (d <= VEIN_BAND_MM[1])
    if not far.any():
        far = np.ones(len(points), bool)
    vx, vy = points[far, 0] - ivc_xy[0], points[far, 1] - ivc_xy[1]
    norm = np.maximum(np.hypot(vx, vy), 1e-6)
    w = weights[far]
    return float(azimuth_deg(np.sum(w * vx / norm) + ivc_xy[0], np.sum(w * vy / norm) + ivc_xy[1], ivc_xy))


def main_vein_of_nodes(tree, skeleton_points: np.ndarray, skeleton_names: list) -> np.ndarray:
    """For every node of a grown tree, the name of the main (skeleton) branch it drains into or
    comes from: its nearest ancestor that is a skeleton node ("" for none). Skeleton nodes keep
    their positions through the growth, so they are found by position."""
    from scipy.spatial import cKDTree

    dist, which = cKDTree(skeleton_points).query(tree.points)
    own = np.where(dist < 1e-6, np.asarray(skeleton_names, object)[which], None)
    out = np.empty(len(tree.parent), object)
    order = np.argsort(tree.depth_mm())  # parents before children
    for n in order:
        p = tree.parent[n]
        out[n] = own[n] if own[n] is not None else (out[p] if p >= 0 else "")
    return out


def true_landmarks(phantom: RealisticPhantom, params: CouinaudParams = CouinaudParams()) -> CouinaudLandmarks:
    """The phantom's landmarks (RAS mm, degrees).

    Raises:
        ValueError: the phantom's anatomy does not record its main branches.
    """
    return landmarks_of(phantom.anatomy, phantom.portal, phantom.hepatic, params)


def landmarks_of(anat: Anatomy, portal: VascularTree, hepatic: VascularTree,
                 params: CouinaudParams = CouinaudParams()) -> CouinaudLandmarks:
    """true_landmarks from a phantom's anatomy and trees (realistic.realistic_trees: no rendering).

    Raises:
        ValueError: the anatomy does not record its main branches.
    """
    if anat.hepatic_main_branches is None or anat.portal_main_branches is None:
        raise ValueError("the phantom's anatomy does not record its main vessel branches")
    ivc_xy = (float(anat.ivc_xy[0]), float(anat.ivc_xy[1]))
    # each main vein with everything that drains into it: where the main veins' own paths are cut
    # short by the liver surface, their tributaries show where they drain; thick parts above the
    # bifurcation count, weighted by cross-section (as the masks show them)
    tree = hepatic
    vein = main_vein_of_nodes(tree, *anat.hepatic_main_branches)
    edge = tree.parent >= 0
    mid = np.where(edge[:, None], 0.5 * (tree.points + tree.points[np.maximum(tree.parent, 0)]), tree.points)
    thick = edge & (tree.radius >= MAIN_VEIN_MIN_RADIUS_MM) & (mid[:, 2] >= anat.hilum_mm[2])
    right, middle, left = (_mean_azimuth(mid[thick & (vein == n)], tree.radius[thick & (vein == n)] ** 2, ivc_xy)
                           for n in ("right", "middle", "left"))
    # the umbilical point: where the left portal vein's thick part ends (its segment branches are
    # thinner), i.e. its leftmost node of at least umbilical_radius_share of the bifurcation's radius
    # near the bifurcation's height
    branch = main_vein_of_nodes(portal, *anat.portal_main_branches)
    at_hilum = int(np.argmin(np.linalg.norm(portal.points - anat.hilum_mm, axis=1)))
    left_pv = (np.isin(branch, ["left_transverse", "umbilical", "segment_2", "segment_3", "segment_4"])
               & (portal.radius >= params.umbilical_radius_share * portal.radius[at_hilum])
               & (np.abs(portal.points[:, 2] - anat.hilum_mm[2]) <= 25.0))
    point = portal.points[left_pv][np.argmin(portal.points[left_pv, 0])] if left_pv.any() else anat.hilum_mm
    umbilical = float(np.clip(azimuth_deg(point[0], point[1], ivc_xy), middle + 3.0, left - 3.0))
    return CouinaudLandmarks(ivc_xy, tuple(float(v) for v in anat.hilum_mm), float(anat.confluence_mm[2]),
                             right, middle, left, umbilical)


def true_segments(phantom: RealisticPhantom, params: CouinaudParams = CouinaudParams()) -> np.ndarray:
    """Segments 1-8 of the phantom's liver (with its vessels), uint8 on its grid."""
    liver = phantom.support()["liver"]
    return segments_from_landmarks(liver, phantom.affine, true_landmarks(phantom, params), params)
