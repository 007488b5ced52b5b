"""Couinaud segments from the patient's own vessels: the plane model on landmarks found in the split.

Couinaud divides the liver by the planes that contain the inferior vena cava and each main hepatic
vein (vertical, through the IVC's axis) and by the transverse plane of the portal bifurcation:

- the right hepatic vein separates the right posterior sector (VI below, VII above) from the
  right anterior sector (V below, VIII above);
- the middle hepatic vein (Cantlie's line) separates the right hemiliver from segment IV;
- the umbilical fissure, where the left portal vein turns forward, separates IV from III;
- the left hepatic vein separates III (anterior) from II (posterior);
- the caudate lobe (I) lies between the IVC and the portal bifurcation, below the hepatic veins.

So each voxel's azimuth about the IVC axis (0 deg patient right, 90 deg anterior, 180 deg left,
RAS) and its height against the bifurcation decide its segment. The landmarks are found in the
masks: the IVC axis from the IVC; the bifurcation where the extrahepatic portal vein touches the
intrahepatic tree (without it, the tree's thickest lumen); the three main hepatic veins as the
three azimuth clusters of the thick hepatic vein voxels 25-60 mm from the IVC axis above the
bifurcation; the umbilical point as the leftmost end of the left portal vein's thick part. Where
they cannot be found (no IVC, fewer than three separable hepatic veins, no portal tree) nothing is
labelled and the reason is given.

Plain functions over arrays and a voxel -> RAS mm affine. Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from livervessels.geometry import voxel_spacing
from livervessels.masks import padded_box
from livervessels.resection import couinaud_volumes

SEGMENTS = tuple(range(1, 9))
LABEL_MAP_NAME = "liver_segments_vessel"  # output name of the label map 1-8


def segment_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """couinaud_segment_1 ... _8 as uint8 masks of a label map (the SEG and statistics report them)."""
    labels = np.asarray(labels)
    return {f"couinaud_segment_{s}": (labels == s).astype(np.uint8) for s in SEGMENTS}


@dataclass(frozen=True)
class CouinaudLandmarks:
    """Where the dividing planes lie (RAS mm; azimuths in degrees about the IVC axis, 0 patient
    right, 90 anterior, 180 left, in (-90, 270])."""

    ivc_xy_mm: tuple[float, float]
    hilum_mm: tuple[float, float, float]  # the portal bifurcation
    confluence_z_mm: float  # where the main hepatic veins join the IVC
    right_hv_deg: float
    middle_hv_deg: float
    left_hv_deg: float
    umbilical_deg: float

    def as_qc(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else [round(x, 1) for x in v]) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CouinaudParams:
    """Landmark search (mm, degrees)."""

    vein_band_mm: tuple[float, float] = (25.0, 60.0)  # from the IVC axis: the main veins, not their ostia
    vein_min_radius_mm: float = 1.5  # thick hepatic vein voxels only (tributaries are thin)
    min_vein_separation_deg: float = 15.0
    min_vein_share: float = 0.02  # each of the three veins holds at least this share of the weight (veins differ
    # in calibre: a thin left hepatic vein holds 2-6 % of the thick voxels; the separation is the evidence)
    umbilical_radius_share: float = 0.6  # the left portal vein up to the umbilical point: this share of the
    # bifurcation's radius
    hilum_contact_mm: float = 2.0  # intrahepatic portal voxels this close to the extrahepatic portal vein
    # caudate: between the IVC and the bifurcation (along the line joining them), up to this far to
    # its left and right, from this far below the bifurcation up to the confluence
    caudate_left_mm: float = 30.0
    caudate_right_mm: float = 10.0
    caudate_below_hilum_mm: float = 15.0
    caudate_front_gap_mm: float = 8.0  # it stops short of the bifurcation by this much
    min_split_confidence: float = 0.6  # a split less confident than this is not used


@dataclass
class CouinaudResult:
    labels: np.ndarray | None  # uint8 1-8 in the liver, 0 elsewhere; None when refused
    landmarks: CouinaudLandmarks | None
    refused: str | None = None
    volumes: dict = field(default_factory=dict)  # segment -> {"ml", "percent"}

    def as_qc(self) -> dict:
        return {"method": "Couinaud planes through the IVC and the main hepatic veins, portal bifurcation plane",
                "refused": self.refused, "landmarks": self.landmarks.as_qc() if self.landmarks else None,
                "volumes": self.volumes}


def azimuth_deg(x: np.ndarray, y: np.ndarray, ivc_xy: tuple[float, float]) -> np.ndarray:
    """Azimuth about the IVC axis (RAS mm): 0 patient right, 90 anterior, 180 left, in (-90, 270]."""
    s = np.degrees(np.arctan2(np.asarray(y) - ivc_xy[1], np.asarray(x) - ivc_xy[0]))
    return np.where(s <= -90.0, s + 360.0, s)


def _world(affine: np.ndarray, box: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RAS mm of every voxel of a box (broadcast, float32)."""
    i, j, k = (np.arange(s.start, s.stop, dtype=np.float32) for s in box)
    i, j, k = i[:, None, None], j[None, :, None], k[None, None, :]
    a = affine.astype(np.float32)
    return tuple(a[r, 0] * i + a[r, 1] * j + a[r, 2] * k + a[r, 3] for r in range(3))


