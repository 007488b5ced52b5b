"""Realistic liver phantoms: dense portal and hepatic trees that fill the liver, as on a real CT.

The second phantom family beside `livervessels.synthetic.phantom` (whose trees have a few dozen branches).
Anatomy, from the textbook (Couinaud; Skandalakis) and CT literature:

- a liver of 1.2-1.8 litres in the right upper abdomen (right lobe, left lobe crossing the midline,
  caudate lobe wrapping the retrohepatic IVC, dome under the diaphragm, a posterior-inferior
  impression of the right kidney, a gallbladder in its fossa);
- the IVC (radius 10-12.5 mm) in a groove of the posterior surface; the three main hepatic veins
  (right; middle and left through a common trunk) join it just below the dome, with an inferior
  right hepatic vein in some livers (about 40 %);
- the portal vein (radius 6.5-7.5 mm) reaching the hilum from the splenic-mesenteric confluence,
  dividing into the right (anterior and posterior sectors) and left (transverse and umbilical
  parts) portal veins;
- both trees grown through the whole liver by space colonisation (hundreds of branches each, down
  to ~0.5 mm radius), radii by Murray's law (exponent 2.7-3), hepatic veins growing preferentially
  where the portal tree is not (they run between portal territories, as in Couinaud's anatomy), the
  two never interpenetrating but touching wherever they meet.

Acquisition (`ScanProtocol`): 0.7-0.9 mm pixels, 1-3 mm slices with an anisotropic point-spread
(in-plane ~0.5 mm sigma, slice profile FWHM = slice thickness) giving partial volume, correlated
noise 8-30 HU, portal-venous (portal 0-40 HU brighter than hepatic) to equilibrium contrast.

Ground truth: `vessel_tree` (1 portal, 2 hepatic) for voxels whose centre lies inside a vessel or
on its centerline (thin vessels stay connected, as an expert's label would); `branch_map` the branch
each vessel voxel belongs to; the trees themselves. Labels use `livervessels.synthetic.phantom.LABELS`, so
the tools written for the first family work on this one.

Research use only; not a medical device.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage, special
from scipy.spatial import cKDTree

from livervessels.contrast_phase import PHASES
from livervessels.synthetic.phantom import HEPATIC_TREE, LABELS, PORTAL_TREE, WorldGrid, ellipsoid_union_field
from livervessels.synthetic.vascular_tree import (
    ColonizationParams,
    VascularTree,
    colonize,
    murray_radii,
    prune_short_terminals,
    relax_overlaps,
    resolve_overlaps,
    smooth_chains,
)

# ---------------------------------------------------------------------------------------------
# Acquisition


@dataclass(frozen=True)
class ScanProtocol:
    """How the phantom is imaged (mm, HU)."""

    pixel_mm: float = 0.8
    slice_mm: float = 1.5
    noise_hu: float = 15.0  # standard deviation of the (spatially correlated) image noise
    parenchyma_hu: float = 105.0
    portal_hu: float = 180.0
    hepatic_hu: float = 160.0
    psf_sigma_mm: float = 0.5  # in-plane point-spread (sigma); the slice profile adds slice_mm / 2.355
    shape: tuple[int, int, int] | None = None  # full grid (centred on the liver); None: the liver's box + margin
    margin_mm: float = 15.0  # around the liver (and its IVC and hilum) when shape is None
    # blood pools and spleen; None: tied to the veins as in the portal venous phase (aorta portal - 10,
    # IVC 0-15 below the hepatic veins, spleen parenchyma + 10). draw_phase_protocol sets all of them.
    aorta_hu: float | None = None
    ivc_hu: float | None = None
    spleen_hu: float | None = None
    phase: str | None = None  # the contrast phase the HU were drawn for (draw_phase_protocol)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.pixel_mm, self.pixel_mm, self.slice_mm)


# Conditions of the benchmarks: each draws a protocol per seed from these ranges.
CONDITIONS = {
    # thin slices, moderate noise, portal-venous to equilibrium contrast
    "normal": {"pixel_mm": (0.7, 0.9), "slice_mm": (1.0, 2.0), "noise_hu": (8.0, 16.0), "delta_hu": (0.0, 40.0)},
    # thick slices and heavy noise (low-dose or large patients)
    "hard": {"pixel_mm": (0.7, 0.9), "slice_mm": (2.0, 3.0), "noise_hu": (18.0, 30.0), "delta_hu": (0.0, 40.0)},
    # equilibrium phase: portal and hepatic veins equally bright
    "equilibrium": {"pixel_mm": (0.7, 0.9), "slice_mm": (1.0, 2.0), "noise_hu": (8.0, 16.0), "delta_hu": (0.0, 0.0)},
}


# HU of each structure by contrast phase (ranges drawn uniformly), for a standard injection, from
# multiphase liver CT as reported in the radiology literature (unenhanced blood 35-50, liver 50-65;
# arterial: aorta 200-400 with an unfilled or filling portal vein and unenhanced hepatic veins; portal
# venous: portal vein at its peak, hepatic veins filled but 0-40 HU darker, liver 95-130; delayed
# (3-5 min): all blood pools alike, 100-160). Per-phase tables, not time curves: the phase estimate
# (livervessels.contrast_phase) fits curves, so these are drawn independently of its model.
PHASE_HU_RANGES = {
    "native": {"aorta": (35, 50), "portal": (35, 50), "hepatic": (35, 50), "ivc": (35, 50),
               "parenchyma": (50, 65), "spleen": (40, 55)},
    "arterial_early": {"aorta": (200, 400), "portal": (50, 110), "hepatic": (40, 60), "ivc": (40, 80),
                       "parenchyma": (58, 75), "spleen": (80, 140)},
    "arterial_late": {"aorta": (220, 380), "portal": (130, 220), "hepatic": (50, 100), "ivc": (60, 130),
                      "parenchyma": (70, 100), "spleen": (110, 170)},
    "portal_venous": {"aorta": (140, 220), "portal": (160, 240), "hepatic": (None, None), "ivc": (120, 190),
                      "parenchyma": (95, 130), "spleen": (110, 150)},
    "delayed": {"aorta": (100, 160), "portal": (100, 160), "hepatic": (None, None), "ivc": (100, 160),
                "parenchyma": (80, 110), "spleen": (85, 120)},
}


def draw_phase_protocol(phase: str, seed: int, condition: str = "normal", **overrides) -> ScanProtocol:
    """A protocol of a condition (voxels, noise) with every structure's HU drawn for a contrast phase
    from PHASE_HU_RANGES (portal venous: hepatic veins 0-40 HU below the portal vein; delayed: within
    5 HU of it).

    Raises:
        KeyError: unknown phase or condition.
    """
    ranges = PHASE_HU_RANGES[phase]
    rng = np.random.default_rng([seed, 13, PHASES.index(phase)])
    hu = {k: float(rng.uniform(*r)) for k, r in ranges.items() if r[0] is not None}
    if phase == "portal_venous":
        hu["hepatic"] = hu["portal"] - float(rng.uniform(0.0, 40.0))
    elif phase == "delayed":
        hu["hepatic"] = hu["portal"] + float(rng.uniform(-5.0, 5.0))
    base = draw_protocol(condition, seed)
    return replace(base, parenchyma_hu=hu["parenchyma"], portal_hu=hu["portal"], hepatic_hu=hu["hepatic"],
                   aorta_hu=hu["aorta"], ivc_hu=hu["ivc"], spleen_hu=hu["spleen"], phase=phase, **overrides)


def draw_protocol(condition: str, seed: int, **overrides) -> ScanProtocol:
    """A protocol drawn from a condition's ranges (its own random stream: the anatomy of a seed does
    not change with the condition). delta_hu = portal - hepatic lumen HU.

    Raises:
        KeyError: unknown condition.
    """
    c = CONDITIONS[condition]
    rng = np.random.default_rng([seed, 7])
    par = float(rng.uniform(90.0, 120.0))
    portal = par + float(rng.uniform(60.0, 110.0))
    values = {k: float(rng.uniform(*c[k])) for k in ("pixel_mm", "slice_mm", "noise_hu")}
    delta = float(rng.uniform(*c["delta_hu"]))
    p = ScanProtocol(parenchyma_hu=par, portal_hu=portal, hepatic_hu=portal - delta, **values)
    return replace(p, **overrides)


# ---------------------------------------------------------------------------------------------
# Anatomy


@dataclass
class _Ellipsoids:
    """Union of ellipsoids with a smooth distortion; field < 1 inside."""

    centres: np.ndarray
    axes: np.ndarray
    wave_k: np.ndarray
    wave_amp: np.ndarray
    wave_phase: np.ndarray
    cut_normal: np.ndarray | None = None  # half-space removed: n . (p - cut_point) > 0
    cut_point: np.ndarray | None = None

    def field(self, x, y, z) -> np.ndarray:
        f = ellipsoid_union_field(self, x, y, z)
        if self.cut_normal is not None:
            n, p0 = self.cut_normal, self.cut_point
            s = n[0] * (x - p0[0]) + n[1] * (y - p0[1]) + n[2] * (z - p0[2])
            f = np.maximum(f, 1.0 + s / 25.0)  # a smooth-ish plane (25 mm of field per unit)
        return np.asarray(f, np.float32)

    def scaled(self, s: float, about: np.ndarray) -> "_Ellipsoids":
        cut_point = None if self.cut_point is None else about + s * (self.cut_point - about)
        return replace(self, centres=about + s * (self.centres - about), axes=self.axes * s,
                       wave_k=self.wave_k / s, cut_point=cut_point)


@dataclass
class Anatomy:
    """Positions (RAS mm) of the liver and its vessels' anchors."""

    liver: _Ellipsoids
    ivc_xy: np.ndarray  # (2,) axis of the (vertical) IVC
    ivc_radius_mm: float
    confluence_mm: np.ndarray  # hepatic vein confluence on the IVC axis
    hilum_mm: np.ndarray  # where the portal vein divides
    portal_trunk: list[tuple[np.ndarray, np.ndarray, float]]  # extrahepatic portal, splenic, SMV: (a, b, r)
    gallbladder: _Ellipsoids
    depth_grid: tuple[np.ndarray, np.ndarray, float]  # (depth map mm, origin mm, step mm) of the liver
    volume_ml: float
    left_lobe_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))  # centre of the left lobe
    right_lobe_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))  # centre of the right lobe
    # the portal skeleton's points and the main branch each is on (set by grow_trees)
    portal_main_branches: tuple[np.ndarray, list] | None = None
    hepatic_main_branches: tuple[np.ndarray, list] | None = None  # the same for the main hepatic veins

    def depth(self, pts: np.ndarray) -> np.ndarray:
        """Distance (mm) inside the liver surface (<= 0 outside), trilinear on a 1.5 mm map."""
        dmap, origin, step = self.depth_grid
        idx = (np.asarray(pts, float) - origin) / step
        return ndimage.map_coordinates(dmap, idx.T, order=1, mode="constant", cval=-10.0)

    def ivc_distance(self, pts: np.ndarray) -> np.ndarray:
        return np.hypot(pts[:, 0] - self.ivc_xy[0], pts[:, 1] - self.ivc_xy[1])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """A liver with its IVC, hilum and extrahepatic portal vein, sized 1.2-1.8 litres."""
    ivc_xy = np.array([22.0, -38.0]) + rng.uniform(-4, 4, 2)
    ivc_r = float(rng.uniform(10.0, 12.5))
    # right lobe; segment IV and the superior bridge over the IVC (the dome reaches across); a left
    # lobe that is thin craniocaudally; the caudate lobe in front of the IVC
    right = np.array([70.0, -5.0, -5.0]) + rng.uniform(-5, 5, 3)
    bridge = np.array([20.0, 5.0, 25.0]) + rng.uniform(-4, 4, 3)
    left = np.array([-30.0, 15.0, 30.0]) + rng.uniform(-6, 6, 3)
    caudate = np.array([ivc_xy[0] - 2.0, ivc_xy[1] + 18.0, 10.0]) + rng.uniform(-3, 3, 3)
    centres = np.array([right, bridge, left, caudate])
    axes = (np.array([[60.0, 72.0, 80.0], [45.0, 55.0, 42.0], [50.0, 38.0, 26.0], [20.0, 18.0, 35.0]])
            * rng.uniform(0.92, 1.08, (4, 3)))
    dirs = rng.normal(size=(4, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    waves = dirs * (2 * np.pi / rng.uniform(70.0, 160.0, (4, 1)))
    kidney_cut = _unit([0.15, -0.6, -0.8])  # the right kidney's impression, posterior-inferior
    liver = _Ellipsoids(centres, axes, waves, rng.uniform(0.02, 0.045, 4), rng.uniform(0, 2 * np.pi, 4),
                        kidney_cut, right + np.array([10.0, -30.0, -40.0]))
    target_ml = float(rng.uniform(1200.0, 1800.0))
    about = right.copy()
    # size: scale the shape to the drawn volume (two passes: the field is not exactly homogeneous)
    for _ in range(2):
        vol, _ = _voxelize(liver, 2.0)
        liver = liver.scaled((target_ml / max(vol, 1.0)) ** (1 / 3), about)
    # the IVC stays in its groove: the liver is pushed so its posterior surface wraps it
    step = 1.5
    vol, (mask, origin) = _voxelize(liver, step)
    ivc_col = np.hypot(*(np.meshgrid(origin[0] + np.arange(mask.shape[0]) * step,
                                     origin[1] + np.arange(mask.shape[1]) * step, indexing="ij")
                         - ivc_xy[:, None, None]))
    mask &= (ivc_col > ivc_r)[:, :, None]
    depth = ndimage.distance_transform_edt(mask, sampling=step).astype(np.float32)
    depth -= ndimage.distance_transform_edt(~mask, sampling=step).astype(np.float32)
    depth_grid = (depth, origin, step)
    # hepatic vein confluence: below the liver's top at the IVC, under the dome
    zs = origin[2] + np.arange(mask.shape[2]) * step
    near_ivc = (ivc_col > ivc_r) & (ivc_col < ivc_r + 15.0)
    top = zs[np.flatnonzero(mask[near_ivc].any(axis=0)).max()]
    confluence = np.array([ivc_xy[0], ivc_xy[1], top - rng.uniform(14.0, 22.0)])
    # hilum: on the visceral surface, anterior-right of the IVC, 60-80 mm below the confluence;
    # the portal vein enters from below: first point 8 mm deep along a vertical line
    hx, hy = ivc_xy[0] + rng.uniform(4.0, 12.0), ivc_xy[1] + rng.uniform(32.0, 42.0)
    line = np.stack([np.full(400, hx), np.full(400, hy), np.linspace(confluence[2] - 140, confluence[2] - 30, 400)], 1)
    d_line = _depth_at(depth_grid, line)
    inside = np.flatnonzero(d_line >= 8.0)
    if not len(inside):
        raise RuntimeError("phantom anatomy: no hilum found")  # not expected with the ranges above
    hilum = line[inside[0]]
    hilum[2] = max(hilum[2], confluence[2] - 85.0)
    # extrahepatic portal vein: from the splenic-mesenteric confluence, 55-70 mm inferior-medial
    pv_len = float(rng.uniform(55.0, 70.0))
    confl_pv = hilum + pv_len * _unit([-0.35 + rng.uniform(-0.1, 0.1), -0.15, -0.92])
    r_pv = float(rng.uniform(6.5, 7.5))
    splenic_end = confl_pv + np.array([-110.0, -25.0, 25.0]) + rng.uniform(-8, 8, 3)
    smv_end = confl_pv + np.array([5.0, 8.0, -90.0])
    trunk = [(confl_pv, hilum, r_pv), (confl_pv, splenic_end, 0.75 * r_pv), (confl_pv, smv_end, 0.8 * r_pv)]
    gb_c = hilum + np.array([18.0, 35.0, -20.0]) + rng.uniform(-5, 5, 3)
    gallbladder = _Ellipsoids(gb_c[None], np.array([[14.0, 38.0, 14.0]]) * rng.uniform(0.8, 1.15, 3),
                              np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    return Anatomy(liver, ivc_xy, ivc_r, confluence, hilum, trunk, gallbladder, depth_grid, vol,
                   left_lobe_mm=liver.centres[2].copy(), right_lobe_mm=liver.centres[0].copy())


def _depth_at(depth_grid, pts) -> np.ndarray:
    dmap, origin, step = depth_grid
    return ndimage.map_coordinates(dmap, ((np.asarray(pts, float) - origin) / step).T, order=1, mode="constant",
                                   cval=-10.0)


def _voxelize(shape: _Ellipsoids, step: float) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
    lo = (shape.centres - 1.35 * shape.axes).min(0)
    hi = (shape.centres + 1.35 * shape.axes).max(0)
    axes = [np.arange(a, b + step, step) for a, b in zip(lo, hi)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    mask = shape.field(x, y, z) < 1.0
    return float(mask.sum() * step ** 3 / 1000.0), (mask, lo)


# ---------------------------------------------------------------------------------------------
# Vessel trees


@dataclass(frozen=True)
class TreeParams:
    portal_attractors: int = 900
    hepatic_attractors: int = 900
    colonization: ColonizationParams = ColonizationParams()
    min_terminal_mm: float = 4.0  # growth sprouts shorter than this are not vessels
    min_radius_mm: float = 0.5
    hepatic_avoid_mm: float = 8.0  # hepatic attraction grows with clearance from portal vessels up to this
    trunk_no_branch_mm: float = 12.0  # main branches give off no side branch this close to the hilum / IVC


def _polyline(points, step: float = 2.0) -> np.ndarray:
    pts = [np.asarray(points[0], float)]
    for a, b in zip(points[:-1], points[1:]):
        a, b = np.asarray(a, float), np.asarray(b, float)
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        pts.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
    return np.array(pts)


def _add_path(points: list, parent: list, path: np.ndarray, attach: int) -> int:
    """Append a polyline's nodes (the first one attaches to node `attach`, -1: a new root); returns
    the index of its last node."""
    prev = attach
    for p in path:
        points.append(p)
        parent.append(prev)
        prev = len(points) - 1
    return prev


def _clip_path(anat: Anatomy, path: np.ndarray, min_depth: float, near_ivc_mm: float = 0.0) -> np.ndarray:
    """The path up to where it would leave the liver (min_depth inside its surface; within
    near_ivc_mm of the IVC wall the surface there does not count: hepatic veins run into it)."""
    d = anat.depth(path)
    d[anat.ivc_distance(path) < anat.ivc_radius_mm + near_ivc_mm] = np.inf
    bad = np.flatnonzero(d < min_depth)
    bad = bad[bad > 0]
    return path if not len(bad) else path[: bad[0]]


def _portal_skeleton(anat: Anatomy, rng) -> tuple[list, list, list]:
    """Main portal branches by Couinaud's anatomy: the right portal vein dividing into the anterior
    (segments V/VIII) and posterior (VI/VII) sector branches; the left portal vein's transverse part,
    then its umbilical part giving segment II, III and IV branches. Returns points, parents and the
    name of the main branch each point is on (PORTAL_MAIN_BRANCHES)."""
    h = anat.hilum_mm

    def jit(v, s=0.12):
        return _unit(np.asarray(v, float) + rng.normal(0, s, 3))

    pts: list = []
    par: list = []
    names: list = []

    def grow(start_node: int, direction, length: float, depth: float = 3.5, name: str = "") -> int:
        a = pts[start_node]
        path = _clip_path(anat, _polyline([a, a + length * jit(direction)])[1:], depth)
        names.extend([name] * len(path))
        return _add_path(pts, par, path, start_node) if len(path) else start_node

    root = _add_path(pts, par, h[None], -1)
    names.append("trunk")
    r1 = grow(root, [1.0, -0.2, 0.25], rng.uniform(18.0, 26.0), 4.0, "right")
    grow(r1, [0.3, 0.55, 0.75], 30.0, name="right_anterior")  # segments V / VIII
    grow(r1, [0.55, -0.6, -0.3], 30.0, name="right_posterior")  # VI / VII
    l1 = grow(root, [-1.0, 0.1, 0.25], rng.uniform(22.0, 32.0), 4.0, "left_transverse")
    grow(l1, [-0.8, -0.1, 0.5], 22.0, 3.0, "segment_2")
    l2 = grow(l1, [-0.15, 0.9, -0.2], 22.0, 3.5, "umbilical")
    grow(l2, [-0.8, 0.4, -0.3], 22.0, 3.0, "segment_3")
    grow(l2, [0.6, 0.5, 0.6], 25.0, 3.0, "segment_4")
    return pts, par, names


def _hepatic_skeleton(anat: Anatomy, rng) -> tuple[list, list, list]:
    """Main hepatic veins from the IVC wall at the confluence: right (lateral-inferior, between the
    right sectors); middle (anterior-inferior towards the gallbladder fossa, between the right and
    left hemilivers) and left (into the left lobe, between segments II and III) from a short common
    trunk, as in most livers. Returns points,
    parents and, in about 40 % of livers, the path of an inferior right hepatic vein lower down
    (it joins later, as a small vein)."""
    c = anat.confluence_mm

    def jit(v, s=0.1):
        return _unit(np.asarray(v, float) + rng.normal(0, s, 3))

    pts: list = []
    par: list = []
    lateral = anat.right_lobe_mm + np.array([40.0, 0.0, -25.0])  # right lobe, lateral-inferior
    fossa = anat.gallbladder.centres[0] + np.array([0.0, 0.0, 15.0])  # above the gallbladder
    ivc_r = anat.ivc_radius_mm + 0.5

    names: list = []

    def vein(start, target, length, attach=-1, name="") -> int:
        course = jit(np.asarray(target) - start)
        length = min(length, float(np.linalg.norm(np.asarray(target) - start)))
        path = _clip_path(anat, _polyline([start, start + length * course]), 3.0, 8.0)
        if attach >= 0:
            path = path[1:]
        names.extend([name] * len(path))
        return _add_path(pts, par, path, attach) if len(path) else attach

    vein(c + ivc_r * _unit([1.0, 0.2, 0.0]), lateral, 65.0, name="right")  # right hepatic vein
    # the middle and left hepatic veins usually join in a common trunk before the IVC
    common = vein(c + ivc_r * _unit([-0.4, 1.0, 0.0]), c + np.array([-8.0, 30.0, -2.0]), rng.uniform(6.0, 12.0),
                  name="common")
    if common >= 0:
        vein(pts[common], fossa, 55.0, attach=common, name="middle")
        vein(pts[common], anat.left_lobe_mm, 60.0, attach=common, name="left")
    anat.hepatic_main_branches = (np.array(pts), list(names))
    inferior = np.zeros((0, 3))
    if rng.random() < 0.4:
        z = c[2] - rng.uniform(45.0, 70.0)
        start = np.array([anat.ivc_xy[0], anat.ivc_xy[1], z]) + (anat.ivc_radius_mm + 0.5) * _unit([1.0, 0.15, 0.0])
        inferior = _clip_path(anat, _polyline([start, start + 22.0 * jit([1.0, 0.1, -0.1])]), 3.0, 8.0)
    return pts, par, inferior


def _sample_liver(anat: Anatomy, rng, n: int, min_depth: float, weight=None) -> np.ndarray:
    dmap, origin, step = anat.depth_grid
    inside = np.argwhere(dmap >= min_depth)
    out = []
    while sum(len(o) for o in out) < n:
        cand = origin + (inside[rng.integers(len(inside), size=4 * n)] + rng.uniform(-0.5, 0.5, (4 * n, 3))) * step
        cand = cand[anat.depth(cand) >= min_depth]
        if weight is not None:
            cand = cand[rng.random(len(cand)) < weight(cand)]
        out.append(cand)
    return np.vstack(out)[:n]


class _TubeIndex:
    """Distance from points to a set of tubes (axis samples with radii)."""

    def __init__(self, trees: list[VascularTree], extra: list[tuple[np.ndarray, np.ndarray, float]] = (),
                 step: float = 0.7):
        xyz, rad = [], []
        for t in trees:
            e = t.edge_nodes()
            for a, b, r in zip(t.points[t.parent[e]], t.points[e], t.radius[e]):
                xyz.append(_polyline([a, b], step))
                rad.append(np.full(len(xyz[-1]), r))
        for a, b, r in extra:
            xyz.append(_polyline([a, b], step))
            rad.append(np.full(len(xyz[-1]), r))
        self.xyz = np.vstack(xyz) if xyz else np.zeros((0, 3))
        self.rad = np.concatenate(rad) if rad else np.zeros(0)
        self.kd = cKDTree(self.xyz) if len(self.xyz) else None

    def clearance(self, pts: np.ndarray, k: int = 12) -> np.ndarray:
        """Distance from each point to the nearest tube surface (negative inside)."""
        if self.kd is None:
            return np.full(len(pts), np.inf)
        d, i = self.kd.query(pts, k=min(k, len(self.xyz)))
        d, i = np.atleast_2d(d), np.atleast_2d(i)
        if d.shape[0] != len(pts):
            d, i = d.T, i.T
        return (d - self.rad[i]).min(axis=1)


def grow_trees(anat: Anatomy, rng, params: TreeParams = TreeParams()) -> tuple[VascularTree, VascularTree, dict]:
    """Portal tree, hepatic tree and growth statistics for one liver."""
    cp = params.colonization
    # ---- portal: main branches by anatomy, then colonisation of the whole liver --------------
    p_pts, p_par, p_names = _portal_skeleton(anat, rng)
    h_pts, h_par, inferior = _hepatic_skeleton(anat, rng)
    hep_main = VascularTree(np.array(h_pts), np.array(h_par), np.full(len(h_pts), 4.5), HEPATIC_TREE)
    hep_index = _TubeIndex([hep_main], step=1.0)
    gb = anat.gallbladder

    def in_liver(a, b, r=1.0):
        mid = 0.5 * (a + b)
        ok = (anat.depth(b) >= r + 0.5) & (anat.depth(mid) >= r + 0.5)
        ok &= anat.ivc_distance(b) > anat.ivc_radius_mm + r + 1.0
        ok &= gb.field(b[:, 0], b[:, 1], b[:, 2]) > 1.0 + (r + 1.0) / 15.0
        return ok

    def portal_allowed(a, b):
        return in_liver(a, b) & (hep_index.clearance(b) > 1.0)

    attr = _sample_liver(anat, rng, params.portal_attractors, 2.0)
    p_pts_a = np.array(p_pts)
    # the portal bifurcation gives off the right and left portal veins and only small caudate
    # branches: no side branches from the main branches' first centimetre
    near_hilum = np.linalg.norm(p_pts_a - anat.hilum_mm, axis=1) < params.trunk_no_branch_mm
    pts, par = colonize(p_pts_a, np.array(p_par), attr, portal_allowed, cp, active=~near_hilum)
    n_main_p = len(p_pts)
    portal = VascularTree(pts, par, np.ones(len(par)), PORTAL_TREE, rng.lognormal(0.0, 0.5, len(par)))
    fixed_p = np.arange(len(portal)) < n_main_p
    portal, kept = prune_short_terminals(portal, params.min_terminal_mm, protected=fixed_p)
    fixed_p = fixed_p[kept]
    portal = smooth_chains(portal, fixed=fixed_p)
    gamma_p = float(rng.uniform(2.7, 3.0))
    r_root_p = anat.portal_trunk[0][2] * float(rng.uniform(0.95, 1.0))
    portal.radius = murray_radii(portal, portal.weight, gamma_p, r_root_p, params.min_radius_mm)

    # ---- hepatic: main veins by anatomy, then colonisation where the portal tree is not -----
    portal_index = _TubeIndex([portal], extra=anat.portal_trunk, step=1.0)

    def hepatic_weight(x):
        return np.clip(portal_index.clearance(x) / params.hepatic_avoid_mm, 0.05, 1.0)

    def hepatic_allowed(a, b):
        return in_liver(a, b) & (portal_index.clearance(b) > 1.2) & (portal_index.clearance(0.5 * (a + b)) > 1.2)

    attr = _sample_liver(anat, rng, params.hepatic_attractors, 2.0, hepatic_weight)
    n_skeleton = len(h_pts)
    h_pts_a = np.array(h_pts)
    near_ivc = anat.ivc_distance(h_pts_a) < anat.ivc_radius_mm + params.trunk_no_branch_mm  # ostia: no side branches
    pts, par = colonize(h_pts_a, np.array(h_par), attr, hepatic_allowed, cp, active=~near_ivc)
    fixed_h = np.arange(len(pts)) < n_skeleton
    if len(inferior) >= 3:
        # the inferior right hepatic vein drains what is left near it: a small vein
        first = len(pts)
        pts = np.vstack([pts, inferior])
        par = np.r_[par, -1, np.arange(first, first + len(inferior) - 1)]
        near = _sample_liver(anat, rng, params.hepatic_attractors // 6, 2.0, hepatic_weight)
        near = near[np.linalg.norm(near - inferior[-1], axis=1) < 35.0]
        active = np.arange(len(pts)) >= first
        fixed_h = np.r_[fixed_h, np.ones(len(inferior), bool)]
        pts, par = colonize(pts, par, near, hepatic_allowed, cp, active=active)
        fixed_h = np.r_[fixed_h, np.zeros(len(pts) - len(fixed_h), bool)]
    hepatic = VascularTree(pts, par, np.ones(len(par)), HEPATIC_TREE, rng.lognormal(0.0, 0.5, len(par)))
    hepatic, kept = prune_short_terminals(hepatic, params.min_terminal_mm, protected=fixed_h)
    fixed_h = fixed_h[kept]
    hepatic = smooth_chains(hepatic, fixed=fixed_h)
    gamma_h = float(rng.uniform(2.7, 3.0))
    r_root_h = float(rng.uniform(5.0, 6.0))
    hepatic.radius = murray_radii(hepatic, hepatic.weight, gamma_h, r_root_h, params.min_radius_mm)

    # ---- no interpenetration: bend the thinner vessel away, else cut it back ----------------
    # the IVC and the extrahepatic portal vein are obstacles too; the trees leave them at their roots
    z = anat.confluence_mm[2]
    ivc_path = _polyline([[*anat.ivc_xy, z - 250.0], [*anat.ivc_xy, z + 80.0]], 4.0)
    ivc = VascularTree(ivc_path, np.arange(-1, len(ivc_path) - 1), np.full(len(ivc_path), anat.ivc_radius_mm), 0)
    t_pts, t_par, t_rad = [], [], []
    for a, b, r in anat.portal_trunk:
        path = _polyline([a, b], 2.0)
        _add_path(t_pts, t_par, path, -1)
        t_rad += [r] * len(path)
    trunk = VascularTree(np.array(t_pts), np.array(t_par), np.array(t_rad), 0)
    obstacles = [np.ones(len(ivc), bool), np.ones(len(trunk), bool)]
    anchors = {0: 3, 1: 2}

    def inside(pts, r):
        return anat.depth(pts) >= np.minimum(r, 2.0) + 0.5

    trees = relax_overlaps([portal, hepatic, ivc, trunk], inside, [fixed_p, fixed_h] + obstacles, anchors=anchors)
    gammas = {0: (gamma_p, r_root_p), 1: (gamma_h, r_root_h)}

    def radii(t: VascularTree, k: int) -> np.ndarray:
        if k not in gammas:
            return t.radius
        g, r0 = gammas[k]
        return murray_radii(t, t.weight, g, r0, params.min_radius_mm)

    trees, cuts = resolve_overlaps(trees, radii, protected=[fixed_p, fixed_h] + obstacles, anchors=anchors)
    portal, hepatic = trees[0], trees[1]
    stats = {"portal_branches": portal.n_branches(), "hepatic_branches": hepatic.n_branches(),
             "overlap_cuts": cuts, "murray_exponent": {"portal": round(gamma_p, 3), "hepatic": round(gamma_h, 3)}}
    anat.portal_main_branches = (np.array(p_pts), p_names)  # fixed through the growth: found again by position
    return portal, hepatic, stats


# ---------------------------------------------------------------------------------------------
# Rendering


@dataclass
class RealisticPhantom:
    """A realistic liver phantom on one grid (arrays indexed i, j, k along world +x, +y, +z)."""

    ct: np.ndarray  # int16 HU
    labels: np.ndarray  # uint8, livervessels.synthetic.phantom.LABELS
    vessel_tree: np.ndarray  # uint8 0 / 1 portal / 2 hepatic (intrahepatic vessels)
    branch_map: np.ndarray  # int32: 1 + branch id of each vessel voxel (0 elsewhere); see branch_* arrays
    affine: np.ndarray  # 4x4 voxel -> RAS mm
    spacing: tuple[float, float, float]
    protocol: ScanProtocol
    portal: VascularTree
    hepatic: VascularTree
    branch_tree: np.ndarray  # (n_branches,) 1 portal / 2 hepatic
    branch_radius_mm: np.ndarray  # (n_branches,)
    branch_parent: np.ndarray  # (n_branches,) parent branch id (-1: a root branch)
    branch_length_mm: np.ndarray  # (n_branches,)
    anatomy: Anatomy = field(repr=False)
    stats: dict = field(default_factory=dict)
    organ_masks: dict = field(default_factory=dict, repr=False)  # "aorta", "spleen": bool on the grid

    @property
    def vessel_mask(self) -> np.ndarray:
        return self.labels == LABELS["liver_vessels"]

    def support(self) -> dict[str, np.ndarray]:
        """The split's support masks: liver (with its vessels), IVC, portal/splenic trunk."""
        return {"liver": (self.labels == LABELS["liver"]) | self.vessel_mask,
                "ivc": self.labels == LABELS["inferior_vena_cava"],
                "portal_vein": self.labels == LABELS["portal_vein_and_splenic_vein"]}

    def phase_masks(self) -> dict[str, np.ndarray]:
        """The structures the contrast phase is read from, by TotalSegmentator's names."""
        free = self.labels == 0  # the liver and its veins are drawn over the body's organs
        return {"liver": self.labels == LABELS["liver"], "aorta": self.organ_masks["aorta"] & free,
                "spleen": self.organ_masks["spleen"] & free,
                "inferior_vena_cava": self.labels == LABELS["inferior_vena_cava"],
                "portal_vein_and_splenic_vein": self.labels == LABELS["portal_vein_and_splenic_vein"]}


def point_spread_sigmas(p: ScanProtocol) -> np.ndarray:
    """Point-spread sigma (mm) per axis: in-plane PSF; slice profile FWHM = slice thickness."""
    return np.array([p.psf_sigma_mm, p.psf_sigma_mm, np.hypot(p.slice_mm / 2.355, 0.3)])


def _tube_fraction(d, r: float, sigma_dir, sigma_plane: float):
    """Share of a voxel's (blurred) value coming from a tube of radius r at axis distance d: an erfc
    edge with the point-spread along the direction from the axis, scaled so the centre matches the
    exact 2-D value 1 - exp(-r^2 / 2 sigma^2) (thin vessels look faint and wide)."""
    edge_centre = 0.5 * special.erfc(-r / (np.sqrt(2) * sigma_plane))
    peak = (1.0 - np.exp(-(r * r) / (2 * sigma_plane ** 2))) / edge_centre
    return (peak * 0.5 * special.erfc((d - r) / (np.sqrt(2) * sigma_dir))).astype(np.float32)


def _render_segment(grid: WorldGrid, a, b, r, sig, reach):
    """(box, distance to the segment, fraction) for the tube a-b of radius r."""
    box = grid.box(np.minimum(a, b) - reach, np.maximum(a, b) + reach)
    if box is None:
        return None
    x, y, z = grid.coords(box)
    v = (b - a).astype(np.float32)
    l2 = float(v @ v)
    rx, ry, rz = x - np.float32(a[0]), y - np.float32(a[1]), z - np.float32(a[2])
    t = np.clip((rx * v[0] + ry * v[1] + rz * v[2]) / np.float32(max(l2, 1e-12)), 0.0, 1.0)
    wx, wy, wz = rx - t * v[0], ry - t * v[1], rz - t * v[2]
    d2 = wx * wx + wy * wy + wz * wz
    d = np.sqrt(d2)
    u = v / max(np.sqrt(l2), 1e-9)
    s2 = sig ** 2
    plane = float(max((s2.sum() - (u ** 2 * s2).sum()) / 2.0, 1e-6))
    with np.errstate(invalid="ignore", divide="ignore"):
        sdir2 = (wx * wx * s2[0] + wy * wy * s2[1] + wz * wz * s2[2]) / d2
    sdir = np.sqrt(np.where(d2 > 1e-6, sdir2, plane)).astype(np.float32)
    return box, d, _tube_fraction(d, r, sdir, np.sqrt(plane))


def _grid_for(anat: Anatomy, p: ScanProtocol) -> WorldGrid:
    sp = np.asarray(p.spacing)
    dmap, origin, step = anat.depth_grid
    idx = np.argwhere(dmap > -1.0)
    lo = origin + idx.min(0) * step
    hi = origin + idx.max(0) * step
    if p.shape is None:
        lo = np.minimum(lo, [anat.ivc_xy[0] - anat.ivc_radius_mm, anat.ivc_xy[1] - anat.ivc_radius_mm, lo[2]])
        lo, hi = lo - p.margin_mm, hi + p.margin_mm
        shape = np.ceil((hi - lo) / sp).astype(int) + 1
        return WorldGrid(lo, sp, shape)
    shape = np.asarray(p.shape)
    centre = np.array([0.0, -10.0, 0.5 * (lo[2] + hi[2])])  # the body's centre, the liver's height
    return WorldGrid(centre - (shape - 1) / 2.0 * sp, sp, shape)


def _body(grid: WorldGrid, anat: Anatomy, p: ScanProtocol, rng) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sharp HU image of the body around the liver (organs by simple shapes), and the aorta and
    spleen masks."""
    x, y, z = grid.coords(tuple(slice(0, n) for n in grid.shape))
    ct = np.full(grid.shape, -1000.0, np.float32)
    ex, ey, fat = 160.0, 118.0, float(rng.uniform(12.0, 28.0))
    body = ((x / ex) ** 2 + ((y + 10) / ey) ** 2) <= 1.0
    inner = ((x / (ex - fat)) ** 2 + ((y + 10) / (ey - fat)) ** 2) <= 1.0
    muscle = ((x / (ex - fat - 8)) ** 2 + ((y + 10) / (ey - fat - 8)) ** 2) <= 1.0
    ct[np.broadcast_to(body, grid.shape)] = -100.0
    ct[np.broadcast_to(inner, grid.shape)] = 50.0
    ct[np.broadcast_to(muscle, grid.shape)] = 35.0
    # lungs above the diaphragm (the liver's dome on the right), mediastinum in the middle
    dmap, origin, step = anat.depth_grid
    cols = (dmap > 0).any(axis=2)
    top = np.where(cols, origin[2] + (dmap.shape[2] - 1 - np.argmax((dmap > 0)[:, :, ::-1], axis=2)) * step, -np.inf)
    dome = float(np.max(top[np.isfinite(top)])) if np.isfinite(top).any() else 0.0
    xi = np.clip(((x[:, 0, 0] - origin[0]) / step).astype(int), 0, cols.shape[0] - 1)
    yi = np.clip(((y[0, :, 0] - origin[1]) / step).astype(int), 0, cols.shape[1] - 1)
    diaphragm = np.maximum(top[np.ix_(xi, yi)] + 4.0, dome - 25.0 + 0.08 * np.abs(x[:, :, 0] + 20))
    lung = (z > diaphragm[:, :, None]) & np.broadcast_to(muscle, grid.shape)
    lung &= ~np.broadcast_to((np.abs(x + 10) < 45) & (y > -45), grid.shape)
    ct[lung] = -850.0
    # spine and aorta
    spine = np.hypot(x, y + 72.0) <= 20.0
    ct[np.broadcast_to(spine, grid.shape)] = 280.0
    shell = spine & (np.hypot(x, y + 72.0) > 17.0)
    ct[np.broadcast_to(shell, grid.shape)] = 650.0
    aorta = np.hypot(x + 18.0, y + 42.0) <= 12.0
    organ_masks = {"aorta": np.broadcast_to(aorta, grid.shape).copy(), "spleen": np.zeros(grid.shape, bool)}
    ct[np.broadcast_to(aorta, grid.shape)] = p.portal_hu - 10.0 if p.aorta_hu is None else p.aorta_hu
    # ribs: arcs in the body wall every ~25 mm
    ring = np.sqrt((x / (ex - fat - 4)) ** 2 + ((y + 10) / (ey - fat - 4)) ** 2)
    for zr in np.arange(-200.0, 200.0, 26.0) + rng.uniform(0, 26.0):
        rib = (np.abs(ring - 1.0) < 0.035) & (np.abs(z - zr - 0.25 * (y + 10)) < 4.5) & (y < 60)
        ct[rib] = 450.0
    # kidneys, spleen, stomach (fluid with a gas cap), gallbladder
    spleen_hu = p.parenchyma_hu + 10.0 if p.spleen_hu is None else p.spleen_hu
    organs = [((75.0, -75.0, anat.hilum_mm[2] - 55.0), (26.0, 20.0, 48.0), 170.0),
              ((-75.0, -75.0, anat.hilum_mm[2] - 45.0), (26.0, 20.0, 48.0), 170.0),
              ((-100.0, -45.0, anat.confluence_mm[2] - 45.0), (28.0, 45.0, 55.0), spleen_hu),
              ((-60.0, 20.0, anat.confluence_mm[2] - 50.0), (40.0, 32.0, 45.0), 25.0)]
    for c, a, hu in organs:
        box = grid.box(np.subtract(c, a), np.add(c, a))
        if box is None:
            continue
        xx, yy, zz = grid.coords(box)
        m = ((xx - c[0]) / a[0]) ** 2 + ((yy - c[1]) / a[1]) ** 2 + ((zz - c[2]) / a[2]) ** 2 <= 1.0
        ct[box][m] = hu
        if c[0] == -100.0:
            organ_masks["spleen"][box] = m
        if hu == 25.0:  # stomach gas: the anterior third
            ct[box][m & (yy > c[1] + 0.3 * a[1])] = -950.0
    return ct, organ_masks


def render(anat: Anatomy, portal: VascularTree, hepatic: VascularTree, p: ScanProtocol,
           rng) -> RealisticPhantom:
    """Image the liver with a protocol: CT (partial volume, point-spread, correlated noise) and truth."""
    grid = _grid_for(anat, p)
    sig = point_spread_sigmas(p)
    ct, organ_masks = _body(grid, anat, p, rng)
    labels = np.zeros(grid.shape, np.uint8)
    # liver (on its box) with a low-frequency and a mottled texture
    lbox = grid.box(*_liver_bounds(anat))
    lx, ly, lz = grid.coords(lbox)
    liver = anat.liver.field(lx, ly, lz) < 1.0
    ivc_d_l = np.hypot(lx - anat.ivc_xy[0], ly - anat.ivc_xy[1])
    liver &= np.broadcast_to(ivc_d_l > anat.ivc_radius_mm, liver.shape)
    gb = anat.gallbladder.field(lx, ly, lz) < 1.0
    liver &= ~gb
    texture = 4.0 * np.sin(0.045 * lx + 0.03 * ly + 0.04 * lz + rng.uniform(0, 6.3))
    mottle = ndimage.gaussian_filter(rng.standard_normal(liver.shape).astype(np.float32), 4.0 / grid.spacing)
    mottle *= 3.0 / max(float(mottle.std()), 1e-6)
    ct_l = ct[lbox]
    ct_l[liver] = (p.parenchyma_hu + texture + mottle)[liver]
    ct_l[gb] = 10.0
    labels[lbox][liver] = LABELS["liver"]
    # blur the sharp anatomy with the scanner's point-spread; vessels come with their own below
    ct = ndimage.gaussian_filter(ct, sig / grid.spacing, truncate=3.0)
    # IVC and extrahepatic portal vein
    ivc_hu = p.hepatic_hu - float(rng.uniform(0.0, 15.0))  # drawn either way: the noise stream stays the same
    ivc_hu = ivc_hu if p.ivc_hu is None else p.ivc_hu
    big = [((anat.ivc_xy[0], anat.ivc_xy[1], grid.origin[2] - 5.0),
            (anat.ivc_xy[0], anat.ivc_xy[1], grid.origin[2] + grid.shape[2] * grid.spacing[2] + 5.0),
            anat.ivc_radius_mm, ivc_hu, LABELS["inferior_vena_cava"])]
    big += [(a, b, r, p.portal_hu, LABELS["portal_vein_and_splenic_vein"]) for a, b, r in anat.portal_trunk]
    for a, b, r, hu, lab in big:
        out = _render_segment(grid, np.asarray(a, float), np.asarray(b, float), r, sig, r + 3.5 * sig.max() + 1.0)
        if out is None:
            continue
        box, d, frac = out
        ct[box] += (hu - ct[box]) * frac
        labels[box][d <= r] = lab
    # intrahepatic trees, on the liver box
    shape_l = liver.shape
    occ = {t: np.zeros(shape_l, np.float32) for t in (PORTAL_TREE, HEPATIC_TREE)}
    surf = np.full(shape_l, np.inf, np.float32)  # signed distance to the nearest vessel surface
    bmap = np.zeros(shape_l, np.int32)
    sub = WorldGrid(grid.origin + np.array([s.start for s in lbox]) * grid.spacing, grid.spacing, shape_l)
    offset = 0
    b_tree, b_rad, b_par, b_len = [], [], [], []
    centre_step = 0.3 * float(grid.spacing.min())
    for tree in (portal, hepatic):
        branch = tree.branch_of_node()
        nb = int(branch.max()) + 1 if (branch >= 0).any() else 0
        e = tree.edge_nodes()
        reach_extra = 3.5 * float(sig.max()) + 1.0
        for n in e:
            a, b, r = tree.points[tree.parent[n]], tree.points[n], float(tree.radius[n])
            out = _render_segment(sub, a, b, r, sig, r + reach_extra)
            if out is None:
                continue
            box, d, frac = out
            np.maximum(occ[tree.label][box], frac, out=occ[tree.label][box])
            sd = d - r
            better = sd < surf[box]
            surf[box] = np.where(better, sd, surf[box])
            bmap[box] = np.where(better, offset + branch[n] + 1, bmap[box])
            # centerline voxels: thin vessels stay connected in the label
            m = max(int(np.ceil(np.linalg.norm(b - a) / centre_step)), 1)
            pts = a + (b - a) * np.linspace(0, 1, m + 1)[:, None]
            idx = np.rint((pts - sub.origin) / sub.spacing).astype(int)
            ok = np.all((idx >= 0) & (idx < shape_l), axis=1)
            idx = idx[ok]
            cur = surf[tuple(idx.T)]
            take = cur > 0  # not already inside a tube
            surf[tuple(idx[take].T)] = -1e-3
            bmap[tuple(idx[take].T)] = offset + branch[n] + 1
        # per-branch attributes
        parent_branch = np.full(nb, -1, np.int64)
        radius = np.zeros(nb)
        length = np.zeros(nb)
        for n in e:
            k = branch[n]
            radius[k] = max(radius[k], tree.radius[n])
            length[k] += float(np.linalg.norm(tree.points[n] - tree.points[tree.parent[n]]))
            pn = tree.parent[n]
            if branch[pn] != k and pn >= 0 and tree.parent[pn] >= 0:
                parent_branch[k] = branch[pn] + offset
        b_tree.append(np.full(nb, tree.label, np.uint8))
        b_rad.append(radius)
        b_par.append(parent_branch)
        b_len.append(length)
        offset += nb
    vessel = ((surf <= 0) & (labels[lbox] != LABELS["inferior_vena_cava"])
              & (labels[lbox] != LABELS["portal_vein_and_splenic_vein"]))
    branch_tree = np.concatenate(b_tree)
    tree_of = np.r_[0, branch_tree].astype(np.uint8)
    vt = np.where(vessel, tree_of[bmap], 0).astype(np.uint8)
    # vessel HU mixed into the (blurred) background
    ct_l = ct[lbox]
    for t, hu in ((PORTAL_TREE, p.portal_hu), (HEPATIC_TREE, p.hepatic_hu)):
        ct_l += (hu - ct_l) * occ[t]
    labels[lbox][vt > 0] = LABELS["liver_vessels"]
    vessel_tree = np.zeros(grid.shape, np.uint8)
    vessel_tree[lbox] = vt
    branch_map = np.zeros(grid.shape, np.int32)
    branch_map[lbox] = np.where(vt > 0, bmap, 0)
    # correlated noise, as reconstructed CT noise (grain of about a voxel)
    if p.noise_hu > 0:
        noise = ndimage.gaussian_filter(rng.standard_normal(grid.shape, dtype=np.float32), (0.6, 0.6, 0.3))
        noise *= np.float32(p.noise_hu / max(float(noise.std()), 1e-6))
        ct += noise
    ct_i16 = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)
    return RealisticPhantom(ct_i16, labels, vessel_tree, branch_map, grid.affine(),
                            tuple(float(s) for s in grid.spacing), p, portal, hepatic, branch_tree,
                            np.concatenate(b_rad), np.concatenate(b_par), np.concatenate(b_len), anat,
                            organ_masks=organ_masks)


def _liver_bounds(anat: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    dmap, origin, step = anat.depth_grid
    idx = np.argwhere(dmap > -3.0)
    return origin + idx.min(0) * step - 2.0, origin + idx.max(0) * step + 2.0


def make_realistic_phantom(seed: int, condition: str = "normal", protocol: ScanProtocol | None = None,
                           tree_params: TreeParams = TreeParams()) -> RealisticPhantom:
    """One realistic liver phantom. The anatomy and trees depend on the seed only; the protocol is
    drawn from the condition's ranges (its own random stream) unless given.

    Raises:
        KeyError: unknown condition.
    """
    p = protocol if protocol is not None else draw_protocol(condition, seed)
    portal, hepatic, anat, stats = realistic_trees(seed, tree_params)
    ph = render(anat, portal, hepatic, p, np.random.default_rng([seed, 11]))
    ph.stats = dict(stats, liver_volume_ml=round(anat.volume_ml, 1))
    return ph


def realistic_trees(seed: int, params: TreeParams = TreeParams()) -> tuple[VascularTree, VascularTree, Anatomy, dict]:
    """The anatomy and both trees of a seed (the slow part; cached per process)."""
    key = (seed, params)
    if key not in _TREE_CACHE:
        rng = np.random.default_rng(seed)
        anat = make_anatomy(rng)
        portal, hepatic, stats = grow_trees(anat, rng, params)
        if len(_TREE_CACHE) >= 4:
            _TREE_CACHE.pop(next(iter(_TREE_CACHE)))
        _TREE_CACHE[key] = (portal, hepatic, anat, stats)
    return _TREE_CACHE[key]


_TREE_CACHE: dict = {}
