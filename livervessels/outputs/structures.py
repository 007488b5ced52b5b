"""The structures this application reports: file names, DICOM codes, labels and colours.

One place for them, so the NIfTI writer, the DICOM SEG writer, statistics and the preview agree.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Structure:
    name: str  # NIfTI file stem and key everywhere
    label: str  # human-readable segment label
    code: tuple[str, str, str]  # (value, scheme, meaning) of the segmented property type
    rgb: tuple[int, int, int]
    in_liver: bool = False  # anatomic region: liver


ANATOMICAL_STRUCTURE = ("123037004", "SCT", "Anatomical Structure")
LIVER_CODE = ("10200004", "SCT", "Liver")

# Order = segment numbers in the DICOM SEG (1-based, empty ones left out).
SEG_STRUCTURES: tuple[Structure, ...] = (
    Structure("liver", "Liver", LIVER_CODE, (221, 130, 101)),
    Structure("enhanced_liver_vessels", "Liver vessels", ("59820001", "SCT", "Blood vessel"), (216, 40, 40), True),
    Structure("portal_vein_branches", "Portal vein branches", ("32764006", "SCT", "Portal vein"), (170, 60, 200), True),
    Structure("hepatic_veins", "Hepatic veins", ("8993003", "SCT", "Hepatic vein"), (30, 144, 255), True),
    Structure("inferior_vena_cava", "Inferior vena cava", ("64131007", "SCT", "Inferior vena cava"), (0, 60, 160)),
    # Its own concept (as TotalSegmentator codes this class), so a viewer that looks segments up by
    # code does not take the trunk outside the liver for the intrahepatic portal branches.
    Structure("portal_vein_and_splenic_vein", "Portal vein and splenic vein trunk",
              ("110765007", "SCT", "Portal vein and splenic vein"), (120, 40, 150)),
)
# The vessel-derived Couinaud segments (pipeline.add_couinaud_segments), coded as DICOM CID 7170
# "Couinaud Liver Segment" codes them; written into the SEG after the structures above.
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII")
_COUINAUD_CODES = ("71133005", "277956007", "277957003", "277958008", "277959000", "277960005", "277961009",
                   "277962002")
_COUINAUD_RGB = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
                 (204, 121, 167), (190, 190, 250))  # Okabe-Ito (and lavender): told apart with colour-vision deficiency
COUINAUD_STRUCTURES: tuple[Structure, ...] = tuple(
    Structure(f"couinaud_segment_{i}", f"Couinaud segment {roman}", (code, "SCT", f"Couinaud hepatic segment {roman}"),
              rgb, True)
    for i, (roman, code, rgb) in enumerate(zip(_ROMAN, _COUINAUD_CODES, _COUINAUD_RGB), start=1))
SEG_BY_NAME = {s.name: s for s in SEG_STRUCTURES + COUINAUD_STRUCTURES}

GENERIC_STRUCTURE_CODE = ("91723000", "SCT", "Anatomical structure")


def structures_for(names: list[str]) -> tuple[Structure, ...]:
    """Known structures keep their codes and colours; other classes (e.g. TotalSegmentator's 117)
    get the generic anatomical-structure code, their name as label and a distinct colour."""
    out = []
    for i, name in enumerate(names):
        if name in SEG_BY_NAME:
            out.append(SEG_BY_NAME[name])
            continue
        hue = (i * 0.618033988749895) % 1.0  # golden-ratio hues stay distinct for many classes
        rgb = tuple(int(255 * c) for c in _hsv_to_rgb(hue, 0.65, 0.95))
        out.append(Structure(name, name.replace("_", " "), GENERIC_STRUCTURE_CODE, rgb))
    return tuple(out)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)
