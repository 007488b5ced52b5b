"""Vessel enhancement (livervessels/enhancement.py): the repair on phantoms and synthetic tubes, its
back-off and limits, simulated network masks, metrics, and a sanity check on the real example CT.
The vesselness filter has its own file, tests/test_vesselness.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from livervessels.enhancement import EnhancementParams, repair_vessel_mask
from livervessels.errors import InputError
from livervessels.synthetic.metrics import cldice, n_components
from livervessels.synthetic.phantom import LABELS
from livervessels.synthetic.phantom_degrade import simulate_network_mask

from conftest import dice
from synthetic_ct import edge, grid

METADATA_KEYS = {"method", "voxels", "volume_ml", "components_before", "components_after", "removed_voxels",
                 "added_voxels", "fallbacks_used", "parameters", "timings", "software_versions"}


def test_enhancement_morphology_equals_scipy():
    """The shortcuts in enhancement.py give the voxels of the scipy transforms they replace."""
    from livervessels import enhancement as enh

    rng = np.random.default_rng(0)
    cores = 0
    for _ in range(20):
        shape = tuple(int(n) for n in rng.integers(4, 30, 3))
        sp = tuple(float(s) for s in rng.choice([0.6, 0.75, 0.8, 1.0, 1.5, 2.5], 3))
        m = rng.random(shape) < rng.choice([0.01, 0.1, 0.6])
        for r in (2.0, 3.0, 6.0):
            d = ndimage.distance_transform_edt(~m, sampling=sp)
            assert np.array_equal(enh._dilate_ball(m, sp, r), d <= r)
            assert np.array_equal(enh._dilate_ball(m, sp, r, strict=True), d < r)
        assert np.array_equal(enh._dilate_3(m), ndimage.binary_dilation(m, np.ones((3, 3, 3), bool)))
        assert np.array_equal(enh._erode_3(m), ndimage.binary_erosion(m, np.ones((3, 3, 3), bool)))
        ct = (ndimage.gaussian_filter(rng.normal(size=shape), 2.0) * 400 + 100).astype(np.float32)
        size = [2 * max(1, int(round(2.0 / s))) + 1 for s in sp]
        box = (slice(1, shape[0]), slice(0, shape[1] // 2 + 1), slice(0, shape[2]))
        assert np.array_equal(enh._local_peak(ct, sp, 2.0, box), ndimage.maximum_filter(ct, size=size)[box])
        # A bright tube 3-10 mm in radius: the opening by a 6 mm ball keeps the wide ones.
        p_mm = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, sp)], indexing="ij"), -1)
        axis = rng.normal(size=3)
        rel = p_mm - p_mm[tuple(n // 2 for n in shape)] - rng.uniform(-3, 3, 3)
        dist = np.linalg.norm(rel - (rel @ axis)[..., None] * axis / (axis @ axis), axis=-1)
        ct = (100 + 120 * (dist <= rng.uniform(3, 10)) + rng.normal(size=shape) * 20).astype(np.float32)
        st = enh._Stats(100.0, 10.0, 0.0, 60.0)
        smooth = ndimage.gaussian_filter(ct, sigma=2.0 / np.asarray(sp))
        core = ndimage.distance_transform_edt(smooth >= 130.0, sampling=sp) >= 6.0
        opening = ndimage.distance_transform_edt(~core, sampling=sp) <= 6.0 if core.any() else core
        assert np.array_equal(enh._large_lumen(ct, st, sp, 6.0), opening)
        cores += bool(core.any())
    assert cores >= 5


# ---------------------------------------------------------------------------------------------
# Simulated network masks and metrics
# ---------------------------------------------------------------------------------------------


def test_metrics_basic():
    a = np.zeros((30, 30, 30), bool)
    a[5:25, 14:17, 14:17] = True  # 3 voxels wide: skimage's 3-D thinning erases 2-wide bars
    b = np.zeros_like(a)
    b[5:25, 2:5, 2:5] = True
    assert dice(a, a) == 1.0 and cldice(a, a) == 1.0
    assert cldice(a, b) == 0.0
    assert n_components(a | b) == 2 and n_components(np.zeros_like(a)) == 0
    broken = a.copy()
    broken[12:14] = False
    assert n_components(broken) == 2 and cldice(broken, a) < 1.0


@pytest.fixture(scope="module")
def degraded(phantom):
    truth = phantom.labels == LABELS["liver_vessels"]
    liver = (phantom.labels == LABELS["liver"]) | truth
    return truth, liver, simulate_network_mask(phantom, seed=11)


def test_simulated_network_mask_has_network_errors(phantom, degraded):
    truth, liver, raw = degraded
    assert raw.dtype == np.uint8 and raw.shape == truth.shape
    assert np.array_equal(raw, simulate_network_mask(phantom, seed=11))  # deterministic
    assert not np.array_equal(raw, simulate_network_mask(phantom, seed=12))
    assert 0.6 < dice(raw, truth) < 0.95
    assert n_components(raw) >= n_components(truth) + 5  # fragments and blobs
    assert raw[~liver].sum() == 0
    perfect = simulate_network_mask(phantom, seed=11, thin_radius_mm=0.0, n_gaps=0, n_blobs=0,
                                    n_boundary_regions=0)
    assert np.array_equal(perfect > 0, truth)


# ---------------------------------------------------------------------------------------------
# Enhancement
# ---------------------------------------------------------------------------------------------


def test_enhancement_repairs_a_degraded_phantom(phantom, degraded):
    truth, liver, raw = degraded
    out, meta = repair_vessel_mask(raw, liver, phantom.ct, phantom.spacing)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    d_raw, d_enh = dice(raw, truth), dice(out, truth)
    cl_raw, cl_enh = cldice(raw, truth), cldice(out, truth)
    assert d_enh > d_raw + 0.02, (d_raw, d_enh)
    assert cl_enh > cl_raw + 0.03, (cl_raw, cl_enh)
    assert n_components(out) < n_components(raw) / 2
    # Metadata is complete and consistent with the masks.
    assert METADATA_KEYS <= set(meta)
    assert meta["voxels"] == int(out.sum())
    assert meta["components_before"] == n_components(raw) and meta["components_after"] == n_components(out)
    assert meta["added_voxels"] == int((out.astype(bool) & ~raw.astype(bool)).sum())
    assert meta["removed_voxels"] == int((raw.astype(bool) & ~out.astype(bool)).sum())
    assert meta["volume_ml"] == pytest.approx(out.sum() * np.prod(phantom.spacing) / 1000, abs=1e-3)
    assert meta["fallbacks_used"] == []
    assert meta["parameters"]["liver_margin_mm"] == EnhancementParams().liver_margin_mm
    assert {"vesselness", "grow", "bridge", "prune", "total"} <= set(meta["timings"])
    versions = meta["software_versions"]
    assert versions["torch"] in torch.__version__ and versions["numpy"] == np.__version__ and versions["livervessels"]


def test_enhancement_stays_inside_the_dilated_liver(phantom, degraded):
    truth, liver, raw = degraded
    # A raw mask that also leaks into the IVC, the portal trunk and far outside the liver.
    leaky = raw.copy()
    leaky[phantom.labels == LABELS["inferior_vena_cava"]] = 1
    leaky[phantom.labels == LABELS["portal_vein_and_splenic_vein"]] = 1
    leaky[5:15, 5:15, 5:15] = 1
    margin = 3.0
    out, meta = repair_vessel_mask(leaky, liver, phantom.ct, phantom.spacing,
                                   params=EnhancementParams(liver_margin_mm=margin))
    dist = ndimage.distance_transform_edt(~liver, sampling=phantom.spacing)
    assert out.any() and not out[dist > margin].any()
    assert not out[5:15, 5:15, 5:15].any()
    assert meta["removed_voxels"] >= int((leaky[dist > margin]).sum())


def test_missing_liver_falls_back_or_raises(small_phantom):
    ph = small_phantom
    raw = simulate_network_mask(ph, seed=5)
    for liver in (None, np.zeros(raw.shape, np.uint8)):
        out, meta = repair_vessel_mask(raw, liver, ph.ct, ph.spacing)
        assert any("liver mask missing or empty" in f for f in meta["fallbacks_used"])
        assert meta["parameters"]["fallback_full_volume"] is True
        assert out.any()
        with pytest.raises(InputError, match="liver mask is missing or empty"):
            repair_vessel_mask(raw, liver, ph.ct, ph.spacing, fallback_full_volume=False)


def test_rejects_mismatched_inputs(small_phantom):
    ph = small_phantom
    raw = simulate_network_mask(ph, seed=5)
    with pytest.raises(InputError, match=r"vessel mask \(.*\) and CT \(.*\) must be 3-D arrays on the same grid"):
        repair_vessel_mask(raw[:-1], None, ph.ct, ph.spacing)
    with pytest.raises(InputError, match=r"liver mask \(.*\) is not on the CT grid"):
        repair_vessel_mask(raw, raw[:, :-1], ph.ct, ph.spacing)
    with pytest.raises(InputError, match="voxel spacing must be three positive numbers in mm"):
        repair_vessel_mask(raw, None, ph.ct, (1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="voxel spacing"):
        repair_vessel_mask(raw, None, ph.ct, (1.0, 1.0))


def test_cube_erosion_and_dilation_of_solid_blocks():
    """The random masks of the test above are too sparse for an erosion to keep anything: solid
    blocks, by hand (a 3x3x3 cube: one voxel in from every face, one voxel out)."""
    from livervessels import enhancement as enh

    block = np.zeros((9, 10, 11), bool)
    block[2:7, 3:8, 1:6] = True
    core = np.zeros_like(block)
    core[3:6, 4:7, 2:5] = True
    grown = np.zeros_like(block)
    grown[1:8, 2:9, 0:7] = True
    assert np.array_equal(enh._erode_3(block), core) and np.array_equal(enh._dilate_3(block), grown)
    # moved by (1, -2, 0): what leaves the array is gone, the fill comes in
    moved = enh._shifted(block, (1, -2, 0), True)
    expected = np.ones_like(block)
    expected[1:, :-2] = block[:-1, 2:]
    assert np.array_equal(moved, expected)


def _two_tubes(contrast=100.0):
    """A long main vessel and a short, separate, bright branch fragment; the whole box is 'liver'."""
    sp = (1.0, 1.0, 2.0)
    p, _ = grid(sp, (80, 60, 60))
    d_main = np.hypot(p[..., 1] + 10, p[..., 2])
    d_frag = np.hypot(p[..., 1] - 15, p[..., 2] - 4)  # 25 mm from the main vessel: beyond any gap
    on_frag = np.abs(p[..., 0]) <= 6
    ct = 100 + contrast * np.maximum(edge(d_main - 3.0), edge(d_frag - 1.8) * on_frag)
    ct += np.random.default_rng(1).normal(0, 4, ct.shape)
    vessels = (d_main <= 3.0) | ((d_frag <= 1.8) & on_frag)
    frag = (d_frag <= 1.8) & on_frag
    return ct.astype(np.int16), vessels.astype(np.uint8), np.ones(ct.shape, np.uint8), sp, frag


def test_min_component_size_in_voxels_and_mm3_prunes():
    ct, vessels, liver, sp, frag = _two_tubes()
    n = int(frag.sum())
    vol = n * float(np.prod(sp))
    kept, _ = repair_vessel_mask(vessels, liver, ct, sp, min_component_size=n - 1)
    assert kept[frag].all() and n_components(kept) == 2
    cut, meta = repair_vessel_mask(vessels, liver, ct, sp, min_component_size=n + 5)
    assert not cut[frag].any() and n_components(cut) == 1
    assert meta["parameters"]["min_component_voxels"] == n + 5
    kept_mm3, _ = repair_vessel_mask(vessels, liver, ct, sp, min_component_mm3=0.8 * vol)
    assert kept_mm3[frag].all()
    cut_mm3, _ = repair_vessel_mask(vessels, liver, ct, sp, min_component_mm3=1.2 * vol)
    assert not cut_mm3[frag].any() and cut_mm3.sum() > 0


STEP_KEYS = {"blobs_removed_voxels", "large_lumen_voxels", "growth_threshold_factor", "noise_grown_voxels",
             "grown_voxels", "bridges", "trimmed_voxels", "hole_voxels_filled", "pruned_voxels"}
TIMED_STEPS = {"region", "measure", "vesselness", "prune_blobs", "grow", "bridge", "trim", "fill_holes", "prune",
               "statistics", "total"}


def test_metadata_steps_account_for_every_voxel_removed_and_round_as_documented():
    ct, vessels, liver, sp, _ = _two_tubes()
    _, meta = repair_vessel_mask(vessels, liver, ct, sp)
    steps, stats = meta["steps"], meta["image_statistics"]
    assert set(steps) == STEP_KEYS and set(meta["timings"]) == TIMED_STEPS
    # nothing added here: each voxel removed went in exactly one step
    assert meta["added_voxels"] == 0 and steps["grown_voxels"] == 0 and steps["hole_voxels_filled"] == 0
    assert steps["trimmed_voxels"] > 0
    assert meta["removed_voxels"] == steps["blobs_removed_voxels"] + steps["trimmed_voxels"] + steps["pruned_voxels"]
    assert {k: round(v, 1) for k, v in stats.items() if k.endswith("_hu")} == {k: v for k, v in stats.items()
                                                                            if k.endswith("_hu")}
    p = EnhancementParams()
    assert p.grow_low <= stats["vesselness_low"] == round(stats["vesselness_low"], 3)
    assert p.grow_high <= stats["vesselness_high"] == round(stats["vesselness_high"], 3)
    assert stats["vessel_hu"] - stats["parenchyma_hu"] == pytest.approx(stats["contrast_hu"], abs=0.11)
    assert 90 < stats["contrast_hu"] < 110 and abs(stats["parenchyma_hu"] - 100) < 2  # _two_tubes: 100 HU over 100
    # an empty raw mask: nothing to do, and nothing counted
    out, meta = repair_vessel_mask(np.zeros_like(vessels), liver, ct, sp)
    assert not out.any() and (meta["voxels"], meta["components_before"], meta["components_after"]) == (0, 0, 0)
    assert meta["fallbacks_used"] == ["raw vessel mask empty: nothing to enhance"] and meta["steps"] == {}


def test_no_vessel_contrast_disables_image_based_growth():
    ct, vessels, liver, sp, _ = _two_tubes(contrast=5.0)
    out, meta = repair_vessel_mask(vessels, liver, ct, sp)
    assert any("vessel contrast" in f for f in meta["fallbacks_used"])
    assert meta["added_voxels"] <= int(vessels.sum()) // 50  # hole filling at most


# ---------------------------------------------------------------------------------------------
# Real CT sanity check
# ---------------------------------------------------------------------------------------------


def _render(path, ct, liver, raw, enhanced):
    """2 x 2 panel: CT MIP through the slab inside the liver, without and with the raw / enhanced
    overlay, and the axial slice with the most enhanced vessel, without and with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    box = ndimage.find_objects(liver.astype(np.uint8))[0]
    box = (slice(max(box[0].start - 5, 0), box[0].stop + 5), slice(max(box[1].start - 5, 0), box[1].stop + 5))
    k = int(np.argmax(enhanced.sum((0, 1))))
    in_liver = np.where(liver, ct, ct.min())
    mip = np.where(liver.any(2), in_liver.max(2), ct[:, :, k])[box]
    views = [
        (mip, "MIP through the slab, inside the liver", None, liver.any(2)[box], (60, 260)),
        (mip, "MIP: raw vs enhanced", (raw.any(2)[box], enhanced.any(2)[box]), liver.any(2)[box], (60, 260)),
        (ct[:, :, k][box], f"axial slice {k}", None, liver[:, :, k][box], (-50, 250)),
        (ct[:, :, k][box], f"axial slice {k}: raw vs enhanced", (raw[:, :, k][box], enhanced[:, :, k][box]),
         liver[:, :, k][box], (-50, 250)),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(14, 14))
    for ax, (img, title, masks, outline, (lo, hi)) in zip(axes.ravel(), views):
        ax.imshow(img.T, cmap="gray", vmin=lo, vmax=hi)  # rows: array axis 1, columns: array axis 0
        ax.contour(outline.T, [0.5], colors="yellow", linewidths=0.8)
        if masks is not None:
            r, e = masks
            ov = np.zeros(r.shape + (4,))
            ov[e & ~r] = (0, 1, 0, 0.55)  # added
            ov[r & e] = (0, 0.5, 1, 0.55)  # kept
            ov[r & ~e] = (1, 0, 0, 0.8)  # removed
            ax.imshow(ov.transpose(1, 0, 2))
        ax.set_title(title)
        ax.axis("off")
    fig.text(0.5, 0.01, "yellow: TotalSegmentator liver; blue: raw kept; green: added by enhancement; red: raw removed",
             ha="center")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def test_real_ct_enhancement_stays_on_visible_vessels_and_backs_off(real_data, artifacts):
    import nibabel as nib

    from livervessels.geometry import from_canonical, to_canonical
    from livervessels.study import load_ct_study

    vol = load_ct_study(real_data / "ct_dicom").volume
    ref = nib.load(real_data / "reference_total_multilabel.nii.gz")
    ct_c, aff_c, original = to_canonical(vol.array, vol.affine)
    ref_c, ref_aff_c, _ = to_canonical(np.asarray(ref.dataobj), ref.affine)
    assert ref_c.shape == ct_c.shape and np.allclose(aff_c, ref_aff_c, atol=1e-2)
    liver = from_canonical(ref_c == 5, original)
    ct = vol.array
    hu = ct[liver].astype(float)
    med = float(np.median(hu))
    sd = 1.4826 * float(np.median(np.abs(hu - med)))
    raw = liver & (ct > med + 2.5 * sd)  # a crude "network": bright voxels in the liver

    out, meta = repair_vessel_mask(raw.astype(np.uint8), liver.astype(np.uint8), ct, vol.spacing)
    enhanced = out.astype(bool)
    _render(artifacts / "enhancement_real.png", ct, liver, raw, enhanced)

    margin = EnhancementParams().liver_margin_mm
    assert not enhanced[ndimage.distance_transform_edt(~liver, sampling=vol.spacing) > margin].any()
    # Weak contrast (about 48 HU over the parenchyma) on 2 mm slices: the mirrored image grows
    # about as much as the vessels at every threshold tried, so no growth, and the metadata says why.
    assert meta["backed_off"] and meta["backed_off"].startswith("no growth")
    assert meta["steps"]["grown_voxels"] == 0 and meta["steps"]["noise_grown_voxels"] > 0
    assert meta["components_after"] < meta["components_before"] / 5  # speckle removed, tree joined
    assert ct[enhanced].mean() > med + 2.0 * sd  # far above parenchyma
    assert (ct[enhanced] > med + 1.0 * sd).mean() > 0.85  # nearly all of it on bright voxels
    added = enhanced & ~raw  # bridges only
    assert not added.any() or (ct[added] > med + 1.0 * sd).mean() > 0.8


