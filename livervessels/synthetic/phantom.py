"""Deterministic synthetic abdominal CT phantom with liver vessel trees.

The phantom is used to train a tiny demo segmentation model and as ground
truth for tests of vessel enhancement and portal/hepatic vein splitting.
All anatomy is defined in world millimetres, so the same seed gives the
same anatomy and vessel trees on any grid that covers roughly
240 x 240 x 160 mm around the origin. The RAS+ convention is nibabel's: +x = patient Right,
+y = Anterior, +z = Superior, so the liver lies at positive x.

Anatomy: body cylinder with a fat rim, spine, aorta, spleen, kidneys, a
liver made of distorted ellipsoids in the patient's right upper abdomen,
the inferior vena cava (IVC) running along its posterior-medial edge, the
extrahepatic portal vein trunk (with splenic and superior mesenteric
veins) entering at the hilum, and two recursively branching intrahepatic
trees (portal, hepatic) that interleave and occasionally touch -- the hard
case for a portal/hepatic split.

Research use only; not a medical device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, special

LABELS = {"liver": 1, "inferior_vena_cava": 2, "portal_vein_and_splenic_vein": 3, "liver_vessels": 4}

PORTAL_TREE = 1
HEPATIC_TREE = 2

# Scanner point-spread (mm) used for the partial-volume profile of tubes.
_PSF_SIGMA_MM = 0.7
# World x sign of the patient's right. nibabel/NIfTI world space is RAS+
# (+x = patient Right), so the liver sits at positive x and the spleen and
# aorta at negative x.
_RIGHT = 1.0
# Minimum radius of any vessel branch (2 mm diameter vessels).
_MIN_RADIUS_MM = 1.0


@dataclass
class VesselSegment:
    start_mm: np.ndarray  # (3,) world RAS mm
    end_mm: np.ndarray  # (3,)
    radius_mm: float
    tree: int  # 1 = portal, 2 = hepatic
    parent: int  # index of parent segment in Phantom.segments, -1 for a root
    generation: int  # 0 for the root segment


@dataclass
class Phantom:
    ct: np.ndarray  # int16 HU, (nx, ny, nz); i, j, k along world +x, +y, +z (see affine)
    labels: np.ndarray  # uint8 label map using LABELS
    vessel_tree: np.ndarray  # uint8: 0 bg, 1 portal, 2 hepatic (intrahepatic only)
    affine: np.ndarray  # 4x4 voxel -> world RAS mm
    spacing: tuple[float, float, float]
    segments: list[VesselSegment]


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------


def ellipsoid_union_field(shape, x, y, z):
    """The normalised distance field of a union of ellipsoids (shape.centres, shape.axes: (k, 3) mm)
    under a shared sinusoidal distortion (shape.wave_k rad/mm, wave_amp, wave_phase): < 1 inside.
    x, y, z are broadcastable (grid axes or point arrays); float64, as computed."""
    f = None
    for c, a in zip(shape.centres, shape.axes):
        r = np.sqrt(((x - c[0]) / a[0]) ** 2 + ((y - c[1]) / a[1]) ** 2 + ((z - c[2]) / a[2]) ** 2)
        f = r if f is None else np.minimum(f, r)
    distort = 1.0
    for k, amp, ph in zip(shape.wave_k, shape.wave_amp, shape.wave_phase):
        distort = distort + amp * np.sin(k[0] * x + k[1] * y + k[2] * z + ph)
    return f * distort


@dataclass
class _Blob:
    """Union of ellipsoids with a shared low-frequency sinusoidal distortion.

    The field is < 1 inside; using an analytic field (instead of only a voxel
    mask) lets the tree growth test arbitrary points cheaply and exactly.
    """

    centres: np.ndarray  # (k, 3)
    axes: np.ndarray  # (k, 3) semi-axes mm
    wave_k: np.ndarray  # (w, 3) wave vectors rad/mm
    wave_amp: np.ndarray  # (w,)
    wave_phase: np.ndarray  # (w,)

    def field(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        # x, y, z are broadcastable (grid axes or point arrays).
        return ellipsoid_union_field(self, x, y, z).astype(np.float32)

    def bounds(self, pad: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
        lo = np.min(self.centres - pad * self.axes, axis=0)
        hi = np.max(self.centres + pad * self.axes, axis=0)
        return lo, hi


def _make_blob(rng: np.random.Generator, centres, axes, amp: float = 0.045, n_waves: int = 3) -> _Blob:
    centres = np.asarray(centres, float).reshape(-1, 3)
    axes = np.asarray(axes, float).reshape(-1, 3)
    dirs = rng.normal(size=(n_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    wavelength = rng.uniform(70.0, 150.0, size=(n_waves, 1))
    return _Blob(
        centres=centres,
        axes=axes,
        wave_k=dirs * (2 * np.pi / wavelength),
        wave_amp=rng.uniform(0.5, 1.0, size=n_waves) * amp,
        wave_phase=rng.uniform(0, 2 * np.pi, size=n_waves),
    )


class WorldGrid:
    """World coordinates (mm) of a diagonal-affine grid, with sub-box helpers; both phantom families
    render on it."""

    def __init__(self, origin, spacing, shape):
        self.origin = np.asarray(origin, float)
        self.spacing = np.asarray(spacing, float)
        self.shape = tuple(int(s) for s in shape)

    @classmethod
    def centred(cls, shape, spacing) -> WorldGrid:
        """A grid whose centre is the world origin."""
        shape = tuple(int(s) for s in shape)
        return cls(-(np.asarray(shape) - 1) / 2.0 * np.asarray(spacing, float), spacing, shape)

    def affine(self) -> np.ndarray:
        aff = np.diag(np.r_[self.spacing, 1.0])
        aff[:3, 3] = self.origin
        return aff

    def box(self, lo_mm, hi_mm) -> tuple[slice, slice, slice] | None:
        lo = np.floor((np.asarray(lo_mm) - self.origin) / self.spacing).astype(int)
        hi = np.ceil((np.asarray(hi_mm) - self.origin) / self.spacing).astype(int) + 1
        lo = np.clip(lo, 0, self.shape)
        hi = np.clip(hi, 0, self.shape)
        if np.any(hi <= lo):
            return None
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def coords(self, box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open-grid (broadcastable) world coordinates of a sub-box, float32."""
        out = []
        for ax, sl in enumerate(box):
            c = (self.origin[ax] + np.arange(sl.start, sl.stop) * self.spacing[ax]).astype(np.float32)
            shp = [1, 1, 1]
            shp[ax] = c.size
            out.append(c.reshape(shp))
        return out[0], out[1], out[2]


