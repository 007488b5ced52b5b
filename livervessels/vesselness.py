"""Multi-scale Hessian vesselness of bright tubes on anisotropic CT grids, with torch.

For each scale sigma (mm) the Hessian comes from separable Gaussian-derivative convolutions whose
per-axis width is sigma / spacing voxels, normalised by sigma^2 (Lindeberg) so responses of
different scales compare. The tube measure is Sato/Frangi-like: -lambda2 (the weaker of the two
cross-sectional curvatures, so plates give ~0) times Frangi's blob term exp(-Rb^2 / 2 beta^2).
It is in image units: for a contrast-filled cylinder of radius r and contrast C above its
surroundings it peaks at the scale sigma = r / sqrt(2) with the value C / e (see TUBE_PEAK_FRACTION).

Speed: float32, GPU when present (CPU threads otherwise). Each scale is 15 one-dimensional
convolutions written as sums of shifted views (on CPU far faster than conv3d with a (k, 1, 1)
kernel). Coarse scales (>= 4 voxels) are evaluated on a strided grid, still >= 2 samples per
sigma, and trilinearly upsampled. The volume is processed in slabs along the first axis (with a
halo) to bound memory.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# Peak of the scale-normalised -lambda2 of a sharp cylinder of contrast C: C * u * exp(-u) with
# u = r^2 / (2 sigma^2), maximal (C / e) at sigma = r / sqrt(2).
TUBE_PEAK_FRACTION = 1.0 / math.e

_TRUNCATE = 3.0  # kernel half-width in sigmas
_MIN_SIGMA_VOXELS = 0.5  # below this a sampled Gaussian is a delta: derivatives are meaningless
_COARSE_SIGMA_VOXELS = 2.0  # sigma (in output samples) kept when a scale is strided


def sigma_for_radius(radius_mm: float) -> float:
    """The scale (mm) at which a cylinder of this radius responds most."""
    return float(radius_mm) / math.sqrt(2.0)


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _kernels(sigma_vox: float) -> torch.Tensor:
    """(3, 2R+1) float64: Gaussian, first and second derivative, scale-normalised in voxels.

    Moments are corrected so that the sampled kernels are exact on polynomials up to degree 2,
    which matters at sigma ~ 0.5-1 voxel (thin vessels on coarse slices).
    """
    radius = max(1, int(math.ceil(_TRUNCATE * sigma_vox)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma_vox) ** 2)
    g = g / g.sum()
    g1 = -x / sigma_vox**2 * g
    g1 = g1 / (-(x * g1).sum())  # d/dx of f = x is 1 (conv flips the kernel)
    g2 = (x**2 / sigma_vox**4 - 1.0 / sigma_vox**2) * g
    g2 = g2 - g2.sum() * g  # d2/dx2 of a constant is 0
    g2 = g2 / (0.5 * (x**2 * g2).sum())  # d2/dx2 of x^2 / 2 is 1
    # Scale normalisation sigma^order: with sigma in voxels it equals sigma_mm^order / spacing^order
    # times the physical derivative, i.e. the result is the sigma_mm-normalised physical Hessian.
    return torch.stack([g, g1 * sigma_vox, g2 * sigma_vox**2])


class _Scale:
    """Per-axis kernels and strides for one sigma (mm) on a given spacing."""

    def __init__(self, sigma_mm: float, spacing: Sequence[float], allow_stride: bool):
        self.sigma_mm = float(sigma_mm)
        self.sigma_vox = [max(self.sigma_mm / s, _MIN_SIGMA_VOXELS) for s in spacing]
        # float64 taps: they become Python floats in the shifted-view sums.
        self.kernels = [_kernels(sv) for sv in self.sigma_vox]
        self.radius = [(k.shape[1] - 1) // 2 for k in self.kernels]
        self.stride = [max(1, int(sv // _COARSE_SIGMA_VOXELS)) if allow_stride else 1 for sv in self.sigma_vox]


def _conv_axis(x: torch.Tensor, kernels: list[torch.Tensor], axis: int, stride: int) -> list[torch.Tensor]:
    """Valid 1-D convolutions of x along axis with each kernel, sampled every stride voxels.

    A sum of shifted views: on CPU this is ~20x faster than conv3d with a (k, 1, 1) kernel, and
    it needs no layout changes; each tap is one fused multiply-add over the block.
    """
    n_taps = kernels[0].numel()
    length = x.shape[axis] - n_taps + 1
    outs = []
    for k in kernels:
        w = k.flip(0).tolist()  # convolution = correlation with the flipped kernel
        out = None
        for t, wt in enumerate(w):
            if wt == 0.0:
                continue
            view = x.narrow(axis, t, length)
            if stride > 1:
                view = view[(slice(None),) * axis + (slice(None, None, stride),)]
            if out is None:
                out = view * wt
            else:
                out.add_(view, alpha=wt)
        outs.append(out)
    return outs


def _hessian(block: torch.Tensor, sc: _Scale) -> list[torch.Tensor]:
    """Scale-normalised Hessian [xx, xy, yy, xz, yz, zz] of a padded (X, Y, Z) block."""
    kx, ky, kz = sc.kernels
    sx, sy, sz = sc.stride
    z0, z1, z2 = _conv_axis(block, [kz[0], kz[1], kz[2]], 2, sz)  # smooth, d/dz, d2/dz2
    z0y0, z0y1, z0y2 = _conv_axis(z0, [ky[0], ky[1], ky[2]], 1, sy)
    del z0
    (z1y0, z1y1) = _conv_axis(z1, [ky[0], ky[1]], 1, sy)
    del z1
    (z2y0,) = _conv_axis(z2, [ky[0]], 1, sy)
    del z2
    # x: the complementary derivative order for each product.
    hxx, hxy = _conv_axis(z0y0, [kx[2]], 0, sx)[0], _conv_axis(z0y1, [kx[1]], 0, sx)[0]
    hyy, hxz = _conv_axis(z0y2, [kx[0]], 0, sx)[0], _conv_axis(z1y0, [kx[1]], 0, sx)[0]
    hyz, hzz = _conv_axis(z1y1, [kx[0]], 0, sx)[0], _conv_axis(z2y0, [kx[0]], 0, sx)[0]
    return [hxx, hxy, hyy, hxz, hyz, hzz]


def hessian_eigenvalues(hxx, hxy, hyy, hxz, hyz, hzz) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues of symmetric 3x3 matrices, ascending (e_min, e_mid, e_max), closed form.

    Trigonometric solution of the characteristic cubic; far cheaper than a batched eigvalsh and
    accurate enough in float32 for a filter response.
    """
    q = (hxx + hyy + hzz) / 3.0
    a, d, f = hxx - q, hyy - q, hzz - q
    p1 = hxy * hxy + hxz * hxz + hyz * hyz
    p = torch.sqrt(torch.clamp((a * a + d * d + f * f + 2.0 * p1) / 6.0, min=1e-20))
    det = a * (d * f - hyz * hyz) - hxy * (hxy * f - hyz * hxz) + hxz * (hxy * hyz - d * hxz)
    r = torch.clamp(det / (2.0 * p * p * p), -1.0, 1.0)
    phi = torch.acos(r) / 3.0
    e_max = q + 2.0 * p * torch.cos(phi)
    e_min = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)
    e_mid = 3.0 * q - e_max - e_min
    return e_min, e_mid, e_max