# ---------------------------------------------------------------------------------------------
# Never worse than the raw mask
# ---------------------------------------------------------------------------------------------


def _noisy_case(seed: int, noise_hu: float):
    from livervessels.synthetic.phantom import make_phantom
    ph = make_phantom(seed=seed, noise_hu=noise_hu)
    truth = ph.labels == LABELS["liver_vessels"]
    liver = (ph.labels == LABELS["liver"]) | truth
    trunks = (ph.labels == LABELS["inferior_vena_cava"]) | (ph.labels == LABELS["portal_vein_and_splenic_vein"])
    return ph, truth, liver, trunks, simulate_network_mask(ph, seed) > 0


def test_repair_backs_off_where_noise_grows_as_much_as_the_vessels():
    # 25 HU noise on 2.5 mm slices: what the growth adds is no better than what noise alone adds
    ph, truth, liver, trunks, raw = _noisy_case(102, 25.0)
    out, meta = repair_vessel_mask(raw, liver, ph.ct, ph.spacing, exclude=trunks)
    assert meta["backed_off"] and "noise alone grows" in meta["backed_off"]
    assert meta["steps"]["grown_voxels"] == 0 and meta["steps"]["noise_grown_voxels"] > 0
    assert meta["steps"]["growth_threshold_factor"] is None
    voxels = " x ".join(f"{s:.2g}" for s in ph.spacing)
    assert f"HU, voxels {voxels} mm), and as much at any threshold up to 3x" in meta["backed_off"]
    assert meta["backed_off"].endswith("thin vessels cannot be told from noise, the network's mask is kept")
    out = out > 0
    assert cldice(out, truth) >= cldice(raw, truth) - 0.005 and dice(out, truth) >= dice(raw, truth) - 0.005
    # the same patient at 12 HU: the vessels clearly outgrow the noise, so the repair grows
    ph, truth, liver, trunks, raw = _noisy_case(102, 12.0)
    out, meta = repair_vessel_mask(raw, liver, ph.ct, ph.spacing, exclude=trunks)
    assert meta["backed_off"] is None
    assert meta["steps"]["grown_voxels"] > 5 * meta["steps"]["noise_grown_voxels"]
    assert cldice(out > 0, truth) > cldice(raw, truth) + 0.03