def _segment_distance(grid: WorldGrid, a: np.ndarray, b: np.ndarray, margin: float):
    """Distance (mm) to segment a-b, evaluated only inside its bounding box."""
    box = grid.box(np.minimum(a, b) - margin, np.maximum(a, b) + margin)
    if box is None:
        return None, None
    x, y, z = grid.coords(box)
    x, y, z = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    v = (b - a).astype(np.float32)
    l2 = float(v @ v)
    if l2 > 1e-12:
        t = np.clip((x * v[0] + y * v[1] + z * v[2]) / np.float32(l2), 0.0, 1.0)
    else:
        t = np.zeros((1, 1, 1), np.float32)
    d2 = (x - t * v[0]) ** 2 + (y - t * v[1]) ** 2 + (z - t * v[2]) ** 2
    return box, np.sqrt(d2)


def _pv_weight(d: np.ndarray, r: float) -> np.ndarray:
    """Partial-volume fraction of a tube of radius r seen through a Gaussian PSF.

    Edge profile is an erfc ramp; the amplitude is rescaled so that the value
    on the centreline matches the exact 2-D result 1 - exp(-r^2 / 2 s^2).
    This makes ~1 mm vessels faint and blurred like on real CT.
    """
    s = _PSF_SIGMA_MM
    edge_centre = 0.5 * special.erfc(-r / (np.sqrt(2) * s))
    peak = (1.0 - np.exp(-(r * r) / (2 * s * s))) / edge_centre
    return (peak * 0.5 * special.erfc((d - r) / np.float32(np.sqrt(2) * s))).astype(np.float32)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / max(np.linalg.norm(v), 1e-12)


def _random_perp(rng: np.random.Generator, d: np.ndarray) -> np.ndarray:
    u = rng.normal(size=3)
    u -= (u @ d) * d
    return _unit(u)


# --------------------------------------------------------------------------
# Vessel tree growth
# --------------------------------------------------------------------------


