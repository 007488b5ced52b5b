"""The contrast phase from blood-pool and organ HU (livervessels.contrast_phase)."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.contrast_phase import (
    NATIVE_HU,
    PHASE_TIMES_S,
    PHASES,
    PhaseParams,
    contrast_phase_of_scan,
    estimate_contrast_phase,
    expected_hu,
    measure_structure_hu,
    phase_warning,
)

STRUCTURES = list(NATIVE_HU)


def test_the_curves_follow_the_order_blood_reaches_each_structure():
    t = np.arange(0.0, 300.0, 1.0)
    peak = {name: float(t[np.argmax(expected_hu(name, t))]) for name in STRUCTURES}
    # arterial first, then the portal vein (spleen and bowel drain into it), then the liver
    assert peak["aorta"] < peak["portal_vein_and_splenic_vein"] < peak["liver"]
    assert peak["spleen"] < peak["portal_vein_and_splenic_vein"]  # its blood feeds the portal vein
    for name in STRUCTURES:
        assert expected_hu(name, 0.0) == NATIVE_HU[name]  # nothing before the bolus arrives
    # equilibrium: every blood pool within 15 HU of the others at 3 and 5 min
    for when in (180.0, 299.0):
        pools = [float(expected_hu(n, when)) for n in ("aorta", "portal_vein_and_splenic_vein", "inferior_vena_cava")]
        assert max(pools) - min(pools) <= 15.0
    assert float(expected_hu("aorta", 30.0, scale=0.5)) == pytest.approx(NATIVE_HU["aorta"] + 150.0)


@pytest.mark.parametrize("phase,hu", [
    # unenhanced blood 40-45 HU, liver 55-60
    ("native", {"aorta": 44, "portal_vein_and_splenic_vein": 41, "inferior_vena_cava": 43, "liver": 59, "spleen": 47}),
    # bright aorta, portal vein barely filled, liver not yet enhanced
    ("arterial_early", {"aorta": 320, "portal_vein_and_splenic_vein": 75, "inferior_vena_cava": 50, "liver": 63,
                        "spleen": 105}),
    # bright aorta and a filling portal vein, spleen at its peak
    ("arterial_late", {"aorta": 290, "portal_vein_and_splenic_vein": 175, "inferior_vena_cava": 85, "liver": 82,
                       "spleen": 150}),
    # portal vein brightest, liver at its peak
    ("portal_venous", {"aorta": 175, "portal_vein_and_splenic_vein": 205, "inferior_vena_cava": 160, "liver": 112,
                       "spleen": 125}),
])
def test_textbook_values_of_each_phase_are_recognised(phase, hu):
    est = estimate_contrast_phase(hu)
    assert est.phase == phase and est.probability > 0.5
    assert sum(est.probabilities.values()) == pytest.approx(1.0)
    assert set(est.probabilities) == set(PHASES)
    lo, hi = PHASE_TIMES_S[phase]
    assert est.post_injection_interval_s[0] <= max(est.post_injection_s, lo) <= est.post_injection_interval_s[1]


def test_equal_blood_pools_at_a_modest_level_read_as_delayed_not_portal_venous():
    est = estimate_contrast_phase({"aorta": 125, "portal_vein_and_splenic_vein": 128, "inferior_vena_cava": 125,
                                   "liver": 95, "spleen": 98})
    assert est.phase == "delayed"
    assert est.probabilities["arterial_early"] < 0.01 and est.probabilities["native"] < 0.01


def test_the_time_it_was_made_at_is_recovered_from_the_curves_themselves():
    for when in (20.0, 45.0, 80.0):
        hu = {n: float(expected_hu(n, when)) for n in STRUCTURES}
        est = estimate_contrast_phase(hu)
        lo, hi = est.post_injection_interval_s
        assert lo <= when <= hi, (when, est.post_injection_interval_s)


def test_one_bad_mask_does_not_decide_the_phase():
    hu = {"aorta": 175, "portal_vein_and_splenic_vein": 205, "inferior_vena_cava": 160, "liver": 112, "spleen": 125}
    # a liver mask that leaked into the ribs: bone HU in one structure
    est = estimate_contrast_phase({**hu, "liver": 400})
    assert est.phase in ("portal_venous", "delayed") and est.probabilities["arterial_early"] < 0.05


def test_a_dark_ivc_counts_less_before_the_blood_has_mixed(monkeypatch):
    # before about 150 s the IVC carries unopacified blood from the legs beside the opacified return:
    # its median varies widely, so a dark IVC weighs less against the portal venous phase
    import livervessels.contrast_phase as cp

    scan = {"aorta": 175, "portal_vein_and_splenic_vein": 205, "liver": 112, "spleen": 125, "inferior_vena_cava": 110}
    mixing = estimate_contrast_phase(scan).probabilities["portal_venous"]
    monkeypatch.setattr(cp, "_IVC_MIXING_HU", 0.0)
    assert estimate_contrast_phase(scan).probabilities["portal_venous"] < mixing - 0.03
    pools = {"aorta": 150, "portal_vein_and_splenic_vein": 155, "liver": 100, "spleen": 105}
    assert estimate_contrast_phase(pools).reason == "from aorta, portal_vein_and_splenic_vein, liver, spleen"


def test_too_few_structures_give_no_phase_and_say_why():
    est = estimate_contrast_phase({"liver": 110, "unknown_organ": 50})
    assert est.phase is None and est.probability is None and est.probabilities == {}
    assert est.reason.startswith("only 1 of the phase structures")
    assert estimate_contrast_phase({"liver": 110}, PhaseParams(min_structures=1)).phase is not None
    assert estimate_contrast_phase({"liver": float("nan"), "aorta": 150}).phase is None
    assert phase_warning(est.as_qc()) is None


def test_the_warning_is_for_scans_clearly_not_portal_venous():
    arterial = estimate_contrast_phase({"aorta": 320, "portal_vein_and_splenic_vein": 75, "liver": 63})
    text = phase_warning(arterial.as_qc())
    assert text.startswith("contrast phase looks arterial early (probability")
    assert "split are less reliable" in text
    pv = estimate_contrast_phase({"aorta": 175, "portal_vein_and_splenic_vein": 205, "inferior_vena_cava": 160,
                                  "liver": 112, "spleen": 125})
    assert phase_warning(pv.as_qc()) is None
    # most probably delayed, but portal venous not ruled out: no warning
    doubt = {"phase": "delayed", "probability": 0.5, "probabilities": {"delayed": 0.5, "portal_venous": 0.4}}
    assert phase_warning(doubt) is None
    assert phase_warning({**doubt, "probabilities": {"delayed": 0.8, "portal_venous": 0.2}}) is not None
    # probabilities without a portal venous entry count it as 0
    assert phase_warning({"phase": "native", "probability": 1.0, "probabilities": {"native": 1.0}}) is not None


def _blob_scan(spacing=(1.0, 1.0, 2.0)):
    """Blocks of HU inside a rim at 60 % of it (partial volume), 2 mm thick: two 1 mm voxels in plane,
    one 2 mm slice; the rim has more voxels than the block."""
    ct = np.zeros((40, 40, 20), np.float32)
    masks = {}
    for k, (name, hu) in enumerate((("aorta", 200.0), ("liver", 110.0))):
        inner = np.zeros(ct.shape, bool)
        inner[4 + 18 * k:16 + 18 * k, 4:16, 4:16] = True
        rim = np.zeros(ct.shape, bool)
        rim[2 + 18 * k:18 + 18 * k, 2:18, 3:17] = True
        ct[rim] = hu * 0.6
        ct[inner] = hu
        masks[name] = rim
    return ct, masks, spacing


def test_structures_are_measured_inside_their_masks_away_from_the_rim():
    ct, masks, spacing = _blob_scan()
    hu = measure_structure_hu(ct, masks, spacing)
    assert hu == {"aorta": 200.0, "liver": 110.0}  # 2 mm: two voxels in plane, one slice: the rim is gone
    assert measure_structure_hu(ct, masks, spacing, PhaseParams(erode_mm=0.0))["aorta"] == 120.0  # none: rim wins
    # a structure too small to erode keeps its whole mask; one below min_voxels is left out
    small = {"aorta": np.zeros(ct.shape, bool)}
    small["aorta"][20, 20, 10:12] = True
    assert measure_structure_hu(ct, small, spacing) == {}
    whole = {"aorta": float(np.median(ct[small["aorta"]]))}
    assert measure_structure_hu(ct, small, spacing, PhaseParams(min_voxels=2)) == whole


def test_a_mask_off_the_grid_is_refused_and_other_names_are_ignored():
    ct, masks, spacing = _blob_scan()
    with pytest.raises(ValueError, match="the aorta mask"):
        measure_structure_hu(ct, {"aorta": np.ones((3, 3, 3), bool)}, spacing)
    assert "stomach" not in measure_structure_hu(ct, {**masks, "stomach": masks["liver"]}, spacing)
    est = contrast_phase_of_scan(ct, masks, spacing)
    assert est.structures_hu == {"aorta": 200.0, "liver": 110.0} and est.phase is not None
    assert contrast_phase_of_scan(ct, masks, spacing, PhaseParams(min_structures=3)).phase is None


def test_qc_form_is_rounded_and_complete():
    qc = estimate_contrast_phase({"aorta": 175.04, "portal_vein_and_splenic_vein": 205, "liver": 112}).as_qc()
    assert set(qc) == {"phase", "probability", "probabilities", "post_injection_s", "post_injection_interval_s",
                       "structures_hu", "method", "reason"}
    assert qc["structures_hu"]["aorta"] == 175.0 and len(qc["post_injection_interval_s"]) == 2
