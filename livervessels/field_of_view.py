"""Does the scan hold the liver? Volume and cut checks on the liver mask, in ml and cm2."""
from __future__ import annotations

import numpy as np

# A whole adult liver is 1-2 l; under this much found, the scan holds only part of it (or none).
MIN_LIVER_ML = 300.0
# Under this much (a tenth of a small adult liver) the scan holds at most the dome or the tip: neither
# the hilum nor the hepatic vein confluence is there, so no vessel analysis is made at all.
NO_LIVER_ML = 100.0
# Over this much the liver mask almost surely holds other tissue: even gross hepatomegaly rarely passes
# 5 l (polycystic livers can, and then the warning is a prompt to look, not a refusal). The repair works
# on the liver mask's box, so such a mask also costs time and memory in proportion.
MAX_LIVER_ML = 5000.0
# A liver cross-section this large in the first or last slice: the liver continues beyond the scan.
CUT_LIVER_CM2 = 5.0


def _figure(value: float, limit: float, decimals: int = 0) -> str:
    """value as text, with more decimals where rounding would put it on the limit or past it (99.996 ml
    reads "99.996 ml ... under 100 ml", not "100 ml ... under 100 ml")."""
    for digits in range(decimals, decimals + 6):
        text = f"{value:.{digits}f}"
        if float(text) != limit and (float(text) < limit) == (value < limit):
            break
    return text


def liver_volume_ml(masks: dict[str, np.ndarray], spacing) -> float | None:
    """The liver mask's volume in ml, or None when there is no liver mask."""
    liver = masks.get("liver")
    return None if liver is None else float(np.count_nonzero(liver)) * float(np.prod(spacing)) / 1000.0


def liver_absent_reason(masks: dict[str, np.ndarray], spacing) -> str | None:
    """Why no vessel analysis can be made (the liver mask holds under NO_LIVER_ML), else None.
    Without a liver mask at all the repair works on the whole volume instead (its own fallback)."""
    volume_ml = liver_volume_ml(masks, spacing)
    if volume_ml is None or volume_ml >= NO_LIVER_ML:
        return None
    return (f"no liver in the field of view ({_figure(volume_ml, NO_LIVER_ML)} ml of liver found, under "
            f"{NO_LIVER_ML:.0f} ml): no vessel analysis was made and the vessel outputs are empty; check that the "
            "scan covers the upper abdomen")


def field_of_view_warnings(masks: dict[str, np.ndarray], spacing) -> list[str]:
    """Warnings when the scan holds no liver, too little of it, implausibly much, or cuts it at its
    first or last slice (array axis 2): the vessel outputs and statistics then cover only what was scanned."""
    volume_ml = liver_volume_ml(masks, spacing)
    if volume_ml is None:
        return []
    absent = liver_absent_reason(masks, spacing)
    if absent is not None:
        return [absent]
    liver = np.asarray(masks["liver"]) > 0
    warnings = []
    if volume_ml > MAX_LIVER_ML:
        litres = _figure(volume_ml / 1000.0, MAX_LIVER_ML / 1000.0, 1)
        warnings.append(f"{litres} l of liver found (a whole liver is 1-2 l, rarely over "
                        f"{MAX_LIVER_ML / 1000.0:.0f} l): the liver mask likely holds other tissue; check it and the "
                        "segmentation model before using the vessel outputs")
    if volume_ml < MIN_LIVER_ML:
        warnings.append(f"only {_figure(volume_ml, MIN_LIVER_ML)} ml of liver found (a whole liver is 1-2 l): the "
                        "scan covers part of it, and the vessel outputs and statistics only that part")
    pixel_cm2 = float(spacing[0] * spacing[1]) / 100.0
    for name, index in (("first", 0), ("last", liver.shape[2] - 1)):
        area = float(np.count_nonzero(liver[:, :, index])) * pixel_cm2
        if area > CUT_LIVER_CM2:
            warnings.append(f"the liver is cut by the scan's {name} slice ({area:.0f} cm2 of liver there): it "
                            "continues beyond the scanned range, and so do its vessels")
    return warnings