def test_repair_never_grows_into_the_trunks_it_is_told_about():
    ph, truth, liver, trunks, raw = _noisy_case(101, 25.0)
    free, _ = repair_vessel_mask(raw, liver, ph.ct, ph.spacing)
    assert ((free > 0) & ~raw & trunks).sum() > 50  # on noisy thick slices it leaks into the portal trunk
    kept, _ = repair_vessel_mask(raw, liver, ph.ct, ph.spacing, exclude=trunks)
    assert not ((kept > 0) & ~raw & trunks).any()


def test_a_cavity_enclosed_by_the_vessel_mask_is_filled():
    # A network mask with a hollow stretch of lumen (missed centre voxels, enclosed on every side):
    # a vessel lumen is solid, so the repair fills it, whatever the image shows there.
    ct, vessels, liver, sp, _ = _two_tubes()
    p, _ = grid(sp, (80, 60, 60))  # the grid _two_tubes builds on
    cavity = (np.hypot(p[..., 1] + 10, p[..., 2]) <= 1.5) & (np.abs(p[..., 0]) <= 4)
    assert vessels[cavity].all() and cavity.sum() >= 20
    hollow = vessels.copy()
    hollow[cavity] = 0
    ct = ct.copy()
    ct[cavity] = 100  # parenchyma there: no image-based growth reaches it
    repaired, meta = repair_vessel_mask(hollow, liver, ct, sp)
    assert repaired[cavity].all()
    assert meta["steps"]["hole_voxels_filled"] >= cavity.sum()