def centerline_distances(points_mm: np.ndarray, segments: list[VesselSegment]) -> np.ndarray:
    """(n_points, n_segments) distance (mm) from each point to each segment's centerline."""
    a = np.array([s.start_mm for s in segments])
    b = np.array([s.end_mm for s in segments])
    v = b - a
    l2 = np.maximum((v * v).sum(1), 1e-12)
    rel = points_mm[:, None, :] - a[None]
    t = np.clip((rel * v[None]).sum(2) / l2[None], 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * v[None], axis=2)


class _TreeGrower:
    """Recursive bifurcating tree growth, clipped to the liver.

    Without a clearance there is no collision avoidance, so the trees interleave
    and touch or pass through each other; with one, vessels may touch but not
    interpenetrate.
    """

    def __init__(self, rng, liver_field, ivc_xy, ivc_r, segments, clearance_mm=None):
        self.rng = rng
        self.liver_field = liver_field
        self.ivc_xy = ivc_xy
        self.ivc_r = ivc_r
        self.segments = segments
        self.clearance_mm = clearance_mm
        self.obstacles: list[VesselSegment] = []  # extrahepatic vessels the trees keep clear of

    def _allowed(self, pts: np.ndarray, radius: float, tree: int, parent: int = -1) -> np.ndarray:
        # Keep the centreline roughly a radius inside the surface (the field is
        # ~ normalised radius, liver semi-axes are ~ 55 mm).
        f = self.liver_field(pts[:, 0], pts[:, 1], pts[:, 2])
        ok = f < 1.0 - (radius + 1.0) / 55.0
        d_ivc = np.hypot(pts[:, 0] - self.ivc_xy[0], pts[:, 1] - self.ivc_xy[1])
        if tree == PORTAL_TREE:
            ok &= d_ivc > self.ivc_r + radius + 2.0  # IVC label would cut it
        else:
            ok |= d_ivc < self.ivc_r  # hepatic veins drain into the IVC
        if self.clearance_mm is not None:
            ok &= self._clear_of_other_vessels(pts, radius, tree, parent)
        return ok

    def _clear_of_other_vessels(self, pts: np.ndarray, radius: float, tree: int, parent: int) -> np.ndarray:
        """Vessels may touch but not pass through each other: centerlines stay at least
        r1 + r2 + clearance apart, except from the segment's parent and siblings (they share its
        start point) and, for a root, the other roots of its tree."""
        def exempt(i, s):
            if s.tree != tree:
                return False
            return i == parent or s.parent == parent
        other = [s for i, s in enumerate(self.segments) if not exempt(i, s)]
        other += [s for s in self.obstacles if not (s.tree == tree and parent == -1)]
        if not other:
            return np.ones(len(pts), bool)
        r = np.array([s.radius_mm for s in other])
        d = centerline_distances(pts, other)
        return np.all(d >= r[None] + radius + self.clearance_mm, axis=1)

    def _clip(self, start, direction, length, radius, tree, parent=-1):
        n = max(int(np.ceil(length)), 2) + 1
        t = np.linspace(0.0, length, n)
        pts = start[None, :] + t[:, None] * direction[None, :]
        ok = self._allowed(pts, radius, tree, parent)
        if ok.all():
            return pts[-1], length, True
        first_bad = int(np.argmin(ok))
        if first_bad == 0:
            return start, 0.0, False
        return pts[first_bad - 1], float(t[first_bad - 1]), False

    def grow(self, start, direction, radius, gen, tree, parent, origin, max_gen, length=None, child_dirs=None):
        rng = self.rng
        if length is None:
            length = max(radius * rng.uniform(6.0, 9.5), 5.0)
        # Try a few perturbed directions; keep the first that stays inside,
        # otherwise the longest clipped one.
        best = None
        for attempt in range(6):
            d = direction if attempt == 0 else _unit(direction + rng.normal(0, 0.3 * attempt, 3))
            end, got, full = self._clip(start, d, length, radius, tree, parent)
            if best is None or got > best[1]:
                best = (end, got, full, d)
            if full:
                break
        end, got, full, d = best
        if got < max(2.0, radius):
            return
        idx = len(self.segments)
        self.segments.append(
            VesselSegment(start_mm=start.copy(), end_mm=end.copy(), radius_mm=float(radius),
                          tree=tree, parent=parent, generation=gen)
        )
        if gen >= max_gen or not full:
            return  # clipped at the liver surface: branch stops there
        r1 = max(radius * rng.uniform(0.74, 0.86), _MIN_RADIUS_MM)
        r2 = max(radius * rng.uniform(0.60, 0.76), _MIN_RADIUS_MM)
        if child_dirs is None:
            # Planar bifurcation: the thicker child deviates less (Murray-like).
            p = _random_perp(rng, d)
            t1 = np.deg2rad(rng.uniform(15, 35))
            t2 = np.deg2rad(rng.uniform(35, 65))
            away = _unit(end - origin)
            c1 = _unit(d * np.cos(t1) + p * np.sin(t1) + 0.25 * away)
            c2 = _unit(d * np.cos(t2) - p * np.sin(t2) + 0.25 * away)
        else:
            c1, c2 = child_dirs
        self.grow(end, c1, r1, gen + 1, tree, idx, origin, max_gen)
        self.grow(end, c2, r2, gen + 1, tree, idx, origin, max_gen)


