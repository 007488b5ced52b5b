"""The multiscale vesselness filter (livervessels/vesselness.py): tubes over blobs and plates, scales
in mm not voxels, the float64 reference of its derivation, and slabs, strides and masks that change
nothing."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from livervessels.vesselness import TUBE_PEAK_FRACTION, sigma_for_radius, vesselness

from synthetic_ct import edge, grid, tube

SIGMAS = [sigma_for_radius(r) for r in (1.0, 2.0, 3.0, 4.0)]


def test_vesselness_prefers_tubes_to_blobs_and_plates():
    sp = (0.8, 0.8, 1.5)
    p, centre = grid(sp, (40, 40, 40))
    tube = edge(np.hypot(p[..., 1], p[..., 2]) - 2.5)
    ball = edge(np.linalg.norm(p, axis=-1) - 4.0)
    plate = edge(np.abs(p[..., 2]) - 2.5)
    resp = {name: float(vesselness(100 * img.astype(np.float32), sp, SIGMAS)[centre])
            for name, img in [("tube", tube), ("ball", ball), ("plate", plate)]}
    assert resp["tube"] > 0.6 * 100 * TUBE_PEAK_FRACTION  # near the analytic C / e of a cylinder
    assert resp["tube"] > 4 * resp["ball"], resp
    assert resp["tube"] > 4 * resp["plate"], resp


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 0, 1), (1, 1, 1)])
def test_vesselness_is_in_mm_not_voxels(direction):
    """The same physical tube sampled at 0.5 mm isotropic and at 1 x 1 x 2 mm responds alike."""
    fine, c_fine = tube((0.5, 0.5, 0.5), direction=direction)
    coarse, c_coarse = tube((1.0, 1.0, 2.0), direction=direction)
    v_fine = vesselness(fine, (0.5, 0.5, 0.5), SIGMAS)[c_fine]
    v_coarse = vesselness(coarse, (1.0, 1.0, 2.0), SIGMAS)[c_coarse]
    assert v_fine > 0.8 * 100 * TUBE_PEAK_FRACTION
    assert abs(v_coarse - v_fine) < 0.15 * v_fine, (v_fine, v_coarse)


def _reference_tube_measure(img, spacing, sigma_mm, beta=0.5):
    """float64 reference: scipy Gaussian derivatives, numpy eigvalsh, magnitude-sorted eigenvalues."""
    sv = [sigma_mm / s for s in spacing]
    h = np.empty(img.shape + (3, 3))
    for a in range(3):
        for b in range(a, 3):
            order = [0, 0, 0]
            order[a] += 1
            order[b] += 1
            d = ndimage.gaussian_filter(img.astype(np.float64), sv, order=order, mode="nearest", truncate=4.0)
            h[..., a, b] = h[..., b, a] = d * sigma_mm**2 / (spacing[a] * spacing[b])
    ev = np.linalg.eigvalsh(h)
    ev = np.take_along_axis(ev, np.argsort(np.abs(ev), axis=-1), axis=-1)  # |l1| <= |l2| <= |l3|
    l1, l2, l3 = ev[..., 0], ev[..., 1], ev[..., 2]
    rb2 = l1**2 / np.maximum(np.abs(l2 * l3), 1e-20)
    return np.where((l2 < 0) & (l3 < 0), -l2 * np.exp(-rb2 / (2 * beta**2)), 0.0)


@pytest.mark.parametrize("sigma_mm", [1.0, 2.0])
def test_torch_vesselness_matches_float64_reference(sigma_mm):
    sp = (0.8, 0.8, 1.5)
    rng = np.random.default_rng(0)
    img, _ = tube(sp, radius=2.0, direction=(1, 2, 0.5), size_mm=(40, 40, 40))
    img = img + ndimage.gaussian_filter(rng.normal(size=img.shape), 1.5).astype(np.float32) * 40
    ours = vesselness(img, sp, [sigma_mm], allow_stride=False)
    ref = _reference_tube_measure(img, sp, sigma_mm)
    scale = ref.max()
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
    assert np.percentile(np.abs(ours - ref), 99) < 0.05 * scale
    assert abs(ours.max() - scale) < 0.08 * scale


def test_vesselness_slabs_and_strides_agree_with_one_block():
    sp = (0.8, 0.8, 1.5)
    img, _ = tube(sp, radius=3.0, direction=(1, 1, 0), size_mm=(48, 40, 30))
    whole = vesselness(img, sp, SIGMAS, allow_stride=False)
    slabs = vesselness(img, sp, SIGMAS, allow_stride=False, max_block_voxels=10_000)
    strided = vesselness(img, sp, SIGMAS, allow_stride=True, max_block_voxels=10_000)
    assert np.allclose(slabs, whole, atol=1e-3 * whole.max())
    assert np.abs(strided - whole).max() < 0.1 * whole.max()
    bright, dark = vesselness(img, sp, SIGMAS, polarity="both")
    assert np.allclose(dark, vesselness(-img, sp, SIGMAS), atol=1e-3 * whole.max())
    assert np.allclose(bright, vesselness(img, sp, SIGMAS), atol=1e-6)


def test_vesselness_with_a_mask_gives_the_unmasked_values_there():
    sp = (0.6, 0.6, 0.8)  # the largest scale is strided in-plane
    rng = np.random.default_rng(1)
    img, _ = tube(sp, radius=2.5, direction=(1, 1, 0.3), size_mm=(40, 36, 30))
    img = img + ndimage.gaussian_filter(rng.normal(size=img.shape), 1.0).astype(np.float32) * 20
    p, _ = grid(sp, (40, 36, 30))
    mask = np.linalg.norm(p / [15.0, 12.0, 9.0], axis=-1) <= 1.0  # an off-centre ellipsoid
    mask = np.roll(mask, 7, axis=0)
    whole = vesselness(img, sp, SIGMAS, polarity="both")
    for block in (8_000_000, 20_000):  # one slab, several
        masked = vesselness(img, sp, SIGMAS, polarity="both", mask=mask, max_block_voxels=block)
        for w, m in zip(whole, masked):
            assert np.array_equal(m[mask], w[mask])  # the same arithmetic, voxel for voxel
            assert not m[~mask].any()


def test_dark_response_is_the_bright_response_of_the_negated_image_and_bad_input_is_named():
    """The dark tubes ("both" gives them from the same Hessians) are the bright tubes of -image, on
    an anisotropic grid (each axis padded by its own reach)."""
    sp = (0.7, 0.9, 1.6)
    img, _ = tube(sp, radius=2.0, direction=(1, 1, 0), size_mm=(24, 20, 26))
    img = img + np.random.default_rng(3).normal(0, 5, img.shape).astype(np.float32)
    bright, dark = vesselness(img, sp, SIGMAS[:2], polarity="both", mask=None)
    negated = vesselness(-img, sp, SIGMAS[:2], polarity="bright")
    assert np.allclose(dark, negated, atol=1e-3 * float(negated.max())) and dark.max() > 0
    assert np.allclose(bright, vesselness(img, sp, SIGMAS[:2]), atol=1e-6)
    # the masked path (only the mask's voxels computed) gives the same dark response there
    mask = np.zeros(img.shape, bool)
    mask[5:-5, 3:-3, 4:-4] = True
    _, dark_masked = vesselness(img, sp, SIGMAS[:2], polarity="both", mask=mask)
    assert np.allclose(dark_masked[mask], negated[mask], atol=1e-3 * float(negated.max()))
    assert not dark_masked[~mask].any()
    with pytest.raises(ValueError, match=r"vesselness needs a 3-D image, got shape \(4, 4\)"):
        vesselness(np.zeros((4, 4)), sp, SIGMAS)
    with pytest.raises(ValueError, match=r"spacing must be three positive numbers in mm, got \(1.0, 0.0, 1.0\)"):
        vesselness(img, (1.0, 0.0, 1.0), SIGMAS)


@pytest.mark.parametrize("shape, sp, block", [((37, 29, 23), (0.6, 0.7, 0.9), 3_000),
                                              ((50, 21, 33), (0.5, 0.5, 0.5), 9_000),
                                              ((19, 40, 17), (0.9, 0.6, 1.4), 1_000)])
def test_masked_slabs_and_plane_groups_give_the_unmasked_values_on_any_shape(shape, sp, block):
    # Masks scattered over the whole array - single voxels on its faces and corners, a run through
    # every plane, small blobs - on odd shapes, with slabs and plane groups of a few planes and
    # strided scales along every axis: each masked voxel reads the planes it needs and gets the
    # unmasked value, whichever slab and group it falls in.
    rng = np.random.default_rng(sum(shape))
    img = ndimage.gaussian_filter(rng.normal(size=shape), 1.2).astype(np.float32) * 50
    mask = np.zeros(shape, bool)
    mask[tuple(rng.integers(0, shape, size=(40, 3)).T)] = True
    for corner in np.ndindex(2, 2, 2):
        mask[tuple(c * (n - 1) for c, n in zip(corner, shape))] = True
    mask[:, shape[1] // 2, shape[2] // 3] = True  # through every plane of every slab
    mask |= ndimage.binary_dilation(rng.random(shape) > 0.999, iterations=2)
    whole = vesselness(img, sp, SIGMAS, polarity="both")
    masked = vesselness(img, sp, SIGMAS, polarity="both", mask=mask, max_block_voxels=block)
    for w, m in zip(whole, masked):
        assert np.array_equal(m[mask], w[mask])
        assert not m[~mask].any()