def test_small_liver_pieces_far_away_do_not_stretch_the_region_of_work(phantom, degraded, monkeypatch):
    """A network's liver speck far from the liver (here 50 slices away, in air) leaves the box of work
    as the liver alone makes it: same result, the speck's vessels left out, and the QC says so."""
    from livervessels import enhancement as enh

    truth, liver, raw = degraded
    far = 50
    ct = np.pad(phantom.ct, ((0, 0), (0, 0), (0, far)), constant_values=-1000)
    liver_far, raw_far = (np.pad(np.asarray(a, np.uint8), ((0, 0), (0, 0), (0, far))) for a in (liver, raw))
    liver_speck, raw_speck = liver_far.copy(), raw_far.copy()
    liver_speck[70:74, 70:74, -6:-2] = 1
    raw_speck[71:73, 71:73, -5:-3] = 1
    shapes = []
    real = enh._enhance_crop
    monkeypatch.setattr(enh, "_enhance_crop", lambda r, *a, **k: shapes.append(r.shape) or real(r, *a, **k))
    out_ref, meta_ref = repair_vessel_mask(raw_far, liver_far, ct, phantom.spacing)
    out, meta = repair_vessel_mask(raw_speck, liver_speck, ct, phantom.spacing)
    assert shapes[0] == shapes[1] and shapes[0][2] < ct.shape[2] - far + 20
    assert np.array_equal(out, out_ref) and not out[:, :, -far:].any()
    assert any("1 small liver piece(s)" in f for f in meta["fallbacks_used"])
    assert not any("liver piece" in f for f in meta_ref["fallbacks_used"])
    # A piece as large as the fraction asks for is liver: it widens the box.
    big = liver_far.copy()
    big[40:120, 40:120, -12:-2] = 1
    repair_vessel_mask(raw_far, big, ct, phantom.spacing)
    assert shapes[2][2] == ct.shape[2]