# --------------------------------------------------------------------------
# Phantom assembly steps (first family)
# --------------------------------------------------------------------------
# Every step that takes `rng` consumes it; make_phantom calls them in a fixed
# order because that order is what makes a seed reproduce the same phantom.

# Body cross-section semi-axes and subcutaneous fat thickness (mm). Fixed
# physical size (not scaled to the field of view) so a seed gives the same
# anatomy and trees on any grid covering ~240 x 240 x 160 mm.
_BODY_AXES_MM = (113.0, 100.0)
_FAT_MM = 12.0
_INNER_AXES_MM = (_BODY_AXES_MM[0] - _FAT_MM, _BODY_AXES_MM[1] - _FAT_MM)
# Reach (mm) of a tube's partial-volume blur beyond its radius.
_PV_MARGIN_MM = 3.0 * _PSF_SIGMA_MM + 1.0

_Box = tuple[slice, slice, slice]
_TrunkSegment = tuple[np.ndarray, np.ndarray, float]  # (start mm, end mm, radius mm)


def _jitter(rng: np.random.Generator, scale: float) -> np.ndarray:
    """A uniform random offset (mm) in [-scale, scale]^3."""
    return rng.uniform(-scale, scale, size=3)


def _inside_body_field(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Normalised elliptic radius of the inner (muscle) body wall: < 1 inside; x, y in mm."""
    return np.sqrt((x / _INNER_AXES_MM[0]) ** 2 + (y / _INNER_AXES_MM[1]) ** 2)


@dataclass
class _Anatomy:
    """Randomised organ geometry of one first-family phantom (world mm)."""

    main_c: np.ndarray  # right lobe centre
    main_a: np.ndarray  # right lobe semi-axes
    left_c: np.ndarray  # left lobe centre
    left_a: np.ndarray  # left lobe semi-axes
    ivc_x: float
    ivc_y: float
    ivc_r: float
    z_junction: float  # height where the hepatic veins join the IVC
    liver: _Blob
    spleen: _Blob
    kidneys: list[_Blob]

    def liver_field(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Liver shape field (< 1 inside), clipped to the inside of the body wall."""
        return np.maximum(self.liver.field(x, y, z), _inside_body_field(x, y))


def _render_body(grid: WorldGrid, rng: np.random.Generator, contrast_hu: float) -> np.ndarray:
    """Float32 HU volume of the body cylinder: fat rim, soft tissue, spine and contrast-filled aorta."""
    # z-invariant, so built as one 2-D slice and broadcast along z.
    full2d = (slice(0, grid.shape[0]), slice(0, grid.shape[1]), slice(0, 1))
    x2, y2, _ = grid.coords(full2d)
    x2, y2 = x2[:, :, 0], y2[:, :, 0]
    body_e = np.sqrt((x2 / _BODY_AXES_MM[0]) ** 2 + (y2 / _BODY_AXES_MM[1]) ** 2)
    inner_e = np.sqrt((x2 / _INNER_AXES_MM[0]) ** 2 + (y2 / _INNER_AXES_MM[1]) ** 2)
    ct2d = np.where(inner_e <= 1, 40.0, np.where(body_e <= 1, -100.0, -1000.0)).astype(np.float32)

    spine_xy = np.array([0.0, -_BODY_AXES_MM[1] + 25.0])
    d_sp = np.hypot(x2 - spine_xy[0], y2 - spine_xy[1])
    ct2d[d_sp <= 14.0] = 700.0  # cortical shell
    ct2d[d_sp <= 11.5] = 250.0  # cancellous bone
    aorta_xy = np.array([-_RIGHT * 16.0, -48.0]) + _jitter(rng, 2)[:2]  # aorta: left of midline
    ct2d = np.where(np.hypot(x2 - aorta_xy[0], y2 - aorta_xy[1]) <= 10.0, contrast_hu - 10.0, ct2d)
    ct = np.empty(grid.shape, np.float32)
    ct[...] = ct2d[:, :, None]
    return ct


def _draw_anatomy(rng: np.random.Generator) -> _Anatomy:
    """Random liver lobes, IVC, spleen and kidneys (mm)."""
    main_c = np.array([_RIGHT * 38.0, 0.0, 0.0]) + _jitter(rng, 4)  # right lobe
    main_a = np.array([62.0, 55.0, 60.0]) * rng.uniform(0.93, 1.07, 3)
    left_c = np.array([-_RIGHT * 15.0, 22.0, 15.0]) + _jitter(rng, 4)  # left lobe crosses midline
    left_a = np.array([42.0, 30.0, 30.0]) * rng.uniform(0.9, 1.1, 3)
    ivc_r = float(rng.uniform(10.0, 12.0))
    ivc_x = _RIGHT * 10.0 + rng.uniform(-3, 3)
    # Sit the IVC on the posterior surface of the main lobe (half embedded).
    back = main_c[1] - main_a[1] * np.sqrt(max(1 - ((ivc_x - main_c[0]) / main_a[0]) ** 2, 0.1))
    ivc_y = back + 2.0
    z_junction = main_c[2] + 0.62 * main_a[2]
    # Caudate / bare-area lobe wrapping the IVC so hepatic veins reach it.
    caud_c = np.array([ivc_x, ivc_y + 8.0, z_junction - 15.0])
    caud_a = np.array([28.0, 22.0, 40.0])
    liver = _make_blob(rng, [main_c, left_c, caud_c], [main_a, left_a, caud_a])
    spleen_c = np.array([-_RIGHT * 75.0, -45.0, 20.0]) + _jitter(rng, 4)
    spleen = _make_blob(rng, [spleen_c], [[20.0, 35.0, 45.0]], amp=0.06)
    kidneys = [
        _make_blob(rng, [np.array([sx * 55.0, -60.0, -45.0]) + _jitter(rng, 3)], [[22.0, 17.0, 40.0]], amp=0.03)
        for sx in (-1.0, 1.0)
    ]
    return _Anatomy(main_c=main_c, main_a=main_a, left_c=left_c, left_a=left_a, ivc_x=ivc_x, ivc_y=ivc_y,
                    ivc_r=ivc_r, z_junction=z_junction, liver=liver, spleen=spleen, kidneys=kidneys)


def _paint_distractor_organs(ct: np.ndarray, grid: WorldGrid, anatomy: _Anatomy) -> None:
    """Writes spleen (110 HU) and kidneys (150 HU) into ct; they get no label (distractors)."""
    for blob, hu in [(anatomy.spleen, 110.0), (anatomy.kidneys[0], 150.0), (anatomy.kidneys[1], 150.0)]:
        box = grid.box(*blob.bounds())
        if box is None:
            continue
        x, y, z = grid.coords(box)
        m = (blob.field(x, y, z) < 1.0) & (_inside_body_field(x, y) < 1.0)
        ct[box][m] = hu


def _paint_liver(
    ct: np.ndarray, labels: np.ndarray, grid: WorldGrid, anatomy: _Anatomy, rng: np.random.Generator
) -> tuple[_Box, np.ndarray]:
    """Writes ~100 HU textured parenchyma into ct and the liver label; returns the liver's
    bounding box on grid and the liver mask within it."""
    lbox = grid.box(*anatomy.liver.bounds())
    if lbox is None:
        raise ValueError("grid does not cover the liver; use a field of view of ~240x240x160 mm")
    lx, ly, lz = grid.coords(lbox)
    liver_mask = anatomy.liver_field(lx, ly, lz) < 1.0
    # Mild low-frequency parenchymal inhomogeneity (+-5 HU).
    texture = 5.0 * np.sin(0.05 * lx + 0.03 * ly + 0.04 * lz + rng.uniform(0, 2 * np.pi))
    ct_l = ct[lbox]  # view: edits go into ct
    ct_l[liver_mask] = np.broadcast_to(100.0 + texture, liver_mask.shape)[liver_mask]
    labels[lbox][liver_mask] = LABELS["liver"]
    return lbox, liver_mask


def _portal_trunk(grid: WorldGrid, anatomy: _Anatomy, rng: np.random.Generator) -> list[_TrunkSegment]:
    """Extrahepatic portal vein (confluence -> hilum), splenic vein and SMV as (start, end, radius) mm;
    all three start at the confluence."""
    main_c, main_a = anatomy.main_c, anatomy.main_a
    hilum = main_c + np.array([-_RIGHT * 0.45, 0.15, -0.45]) * main_a  # inferior-medial
    confluence = hilum + np.array([-_RIGHT * 28.0, -12.0, -28.0]) + _jitter(rng, 3)
    splenic_end = anatomy.spleen.centres[0] + np.array([_RIGHT * 16.0, 10.0, -15.0])  # splenic hilum
    smv_end = confluence + np.array([-_RIGHT * 3.0, 5.0, 0.0])
    smv_end[2] = grid.origin[2] - 10.0  # leaves the bottom of the field of view
    return [(confluence, hilum, 6.5), (confluence, splenic_end, 5.0), (confluence, smv_end, 5.0)]


def _grow_portal_tree(grower: _TreeGrower, rng: np.random.Generator, anatomy: _Anatomy,
                      confluence: np.ndarray, hilum: np.ndarray) -> None:
    """Grows the intrahepatic portal tree (5 mm root at the hilum) into grower.segments."""
    entry = _unit(hilum - confluence)
    root_len = rng.uniform(12.0, 16.0)
    root_end = hilum + entry * root_len
    right_target = anatomy.main_c + np.array([_RIGHT * 0.45, -0.05, 0.1]) * anatomy.main_a
    # The root splits into right and left portal branches aimed at the two lobes.
    grower.grow(
        hilum, entry, 5.0, 0, PORTAL_TREE, -1, hilum, max_gen=6, length=root_len,
        child_dirs=(_unit(right_target - root_end), _unit(anatomy.left_c - root_end)),
    )


def _grow_hepatic_trees(grower: _TreeGrower, rng: np.random.Generator, anatomy: _Anatomy) -> None:
    """Grows the right, middle and left hepatic veins (4.2-5 mm roots) from the IVC into grower.segments."""
    main_c, main_a, left_c, left_a = anatomy.main_c, anatomy.main_a, anatomy.left_c, anatomy.left_a
    ivc_r = anatomy.ivc_r
    junction = np.array([anatomy.ivc_x, anatomy.ivc_y, anatomy.z_junction])
    hep_targets = [
        (main_c + np.array([_RIGHT * 0.5, 0.1, -0.15]) * main_a, 5.0),  # right hepatic vein
        (np.array([main_c[0] - _RIGHT * 0.35 * main_a[0], main_c[1] + 0.6 * main_a[1], main_c[2]]), 4.5),  # middle
        (left_c + np.array([0.0, 0.0, 0.1]) * left_a, 4.2),  # left
    ]
    for target, r in hep_targets:
        d = _unit(_unit(target - junction) + rng.normal(0, 0.1, 3))
        start = junction + d * 0.5 * ivc_r  # inside the IVC lumen: connected
        grower.grow(start, d, r, 0, HEPATIC_TREE, -1, junction, max_gen=5,
                    length=0.5 * ivc_r + r * rng.uniform(6.0, 9.0))


def _grow_trees(rng: np.random.Generator, anatomy: _Anatomy, trunk: list[_TrunkSegment],
                clearance_mm: float | None) -> list[VesselSegment]:
    """Intrahepatic portal and hepatic vessel trees (centrelines in mm), portal first."""
    segments: list[VesselSegment] = []
    grower = _TreeGrower(rng, anatomy.liver_field, (anatomy.ivc_x, anatomy.ivc_y), anatomy.ivc_r, segments,
                         clearance_mm)
    grower.obstacles = [VesselSegment(np.asarray(a, float), np.asarray(b, float), r, PORTAL_TREE, -1, -1)
                        for a, b, r in trunk]
    confluence, hilum, _ = trunk[0]
    _grow_portal_tree(grower, rng, anatomy, confluence, hilum)
    _grow_hepatic_trees(grower, rng, anatomy)
    return segments


def _rasterise_trees(
    sub: WorldGrid, liver_mask: np.ndarray, segments: list[VesselSegment]
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """On the liver sub-grid: per-tree partial-volume weights (float32, 0..1) and the uint8 tree
    label (0 / PORTAL_TREE / HEPATIC_TREE) of voxels inside a vessel and the liver."""
    shape = liver_mask.shape
    w = {PORTAL_TREE: np.zeros(shape, np.float32), HEPATIC_TREE: np.zeros(shape, np.float32)}
    sd = {PORTAL_TREE: np.full(shape, np.inf, np.float32), HEPATIC_TREE: np.full(shape, np.inf, np.float32)}
    # Label radius floor: half the voxel diagonal guarantees a 26-connected
    # voxel chain along any centreline, so thin branches do not fragment.
    label_r_min = 0.5 * float(np.linalg.norm(sub.spacing))
    for seg in segments:
        box, dist = _segment_distance(sub, seg.start_mm, seg.end_mm, seg.radius_mm + _PV_MARGIN_MM)
        if box is None:
            continue
        np.maximum(w[seg.tree][box], _pv_weight(dist, seg.radius_mm), out=w[seg.tree][box])
        np.minimum(sd[seg.tree][box], dist - max(seg.radius_mm, label_r_min), out=sd[seg.tree][box])
    # Where both trees claim a voxel, the nearer wall wins.
    vt = np.where(sd[PORTAL_TREE] <= sd[HEPATIC_TREE], PORTAL_TREE, HEPATIC_TREE).astype(np.uint8)
    vt[(np.minimum(sd[PORTAL_TREE], sd[HEPATIC_TREE]) > 0) | ~liver_mask] = 0
    return w, vt


def _paint_intrahepatic_vessels(
    ct: np.ndarray, labels: np.ndarray, vessel_tree: np.ndarray, grid: WorldGrid, lbox: _Box,
    liver_mask: np.ndarray, segments: list[VesselSegment], contrast_hu: float,
) -> None:
    """Blends the vessel trees into the liver in ct (hepatic contrast_hu, portal +20 HU) and writes
    their liver_vessels label and vessel_tree ground truth; rendered in the liver box only."""
    sub = WorldGrid(grid.origin + np.array([s.start for s in lbox]) * grid.spacing, grid.spacing, liver_mask.shape)
    w, vt = _rasterise_trees(sub, liver_mask, segments)
    ct_l = ct[lbox]  # view: edits go into ct
    # Mix vessel HU into the parenchyma (clipped to the liver).
    for tree, hu in [(HEPATIC_TREE, contrast_hu), (PORTAL_TREE, contrast_hu + 20.0)]:
        ww = w[tree] * liver_mask
        ct_l += (hu - ct_l) * ww
    vessel_tree[lbox] = vt
    labels[lbox][vt > 0] = LABELS["liver_vessels"]


def _paint_portal_trunk(
    ct: np.ndarray, labels: np.ndarray, grid: WorldGrid, trunk: list[_TrunkSegment], contrast_hu: float
) -> None:
    """Blends the extrahepatic portal trunk, splenic vein and SMV (contrast_hu + 20 HU) into ct and
    writes their portal_vein_and_splenic_vein label."""
    for a, b, r in trunk:
        box, dist = _segment_distance(grid, a, b, r + _PV_MARGIN_MM)
        if box is None:
            continue
        ww = _pv_weight(dist, r)
        ct[box] += (contrast_hu + 20.0 - ct[box]) * ww
        labels[box][dist <= r] = LABELS["portal_vein_and_splenic_vein"]


def _paint_ivc(ct: np.ndarray, labels: np.ndarray, grid: WorldGrid, anatomy: _Anatomy, contrast_hu: float) -> None:
    """Blends the IVC, a vertical tube (contrast_hu) through the whole z extent, into ct and writes
    its inferior_vena_cava label."""
    ivc_x, ivc_y, ivc_r = anatomy.ivc_x, anatomy.ivc_y, anatomy.ivc_r
    margin = _PV_MARGIN_MM
    ivc_box = grid.box([ivc_x - ivc_r - margin, ivc_y - ivc_r - margin, grid.origin[2]],
                       [ivc_x + ivc_r + margin, ivc_y + ivc_r + margin, -grid.origin[2]])
    if ivc_box is None:
        return
    x, y, _ = grid.coords(ivc_box)
    dist = np.hypot(x - np.float32(ivc_x), y - np.float32(ivc_y))
    ct[ivc_box] += (contrast_hu - ct[ivc_box]) * _pv_weight(dist, ivc_r)
    labels[ivc_box][np.broadcast_to(dist <= ivc_r, labels[ivc_box].shape)] = LABELS["inferior_vena_cava"]


def _reconstruct(ct: np.ndarray, rng: np.random.Generator, noise_hu: float) -> np.ndarray:
    """The int16 HU image a scanner would give: reconstruction blur plus Gaussian noise (noise_hu SD).
    Blurs ct in place."""
    ndimage.gaussian_filter(ct, sigma=0.5, output=ct, truncate=3.0)
    if noise_hu > 0:
        ct += rng.standard_normal(ct.shape, dtype=np.float32) * np.float32(noise_hu)
    return np.clip(np.rint(ct), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def make_phantom(
    seed: int = 0,
    shape: tuple[int, int, int] = (160, 160, 64),
    spacing: tuple[float, float, float] = (1.5, 1.5, 2.5),
    noise_hu: float = 12.0,
    contrast_hu: float = 180.0,
    vessel_clearance_mm: float | None = None,
) -> Phantom:
    """Generate a deterministic synthetic portal-venous-phase abdominal CT.

    vessel_clearance_mm: None lets intrahepatic vessels pass through each other (physically
    impossible; a stress case for the portal/hepatic split, and the default used to train the demo
    model); a number keeps every vessel's centerline at least r1 + r2 + this away from the other
    vessels (its parent and siblings excepted) and from the extrahepatic portal vein, so walls
    touch at most (0: vessels may touch, as in a real liver)."""
    rng = np.random.default_rng(seed)
    grid = WorldGrid.centred(shape, spacing)
    # The steps run in this order because each consumes rng: reordering them changes every seed's phantom.
    ct = _render_body(grid, rng, contrast_hu)
    anatomy = _draw_anatomy(rng)
    _paint_distractor_organs(ct, grid, anatomy)
    labels = np.zeros(grid.shape, np.uint8)
    lbox, liver_mask = _paint_liver(ct, labels, grid, anatomy, rng)
    trunk = _portal_trunk(grid, anatomy, rng)
    segments = _grow_trees(rng, anatomy, trunk, vessel_clearance_mm)
    # Later vessels overwrite earlier labels: intrahepatic trees, then portal trunk, then IVC.
    vessel_tree = np.zeros(grid.shape, np.uint8)
    _paint_intrahepatic_vessels(ct, labels, vessel_tree, grid, lbox, liver_mask, segments, contrast_hu)
    _paint_portal_trunk(ct, labels, grid, trunk, contrast_hu)
    _paint_ivc(ct, labels, grid, anatomy, contrast_hu)
    # Ground truth only where the final label is an intrahepatic vessel.
    vessel_tree[labels != LABELS["liver_vessels"]] = 0
    ct_i16 = _reconstruct(ct, rng, noise_hu)

    return Phantom(
        ct=ct_i16,
        labels=labels,
        vessel_tree=vessel_tree,
        affine=grid.affine(),
        spacing=tuple(float(s) for s in grid.spacing),
        segments=segments,
    )


def save_nifti(phantom: Phantom, out_dir: str | os.PathLike) -> None:
    """Writes ct.nii.gz (int16), labels.nii.gz (uint8), vessel_tree.nii.gz (uint8) with phantom.affine."""
    import nibabel as nib  # local import: generation itself does not need nibabel

    os.makedirs(out_dir, exist_ok=True)
    for name, arr, dtype in [
        ("ct", phantom.ct, np.int16),
        ("labels", phantom.labels, np.uint8),
        ("vessel_tree", phantom.vessel_tree, np.uint8),
    ]:
        img = nib.Nifti1Image(np.asarray(arr, dtype=dtype), phantom.affine)
        img.header.set_data_dtype(dtype)
        img.header.set_xyzt_units("mm")
        img.set_qform(phantom.affine, code=1)
        img.set_sform(phantom.affine, code=1)
        nib.save(img, os.path.join(os.fspath(out_dir), f"{name}.nii.gz"))