def tube_measure(e_min: torch.Tensor, e_mid: torch.Tensor, e_max: torch.Tensor, beta: float) -> torch.Tensor:
    """Bright-tube response from ascending eigenvalues (image units)."""
    # Bright tube: two strongly negative cross-sectional curvatures, a weak one along the axis.
    l1, l2, l3 = e_max, e_mid, e_min
    valid = (l2 < 0) & (l3 < 0) & (l1.abs() <= l2.abs())
    rb2 = l1 * l1 / torch.clamp(l2 * l3, min=1e-20)  # 0 for a line, 1 for a blob
    v = -l2 * torch.exp(-rb2 / (2.0 * beta * beta))
    return torch.where(valid, v, torch.zeros_like(v))


def _upsample(v: torch.Tensor, strides: list[int], out_shape: tuple[int, int, int]) -> torch.Tensor:
    """Coarse samples at multiples of the strides -> full grid (trilinear)."""
    if all(s == 1 for s in strides):
        return v[: out_shape[0], : out_shape[1], : out_shape[2]]
    size = [(n - 1) * s + 1 for n, s in zip(v.shape, strides)]
    up = F.interpolate(v[None, None], size=size, mode="trilinear", align_corners=True)[0, 0]
    return up[: out_shape[0], : out_shape[1], : out_shape[2]]