# ---------------------------------------------------------------------------------------------
# The steps by hand, on small arrays (expectations worked out from the parameters' meaning)
# ---------------------------------------------------------------------------------------------


def _column(values) -> np.ndarray:
    """A list of values as a 3-D array, one voxel per value along the first axis."""
    return np.asarray(values, np.float32).reshape(-1, 1, 1)


def test_measure_takes_the_parenchyma_median_and_spread_and_the_lumen_at_its_90th_percentile():
    from livervessels import enhancement as enh

    p = EnhancementParams()
    parenchyma = [80.0, 90.0, 100.0, 110.0, 120.0] * 20  # median 100, median |x - 100| = 10
    lumen = list(range(200, 230))  # 30 voxels: 90th percentile 200 + 0.9 x 29
    smooth = _column(parenchyma + lumen)
    raw = _column([0] * len(parenchyma) + [1] * len(lumen)) > 0
    fallbacks: list[str] = []
    st = enh._measure(smooth, raw, ~raw, p, fallbacks)
    assert st.parenchyma_hu == 100.0 and st.parenchyma_sd_hu == pytest.approx(10 * 1.4826, rel=1e-4)
    assert st.vessel_hu == pytest.approx(226.1, abs=1e-3) and st.contrast_hu == pytest.approx(126.1, abs=1e-3)
    assert fallbacks == []
    # fewer than 20 raw voxels: the default contrast, and the metadata says so
    few = raw.copy()
    few[len(parenchyma) + 19:] = False
    st = enh._measure(smooth, few, ~raw, p, fallbacks)
    assert (st.contrast_hu, st.vessel_hu) == (80.0, 180.0)
    assert fallbacks == ["raw vessel mask too small to measure the vessel contrast: 80.0 HU assumed"]
    # a flat parenchyma still gets a spread of 1 HU; no background: the whole crop is measured
    st = enh._measure(_column([100.0] * 50 + lumen), _column([0] * 50 + [1] * 30) > 0,
                      _column([1] * 50 + [0] * 30) > 0, p, [])
    assert st.parenchyma_sd_hu == 1.0
    st = enh._measure(smooth, raw, np.zeros(raw.shape, bool), p, [])
    assert st.parenchyma_hu == float(np.median(smooth))


def test_candidates_are_tubular_above_the_noise_floor_and_inside_the_half_maximum():
    from livervessels import enhancement as enh

    p = EnhancementParams()
    st = enh._Stats(parenchyma_hu=100.0, parenchyma_sd_hu=10.0, vessel_hu=200.0, contrast_hu=100.0, low=0.2)
    # floor: 100 + max(2 x 10, 0.15 x 100) = 120; half maximum: 100 + 0.5 x (peak - 100)
    cases = [  # (vesselness, smoothed HU, local peak HU, candidate?)
        (0.2, 150.0, 200.0, True), (0.19, 150.0, 200.0, False), (0.2, 149.9, 200.0, False),
        (0.5, 120.0, 120.0, True), (0.5, 119.9, 120.0, False), (0.5, 130.0, 170.0, False),
    ]
    tube, smooth, peak, expected = (np.array(c) for c in zip(*cases))
    got = enh._candidates(_column(tube), _column(smooth), _column(peak), st, p).ravel()
    assert got.tolist() == expected.tolist()
    # a stronger contrast raises the floor to 0.15 x contrast; a noisier scan to 2 spreads
    strong = enh._Stats(100.0, 10.0, 300.0, 200.0, low=0.2)
    noisy = enh._Stats(100.0, 20.0, 200.0, 100.0, low=0.2)
    for st2, floor in ((strong, 130.0), (noisy, 140.0)):
        got = enh._candidates(_column([0.5, 0.5]), _column([floor, floor - 0.1]), _column([floor, floor]), st2, p)
        assert got.ravel().tolist() == [True, False]