def _points(mask: np.ndarray, affine: np.ndarray, offset=(0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """RAS mm (n, 3) of a mask's voxels and their indices in the mask (n, 3); offset: where the mask
    (a box of the grid) starts."""
    idx = np.argwhere(mask)
    return (np.c_[idx + np.asarray(offset), np.ones(len(idx))] @ affine.T)[:, :3], idx


def segments_from_landmarks(liver: np.ndarray, affine: np.ndarray, lm: CouinaudLandmarks,
                            params: CouinaudParams = CouinaudParams()) -> np.ndarray:
    """Segments 1-8 of every liver voxel by the planes the landmarks define (uint8, 0 outside).

    Raises:
        ValueError: liver is not 3-D.
    """
    liver = np.asarray(liver, bool)  # no copy of a boolean mask (80 MB at 512x512x300)
    if liver.ndim != 3:
        raise ValueError(f"the liver mask must be 3-D, not {liver.shape}")
    out = np.zeros(liver.shape, np.uint8)
    box = padded_box(liver, 0)
    if box is None:
        return out
    # float32 coordinates and uint8 labels, filled in place: full-size livers are 5-10 million voxels
    x, y, z = _world(affine, box)
    x -= np.float32(lm.ivc_xy_mm[0])
    y -= np.float32(lm.ivc_xy_mm[1])
    s = azimuth_deg(x, y, (0.0, 0.0)).astype(np.float32)  # x, y are about the IVC axis already
    above = z >= lm.hilum_mm[2]
    seg = np.full(s.shape, 2, np.uint8)  # beyond the left hepatic vein
    seg[s < lm.left_hv_deg] = 3
    seg[s < lm.umbilical_deg] = 4
    sector = s < lm.middle_hv_deg  # right anterior: V below the bifurcation, VIII above
    seg[sector] = 5
    seg[sector & above] = 8
    sector = s < lm.right_hv_deg  # right posterior: VI below, VII above
    seg[sector] = 6
    seg[sector & above] = 7
    del s, sector, above
    # caudate: coordinates along the IVC -> bifurcation line (t) and to its left (n, RAS -x side)
    ux, uy = lm.hilum_mm[0] - lm.ivc_xy_mm[0], lm.hilum_mm[1] - lm.ivc_xy_mm[1]
    reach = float(np.hypot(ux, uy))
    if reach > 1.0:
        ux, uy = ux / reach, uy / reach
        t = x * np.float32(ux) + y * np.float32(uy)
        n = y * np.float32(ux) - x * np.float32(uy)  # > 0 towards the patient's left (RAS -x) of the line
        caudate = ((t >= 0) & (t <= reach - params.caudate_front_gap_mm)
                   & (n <= params.caudate_left_mm) & (n >= -params.caudate_right_mm)
                   & (z >= lm.hilum_mm[2] - params.caudate_below_hilum_mm) & (z <= lm.confluence_z_mm))
        seg[caudate] = 1
    seg[~liver[box]] = 0
    out[box] = seg
    return out


def _kmeans3_azimuths(angles: np.ndarray, weights: np.ndarray, init=(15.0, 90.0, 150.0), iterations: int = 30
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Three weighted clusters of azimuths (degrees, none posterior so no wrap); centres ascending
    and each cluster's share of the weight."""
    centres = np.asarray(init, float)
    for _ in range(iterations):
        which = np.argmin(np.abs(angles[:, None] - centres[None, :]), axis=1)
        new = np.array([np.average(angles[which == c], weights=weights[which == c]) if (which == c).any()
                        else centres[c] for c in range(3)])
        if np.allclose(new, centres, atol=1e-3):
            break
        centres = new
    which = np.argmin(np.abs(angles[:, None] - centres[None, :]), axis=1)
    share = np.array([weights[which == c].sum() for c in range(3)]) / max(weights.sum(), 1e-9)
    order = np.argsort(centres)
    return centres[order], share[order]


def find_landmarks(liver: np.ndarray, portal: np.ndarray, hepatic: np.ndarray, ivc: np.ndarray | None,
                   affine: np.ndarray, portal_trunk: np.ndarray | None = None,
                   params: CouinaudParams = CouinaudParams()) -> tuple[CouinaudLandmarks | None, str | None]:
    """The landmarks of the plane model from the split's portal and hepatic masks, the IVC and
    (optional) the extrahepatic portal vein, all on one grid; (None, reason) where one is missing."""
    spacing = voxel_spacing(affine)
    liver, portal, hepatic = (np.asarray(m, bool) for m in (liver, portal, hepatic))  # no copies
    if not liver.any():
        return None, "no liver"
    if ivc is None or not np.any(ivc):
        return None, "no inferior vena cava mask: the planes pass through its axis"
    if not portal.any() or not hepatic.any():
        return None, "no portal vein or no hepatic vein branches in the split"
    liver_pts, _ = _points(liver[::4, ::4, ::4], affine @ np.diag([4, 4, 4, 1]))
    z_lo, z_hi = float(liver_pts[:, 2].min()), float(liver_pts[:, 2].max())
    ivc_pts, _ = _points(np.asarray(ivc, bool), affine)
    ivc_pts = ivc_pts[(ivc_pts[:, 2] >= z_lo) & (ivc_pts[:, 2] <= z_hi)]
    if len(ivc_pts) < 10:
        return None, "the inferior vena cava does not reach the liver's height"
    ivc_xy = (float(np.median(ivc_pts[:, 0])), float(np.median(ivc_pts[:, 1])))
    ivc_r = float(np.sqrt(len(ivc_pts) * np.prod(spacing) / max(np.ptp(ivc_pts[:, 2]) + spacing[2], 1.0) / np.pi))

    # Distances on the vessels' boxes only: full-grid arrays of a 512x512x300 scan are 300 MB each.
    # portal bifurcation: where the extrahepatic portal vein ends on the intrahepatic tree (the
    # trunk's voxels touching it); without the trunk, the thickest intrahepatic portal voxels
    p_box = padded_box(portal, max(2, int(np.ceil(params.hilum_contact_mm / min(spacing))) + 1))
    p_off = np.array([b.start for b in p_box])
    portal_b = portal[p_box]
    p_edt = ndimage.distance_transform_edt(portal_b, sampling=spacing).astype(np.float32)
    contact = None
    if portal_trunk is not None and np.any(portal_trunk):
        near = ndimage.distance_transform_edt(~portal_b, sampling=spacing) <= params.hilum_contact_mm
        contact = (np.asarray(portal_trunk)[p_box] > 0) & near
    if contact is None or not contact.any():
        contact = p_edt >= 0.8 * p_edt.max()
    hp, _ = _points(contact, affine, p_off)
    hilum = tuple(float(v) for v in hp.mean(axis=0))

    # main hepatic veins: azimuth clusters of thick hepatic voxels in a band around the IVC, above
    # the bifurcation
    h_box = padded_box(hepatic, 2)
    h_off = np.array([b.start for b in h_box])
    h_edt = ndimage.distance_transform_edt(hepatic[h_box], sampling=spacing).astype(np.float32)
    thick = h_edt >= params.vein_min_radius_mm
    pts, idx = _points(thick, affine, h_off)
    d = np.hypot(pts[:, 0] - ivc_xy[0], pts[:, 1] - ivc_xy[1])
    lo, hi = params.vein_band_mm
    keep = (d >= lo) & (d <= hi) & (pts[:, 2] >= hilum[2])
    s = azimuth_deg(pts[keep, 0], pts[keep, 1], ivc_xy)
    w = h_edt[tuple(idx[keep].T)] ** 2
    keep_front = s < 230.0  # no main hepatic vein runs backwards from the IVC
    s, w = s[keep_front], w[keep_front]
    if len(s) < 30:
        return None, "too few thick hepatic vein voxels near the IVC to find the main hepatic veins"
    centres, share = _kmeans3_azimuths(s, w)
    if np.min(np.diff(centres)) < params.min_vein_separation_deg or share.min() < params.min_vein_share:
        return None, (f"three main hepatic veins not found (azimuths {', '.join(f'{c:.0f}' for c in centres)} deg, "
                      f"shares {', '.join(f'{v:.2f}' for v in share)})")
    right, middle, left = (float(c) for c in centres)

    # umbilical point: the leftmost thick part of the left portal vein near the bifurcation's height
    # the bifurcation's radius: the thickest portal lumen within 10 mm of it
    hilum_idx = tuple((np.round(np.linalg.solve(affine, [*hilum, 1.0])[:3]).astype(int) - p_off)
                      .clip(0, np.array(portal_b.shape) - 1))
    reach = np.ceil(10.0 / np.asarray(spacing)).astype(int)
    hilum_r = float(p_edt[tuple(slice(max(i - r, 0), i + r + 1) for i, r in zip(hilum_idx, reach))].max())
    # the left portal vein keeps most of the bifurcation's calibre up to the umbilical point; its
    # branches to segments II-IV are thinner: the thick part joined to the bifurcation ends there
    thick_portal = portal_b & (p_edt >= max(2.0, params.umbilical_radius_share * hilum_r))
    parts, n_parts = ndimage.label(thick_portal, np.ones((3, 3, 3)))
    if n_parts > 1:  # the thick part nearest the bifurcation (thick vessels elsewhere are not its left branch)
        idx = np.argwhere(thick_portal)
        nearest = np.argmin(np.sum(((idx - np.asarray(hilum_idx)) * np.asarray(spacing)) ** 2, axis=1))
        thick_portal = parts == parts[tuple(idx[nearest])]
    pp, _ = _points(thick_portal, affine, p_off)
    left_side = (pp[:, 0] < hilum[0]) & (np.abs(pp[:, 2] - hilum[2]) <= 25.0)
    ps = azimuth_deg(pp[:, 0], pp[:, 1], ivc_xy)
    left_side &= (ps > middle) & (ps < left)
    if left_side.any() and left - middle > 6.0:
        umbilical = float(ps[left_side][np.argmin(pp[left_side, 0])])
        umbilical = float(np.clip(umbilical, middle + 3.0, left - 3.0))
    else:
        umbilical = 0.5 * (middle + left)

    # confluence: the highest hepatic vein voxels next to the IVC
    hp_all, _ = _points(hepatic[h_box], affine, h_off)
    dz = np.hypot(hp_all[:, 0] - ivc_xy[0], hp_all[:, 1] - ivc_xy[1])
    contact = hp_all[dz <= ivc_r + 10.0]
    confluence = float(np.percentile(contact[:, 2], 90)) if len(contact) else float(z_hi)
    return CouinaudLandmarks(ivc_xy, hilum, confluence, right, middle, left, umbilical), None


def segment_volumes(labels: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, dict]:
    """ml and % of the labelled liver of each segment 1-8 (volumes: resection.couinaud_volumes).

    Raises:
        InputError: no voxel is labelled 1-8.
    """
    ml = couinaud_volumes(labels, spacing)
    total = sum(ml.values())
    return {str(s): {"ml": round(v, 1), "percent": round(100.0 * v / total, 1)} for s, v in ml.items()}


def agreement(vessel_labels: np.ndarray, model_labels: np.ndarray, min_dice: float = 0.5) -> dict:
    """Dice per segment between the vessel-derived segments and another labelling of segments 1-8
    (TotalSegmentator's liver_segments model), over the voxels both label; flags any segment below
    min_dice."""
    vessel_labels, model_labels = np.asarray(vessel_labels), np.asarray(model_labels)
    both = (vessel_labels > 0) & (model_labels > 0)
    dice = {}
    for s in SEGMENTS:
        a, b = (vessel_labels == s) & both, (model_labels == s) & both
        total = int(a.sum() + b.sum())
        dice[str(s)] = round(float(2.0 * (a & b).sum() / total), 3) if total else None
    values = [v for v in dice.values() if v is not None]
    low = [s for s, v in dice.items() if v is not None and v < min_dice]
    return {"dice": dice, "mean_dice": round(float(np.mean(values)), 3) if values else None,
            "segments_below": low, "min_dice": min_dice}


def couinaud_segments(liver: np.ndarray, portal: np.ndarray, hepatic: np.ndarray, ivc: np.ndarray | None,
                      affine: np.ndarray, *, portal_trunk: np.ndarray | None = None,
                      split_confidence: float | None = None,
                      params: CouinaudParams = CouinaudParams()) -> CouinaudResult:
    """Couinaud segments 1-8 of the liver from the split's portal and hepatic masks, or the reason
    they cannot be trusted (split confidence below min_split_confidence, a landmark not found).

    Raises:
        ValueError: the masks are not 3-D arrays on one grid.
    """
    shapes = {np.shape(m) for m in (liver, portal, hepatic) + ((ivc,) if ivc is not None else ())}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"liver, portal, hepatic and IVC masks must be 3-D on one grid, not {sorted(shapes)}")
    if split_confidence is not None and split_confidence < params.min_split_confidence:
        return CouinaudResult(None, None, f"split confidence {split_confidence:.2f} below "
                                          f"{params.min_split_confidence:.2f}: the veins that define the planes "
                                          "are uncertain")
    landmarks, reason = find_landmarks(liver, portal, hepatic, ivc, affine, portal_trunk, params)
    if landmarks is None:
        return CouinaudResult(None, None, reason)
    labels = segments_from_landmarks(liver, affine, landmarks, params)
    return CouinaudResult(labels, landmarks, None, segment_volumes(labels, voxel_spacing(affine)))