def vesselness(
    image: np.ndarray,
    spacing: Sequence[float],
    sigmas_mm: Sequence[float],
    *,
    beta: float = 0.5,
    polarity: str = "bright",
    device: str | None = None,
    max_block_voxels: int = 8_000_000,
    allow_stride: bool = True,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Max over scales of the tube measure, float32 on the input grid (image units).

    image: 3-D array; spacing: mm per voxel along each axis; sigmas_mm: Gaussian scales in mm
    (a cylinder of radius r responds most at r / sqrt(2)). polarity: "bright" tubes, "dark" tubes,
    or "both" -> (bright, dark) from the same Hessians; in an organ without dark tubes the dark
    response is what noise alone produces, a free null distribution for thresholds.
    """
    img = np.asarray(image)
    if img.ndim != 3:
        raise ValueError(f"vesselness needs a 3-D image, got shape {img.shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be three positive numbers in mm, got {spacing}")
    if polarity not in ("bright", "dark", "both"):
        raise ValueError(f"polarity must be 'bright', 'dark' or 'both', got {polarity!r}")
    dev = pick_device(device)
    scales = [_Scale(s, spacing, allow_stride) for s in sorted(set(float(s) for s in sigmas_mm))]
    pad = [max(sc.radius[a] + sc.stride[a] for sc in scales) for a in range(3)]
    step0 = math.lcm(*[sc.stride[0] for sc in scales])  # slab starts on every scale's sample grid

    x = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)).to(dev)
    # Replicate padding: no artificial edges at the border of a crop.
    xp = F.pad(x[None, None], (pad[2], pad[2], pad[1], pad[1], pad[0], pad[0]), mode="replicate")[0, 0]
    del x
    nx, ny, nz = img.shape
    plane = (ny + 2 * pad[1]) * (nz + 2 * pad[2])
    # Slab thickness: ~max_block_voxels per slab (about 10 float32 values per voxel while working).
    slab = max(step0, (max_block_voxels // plane // step0) * step0)

    signs = {"bright": [1.0], "dark": [-1.0], "both": [1.0, -1.0]}[polarity]
    outs = [torch.zeros(img.shape, dtype=torch.float32, device=dev) for _ in signs]
    with torch.no_grad():
        for x0 in range(0, nx, slab):
            n0 = min(slab, nx - x0)
            for sc in scales:
                counts = [math.ceil((n - 1) / s) + 1 for n, s in zip((n0, ny, nz), sc.stride)]
                lo = [x0 + pad[0] - sc.radius[0], pad[1] - sc.radius[1], pad[2] - sc.radius[2]]
                hi = [lo[a] + (counts[a] - 1) * sc.stride[a] + 2 * sc.radius[a] + 1 for a in range(3)]
                e_min, e_mid, e_max = hessian_eigenvalues(*_hessian(xp[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], sc))
                for sign, out in zip(signs, outs):
                    # A dark tube is a bright tube of the negated image: eigenvalues negate and swap.
                    ev = (e_min, e_mid, e_max) if sign > 0 else (-e_max, -e_mid, -e_min)
                    v = _upsample(tube_measure(*ev, beta=beta), sc.stride, (n0, ny, nz))
                    acc = out[x0: x0 + n0]
                    torch.maximum(acc, v, out=acc)
                del e_min, e_mid, e_max
    result = [o.cpu().numpy() for o in outs]
    return (result[0], result[1]) if polarity == "both" else result[0]