def test_trim_drops_dim_boundary_voxels_of_a_clear_vessel_but_never_its_skeleton():
    from livervessels import enhancement as enh

    p = EnhancementParams()
    st = enh._Stats(100.0, 10.0, 200.0, 100.0)
    mask = np.zeros((15, 7, 7), bool)
    mask[2:13, 2:5, 2:5] = True  # a bar 3 x 3 voxels across
    centre = np.zeros_like(mask)
    centre[3:12, 3, 3] = True  # its inner line: not on the boundary
    peak = np.full(mask.shape, 200.0)  # clearly a vessel: 100 HU above the parenchyma >= 0.5 x contrast
    # dropped below 100 + 0.5 x (200 - 100) - 2 x 10 = 130 HU
    out = enh._trim(mask, np.full(mask.shape, 129.9), peak, st, p)
    assert out[centre].all() and not (out & ~mask).any()
    off_axis = mask.copy()
    off_axis[:, 3, 3] = False
    assert not out[off_axis].any()  # every off-axis voxel is boundary, none on the skeleton
    assert np.array_equal(enh._trim(mask, np.full(mask.shape, 130.0), peak, st, p), mask)
    # a vessel too faint to measure its edge (peak 49 HU above the parenchyma) keeps its boundary
    # (below 100 + 0.5 x 49 - 20 HU, yet kept); at 50 HU it is clear, and below 105 HU goes
    assert np.array_equal(enh._trim(mask, np.full(mask.shape, 104.0), np.full(mask.shape, 149.0), st, p), mask)
    assert not enh._trim(mask, np.full(mask.shape, 104.9), np.full(mask.shape, 150.0), st, p)[off_axis].any()
    # a one-voxel line is all boundary and all skeleton: nothing goes
    line = np.zeros_like(mask)
    line[2:13, 3, 3] = True
    assert np.array_equal(enh._trim(line, np.full(mask.shape, 0.0), peak, st, p), line)


def _pieces(shape=(40, 40, 70)):
    """Separate components for the pruning tests: {name: mask}."""
    def box(*sl):
        m = np.zeros(shape, bool)
        m[sl] = True
        return m

    return {"main": box(slice(0, 10), slice(0, 10), slice(0, 10)),  # 1,000 voxels
            "second": box(slice(20, 24), slice(0, 5), slice(0, 5)),  # 100: a tenth of the largest
            "short_line": box(30, slice(0, 20), 30),  # 20 voxels, elongated
            "cube": box(slice(20, 24), slice(20, 24), slice(50, 54)),  # 64 voxels, a ball-like blob
            "long_line": box(slice(0, 36), 30, 45),  # 36 voxels, elongated
            "faint_line": box(slice(0, 36), 36, 60)}


def test_prune_keeps_the_main_trees_and_drops_small_round_or_faint_pieces():
    from livervessels import enhancement as enh

    p = EnhancementParams()
    sp = (1.0, 1.0, 1.0)
    pieces = _pieces()
    mask = np.any(list(pieces.values()), axis=0)
    smooth = np.full(mask.shape, 100.0)
    smooth[mask] = 200.0
    smooth[pieces["faint_line"]] = 120.0  # core 0.20 x contrast < 0.25
    st = enh._Stats(100.0, 10.0, 200.0, 100.0)

    def kept(out):
        return {name for name, m in pieces.items() if out[m].all()}

    everything = set(pieces)
    # sizes: anything under min_voxels goes, unless it is a main tree (>= 0.1 x the largest)
    out = enh._prune(mask, smooth, sp, st, p, 30, use_image=False, use_size=True)
    assert kept(out) == everything - {"short_line", "cube"}  # the cube: 64 voxels but not tubular
    out = enh._prune(mask, smooth, sp, st, p, 101, use_image=False, use_size=True)
    assert kept(out) == {"main", "second"}
    out = enh._prune(mask, smooth, sp, st, p, 20, use_image=False, use_size=True)
    assert kept(out) == everything - {"cube"}
    # image: no bright core, out (main trees excepted)
    smooth[pieces["second"]] = 100.0
    out = enh._prune(mask, smooth, sp, st, p, 0, use_image=True, use_size=False)
    assert kept(out) == everything - {"faint_line"}
    smooth[pieces["faint_line"]] = 125.0  # 0.25: just a core
    assert kept(enh._prune(mask, smooth, sp, st, p, 0, use_image=True, use_size=False)) == everything
    smooth[pieces["faint_line"]] = 126.0  # 0.26
    noisy = enh._Stats(100.0, 20.0, 200.0, 100.0)  # 1.5 spreads = 0.30 of the contrast
    out = enh._prune(mask, smooth, sp, noisy, p, 0, use_image=True, use_size=False)
    assert kept(out) == everything - {"faint_line"}
    # shape is judged only from a ball 2 voxels in radius up (33.5 voxels): a 30-voxel lump stays
    lump = np.zeros_like(mask)
    lump[30:33, 30:33, 60:63] = True
    lump[33, 31, 61] = lump[29, 31, 61] = lump[31, 33, 61] = True
    assert lump.sum() == 30
    out = enh._prune(mask | lump, smooth, sp, st, p, 30, use_image=False, use_size=True)
    assert out[lump].all() and not out[pieces["cube"]].any()
    # one component: nothing to prune
    only = pieces["cube"]
    assert np.array_equal(enh._prune(only, smooth, sp, st, p, 10 ** 6, use_image=True, use_size=True), only)


