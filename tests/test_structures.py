"""livervessels/outputs/structures.py: the structures the outputs report and how they are coded.

Checks the table against DICOM's limits for the attributes it fills (Segment Label is LO, at most
64 characters; Code Value SH, at most 16; PS3.5 6.2), that every structure can be told apart by
name, code and colour, that the other modules name only structures listed here, and the contract
of structures_for for classes the table does not know.
"""
from __future__ import annotations

import re

from livervessels.outputs import measurements, preview
from livervessels.outputs.structures import (
    COUINAUD_STRUCTURES,
    GENERIC_STRUCTURE_CODE,
    SEG_BY_NAME,
    SEG_STRUCTURES,
    structures_for,
)


def test_the_seg_table_fits_dicom_and_tells_every_structure_apart():
    table = SEG_STRUCTURES + COUINAUD_STRUCTURES
    names = [s.name for s in table]
    assert len(set(names)) == len(names) and SEG_BY_NAME == {s.name: s for s in table}
    assert len({s.label for s in table}) == len(names)
    assert len({s.rgb for s in table}) == len(names)  # a viewer shows each in its own colour
    assert all(s.in_liver for s in COUINAUD_STRUCTURES)  # the segments are parts of the liver
    for s in table:
        assert re.fullmatch(r"[a-z0-9_]+", s.name)  # a file stem on every system
        assert 0 < len(s.label) <= 64  # LO
        value, scheme, meaning = s.code
        assert value.isdigit() and len(value) <= 16 and scheme == "SCT" and 0 < len(meaning) <= 64
        assert all(isinstance(c, int) and 0 <= c <= 255 for c in s.rgb) and len(s.rgb) == 3


def test_the_vessels_inside_the_liver_and_only_they_are_marked_so():
    # the intrahepatic trees lie in the liver; the liver itself, the cava and the portal trunk do not
    inside = {s.name for s in SEG_STRUCTURES if s.in_liver}
    assert inside == {"enhanced_liver_vessels", "portal_vein_branches", "hepatic_veins"}


def test_the_other_outputs_name_only_structures_of_the_table():
    assert set(measurements.VESSEL_TREES) <= set(SEG_BY_NAME)
    # the preview also draws the model's raw "liver_vessels" class, which is not a SEG segment
    assert set(preview.VESSEL_LAYERS) - {"liver_vessels"} <= set(SEG_BY_NAME)


def test_known_names_keep_their_entry_and_others_get_the_generic_code():
    out = structures_for(["kidney_left", "liver", "portal_vein_branches", "small_bowel"])
    assert [s.name for s in out] == ["kidney_left", "liver", "portal_vein_branches", "small_bowel"]
    assert out[1] is SEG_BY_NAME["liver"] and out[2] is SEG_BY_NAME["portal_vein_branches"]
    generic = [out[0], out[3]]
    # SNOMED CT 91723000 is "Anatomical structure"
    assert all(s.code == GENERIC_STRUCTURE_CODE == ("91723000", "SCT", "Anatomical structure") for s in generic)
    assert [s.label for s in generic] == ["kidney left", "small bowel"]
    assert not any(s.in_liver for s in generic)


def test_many_unknown_classes_get_distinct_valid_colours():
    names = [f"class_{n}" for n in range(117)]  # as many as TotalSegmentator's total task
    colours = [s.rgb for s in structures_for(names)]
    assert len(set(colours)) == len(names)
    assert all(len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colours)
    # the same class list gives the same colours (the preview and the SEG agree run after run)
    assert colours == [s.rgb for s in structures_for(names)]