def test_component_table_measures_length_radius_and_core_in_mm_and_contrast():
    from livervessels import enhancement as enh

    st = enh._Stats(100.0, 10.0, 200.0, 50.0)
    lab = np.zeros((30, 5, 5), np.int32)
    lab[2:22, 2, 2] = 1  # a line of 20 voxels
    smooth = np.full(lab.shape, 100.0)
    smooth[2:22, 2, 2] = np.arange(20) + 120.0  # 90th percentile 120 + 17.1
    sp = (0.5, 1.0, 1.5)  # voxel 0.75 mm3, mean step 1 mm
    (row,) = enh._component_table(lab, [1], smooth, sp, st)
    length = 20 * 1.0
    r_eq = np.sqrt(20 * 0.75 / (np.pi * length))
    assert row["voxels"] == 20 and row["elongation"] == pytest.approx(length / r_eq)
    assert row["core_contrast"] == pytest.approx(37.1 / 50.0)


def test_liver_box_leaves_out_only_small_liver_pieces_outside_it():
    from livervessels import enhancement as enh

    liver = np.zeros((40, 40, 40), bool)
    liver[5:15, 5:15, 5:15] = True  # 1,000 voxels
    pad = (1, 2, 3)
    box, n_out, vox_out = enh._liver_box(liver, 0.05, pad)
    assert box == (slice(4, 16), slice(3, 17), slice(2, 18)) and (n_out, vox_out) == (0, 0)
    speck = liver.copy()
    speck[35:37, 35:37, 35:37] = True  # 8 voxels < 0.05 x 1,000, far away
    assert enh._liver_box(speck, 0.05, pad) == (box, 1, 8)
    near = liver.copy()
    near[15, 16, 16] = True  # a one-voxel piece inside the padded box: nothing left out
    assert enh._liver_box(near, 0.05, pad) == (box, 0, 0)
    piece = liver.copy()
    piece[30:35, 30:35, 30:32] = True  # 50 voxels = 0.05 x 1,000: liver, it widens the box
    assert enh._liver_box(piece, 0.05, pad) == ((slice(4, 36), slice(3, 37), slice(2, 35)), 0, 0)
    edge_box, _, _ = enh._liver_box(piece, 0.05, (10, 10, 10))  # clipped to the grid
    assert edge_box == (slice(0, 40), slice(0, 40), slice(0, 40))


def test_min_component_voxels_from_a_size_or_a_volume():
    from livervessels import enhancement as enh

    p = EnhancementParams()  # 30 mm3 by default
    assert enh._min_component_voxels(None, None, p, 0.5) == 60
    assert enh._min_component_voxels(None, 30.1, p, 0.5) == 61  # rounded up
    assert enh._min_component_voxels(10, None, p, 0.5) == 10  # a size alone is taken as given
    assert enh._min_component_voxels(100, 20.0, p, 0.5) == 100  # both: the larger
    assert enh._min_component_voxels(10, 20.0, p, 0.5) == 40


def test_growth_pieces_keep_what_touches_the_tree_and_reaches_the_high_threshold():
    from livervessels import enhancement as enh

    mask = np.zeros((20, 9, 9), bool)
    mask[0:10, 4, 4] = True
    cand = np.zeros_like(mask)
    cand[5:10, 4, 4] = True  # already in the tree: not a piece
    cand[10:13, 5, 5] = True  # touches the tree's end diagonally
    cand[2:4, 6, 4] = True  # two voxels beside the tree: not touching (a gap of one voxel)
    cand[1:3, 3, 3] = True  # touches the tree
    tube = np.zeros(mask.shape, np.float32)
    tube[10:13, 5, 5] = [0.1, 0.6, 0.2]
    tube[2:4, 6, 4] = 0.9
    tube[1:3, 3, 3] = 0.3
    g = enh._GrowthPieces(mask, cand, tube)
    assert g.n == 3
    label_of = {name: int(g.pieces[at]) for name, at in (("end", (11, 5, 5)), ("apart", (2, 6, 4)),
                                                         ("side", (1, 3, 3)))}
    assert sorted(g.kept(0.3).tolist()) == sorted([label_of["end"], label_of["side"]])
    assert g.kept(0.31).tolist() == [label_of["end"]] and g.kept(0.61).size == 0
    keep = g.kept(0.3)
    assert g.voxels(keep) == 5
    within = np.zeros_like(mask)
    within[11:, :, :] = True
    assert g.voxels(keep, within) == 2
    grown = g.grown(mask, keep)
    assert grown[10:13, 5, 5].all() and grown[1:3, 3, 3].all() and not grown[2:4, 6, 4].any()
    assert (grown & ~cand).sum() == mask.sum() - 5  # nothing but the pieces added


def _broken_tube(gap_from: int, gap_to: int):
    """A straight vessel 3 x 3 voxels across along the first axis (voxels 0-39, in a larger array)
    with its voxels gap_from..gap_to - 1 missing from the mask; vesselness 1 and 200 HU on its
    axis, 0.02 and 100 HU elsewhere."""
    mask = np.zeros((60, 21, 21), bool)
    mask[:40, 9:12, 9:12] = True
    mask[gap_from:gap_to] = False
    tube = np.full(mask.shape, 0.02, np.float32)
    tube[:, 10, 10] = 1.0
    smooth = np.full(mask.shape, 100.0, np.float32)
    smooth[:, 10, 10] = 200.0
    return mask, tube, smooth, np.ones(mask.shape, bool)


def test_bridge_joins_a_gap_along_the_vessel_only_when_short_tubular_and_bright():
    from livervessels import enhancement as enh

    p = EnhancementParams()  # gaps up to 6 mm; mean vesselness 0.1 and contrast 0.15 along the bridge
    st = enh._Stats(100.0, 10.0, 200.0, 100.0, low=0.1)
    sp = (1.0, 1.0, 1.0)
    mask, tube, smooth, region = _broken_tube(15, 19)  # 5 mm from one end to the other
    out, n = enh._bridge(mask, tube, smooth, region, st, p, sp)
    gap_axis = np.zeros_like(mask)
    gap_axis[15:19, 10, 10] = True
    # along the axis, as thick as the thinner end allows (1 mm at a cut end: the line itself)
    assert n == 1 and np.array_equal(out, mask | gap_axis)
    # a smaller fragment with nothing near it is left alone, and the rest still joined
    speck = mask.copy()
    speck[55:57, 2:4, 2:4] = True
    out, n = enh._bridge(speck, tube, smooth, region, st, p, sp)
    assert n == 1 and np.array_equal(out, speck | gap_axis)
    exact, _, _, _ = _broken_tube(15, 20)  # 6 mm: still bridged
    assert enh._bridge(exact, tube, smooth, region, st, p, sp)[1] == 1
    wide, _, _, _ = _broken_tube(12, 19)  # 8 mm > 6 mm
    assert enh._bridge(wide, tube, smooth, region, st, p, sp)[1] == 0
    dim = smooth.copy()
    dim[15:19, 10, 10] = 110.0  # 10 HU along the bridge < 0.15 x 100
    assert enh._bridge(mask, tube, dim, region, st, p, sp)[1] == 0
    flat = tube.copy()
    flat[15:19, 10, 10] = 0.05  # not tube-like there
    assert enh._bridge(mask, flat, smooth, region, st, p, sp)[1] == 0
    strict = enh._Stats(100.0, 10.0, 200.0, 100.0, low=1.1)  # the growth's low threshold counts too
    assert enh._bridge(mask, tube, smooth, region, strict, p, sp)[1] == 0
    outside = region.copy()
    outside[15:19] = False  # never through voxels outside the region
    assert enh._bridge(mask, tube, smooth, outside, st, p, sp)[1] == 0
    single = mask.copy()
    single[19:] = False  # one fragment: nothing to join
    assert enh._bridge(single, tube, smooth, region, st, p, sp)[1] == 0


def test_a_bridge_around_an_obstacle_counts_its_whole_path_with_the_steps_in_and_out():
    from livervessels import enhancement as enh

    p = EnhancementParams()  # a bridge at most 1.5 x 6 mm long
    st = enh._Stats(100.0, 10.0, 200.0, 100.0, low=0.1)
    sp = (1.0, 1.0, 1.0)
    mask, tube, smooth, region = _broken_tube(15, 19)  # 5 mm apart in a straight line
    tube[:] = 1.0  # tube-like and bright everywhere: only the length decides
    smooth[:] = 200.0
    # The region leaves the gap open only beyond a wall (x 15-18, every y below h): the path climbs
    # from the vessel's edge (y = 11) to y = h, runs along the wall and comes back down. h = 13:
    # 1 + 1.41 + 3 + 1.41 + 1 = 7.8 mm, steps out of and into the fragments included; h = 14: 9.8 mm
    # (7.8 between new voxels only).
    for h, bridged in ((13, 1), (14, 0)):
        walled = region.copy()
        walled[15:19, :h, :] = False
        out, n = enh._bridge(mask, tube, smooth, walled, st, p, sp)
        assert n == bridged, h
        assert not (out & ~walled).any()


def test_region_of_work_is_the_grown_liver_or_the_raw_vessels_box():
    from livervessels import enhancement as enh

    p = EnhancementParams()
    sp = (1.0, 1.0, 2.0)
    raw = np.zeros((100, 100, 100), bool)
    raw[50, 50, 50] = True
    fallbacks: list[str] = []
    # no liver: the raw mask's box grown by 30 mm plus the halo, all of it region
    box, region, liver_c = enh._region_of_work(raw, None, sp, p, 4.0, True, fallbacks)
    assert box == (slice(16, 85), slice(16, 85), slice(33, 68))
    assert region.shape == (69, 69, 35) and region.all() and liver_c is None
    assert fallbacks == ["liver mask missing or empty: whole volume used"]
    with pytest.raises(InputError, match="liver mask is missing or empty, so vessel enhancement cannot be "
                       "restricted to the liver; provide a liver segmentation or allow the whole-volume fallback"):
        enh._region_of_work(raw, np.zeros(raw.shape, np.uint8), sp, p, 4.0, False, [])
    fallbacks = []
    assert enh._region_of_work(np.zeros_like(raw), None, sp, p, 4.0, True, fallbacks) == (None, None, None)
    assert fallbacks[-1] == "raw vessel mask empty: nothing to enhance"
    # a liver: its box grown by 3 mm plus the halo, the region the liver grown by 3 mm
    liver = np.zeros(raw.shape, np.uint8)
    liver[40:60, 40:60, 45:55] = 1
    fallbacks = []
    box, region, liver_c = enh._region_of_work(raw, liver, sp, p, 4.0, True, fallbacks)
    assert box == (slice(33, 67), slice(33, 67), slice(41, 59)) and fallbacks == []
    assert np.array_equal(liver_c, liver[box] > 0)
    d = ndimage.distance_transform_edt(liver[box] == 0, sampling=sp)
    assert np.array_equal(region, d <= 3.0)
