"""livervessels/outputs/preview.py: the preview PNG's orientation, layers, window and headline.

The module's convention is radiological: the patient's right on the image's left, superior
(coronal) and anterior (axial) at the top. Three blobs at known places in the patient (right-
anterior-superior, left-posterior-inferior, right-posterior-inferior) must land in the matching
corner of each panel, whichever way the voxels are stored. Colours are found in the PNG itself.
"""
from __future__ import annotations

import matplotlib.figure
import numpy as np
import pytest
from PIL import Image

from livervessels.geometry import Volume
from livervessels.outputs.preview import render_preview
from livervessels.outputs.structures import SEG_BY_NAME, structures_for

SHAPE = (30, 36, 24)  # RAS index order: i to the patient's left->right, j posterior->anterior, k inferior->superior
RAS = np.array([[2.0, 0, 0, -30.0], [0, 2.0, 0, -40.0], [0, 0, 3.0, 100.0], [0, 0, 0, 1]])


def _blobs() -> dict[str, np.ndarray]:
    masks = {name: np.zeros(SHAPE, bool) for name in ("hepatic_veins", "portal_vein_branches", "inferior_vena_cava")}
    masks["hepatic_veins"][22:27, 26:31, 17:21] = True  # right, anterior, superior
    masks["portal_vein_branches"][3:8, 4:9, 3:7] = True  # left, posterior, inferior
    masks["inferior_vena_cava"][22:27, 4:9, 3:7] = True  # right, posterior, inferior
    return masks


def _as_lps_stored(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored as a scanner does (x and y reversed): same world positions."""
    affine = RAS.copy()
    affine[:3, 3] += RAS[:3, 0] * (SHAPE[0] - 1) + RAS[:3, 1] * (SHAPE[1] - 1)
    affine[:3, :2] *= -1
    return array[::-1, ::-1, :], affine


def _render(tmp_path, ct, masks, affine, **kw) -> np.ndarray:
    path = render_preview(Volume(ct, affine), masks, tmp_path / "p.png", **kw)
    return np.asarray(Image.open(path).convert("RGB")).astype(float)


def _centroids(img: np.ndarray, rgb, alpha: float = 0.85) -> list[tuple[float, float]]:
    """(row, column) centre of the pixels drawn in rgb at the overlay's alpha over black, per panel,
    as fractions of the image; the legend strip at the bottom is left out."""
    h, w, _ = img.shape
    hit = np.linalg.norm(img - alpha * np.asarray(rgb, float), axis=-1) < 25
    hit[int(0.9 * h):] = False
    out = []
    for half in (slice(0, w // 2), slice(w // 2, w)):
        rows, cols = np.nonzero(hit[:, half])
        assert rows.size > 50, f"{rgb} not drawn in a panel"
        out.append((rows.mean() / h, (cols.mean() + (half.start or 0)) / w))
    return out


@pytest.mark.parametrize("stored", ["ras", "lps"])
def test_patient_right_is_on_the_left_and_superior_and_anterior_at_the_top(tmp_path, stored):
    ct = np.full(SHAPE, -1000.0, np.float32)  # air: a black background under the overlays
    masks, affine = _blobs(), RAS
    if stored == "lps":
        masks = {k: _as_lps_stored(v)[0] for k, v in masks.items()}
        ct, affine = _as_lps_stored(ct)
    img = _render(tmp_path, ct, masks, affine)
    (hep_cor, hep_ax), (por_cor, por_ax), (ivc_cor, ivc_ax) = (
        _centroids(img, SEG_BY_NAME[n].rgb) for n in ("hepatic_veins", "portal_vein_branches", "inferior_vena_cava"))
    # coronal (left panel): rows run superior -> inferior, columns patient right -> left
    assert hep_cor[0] < ivc_cor[0] and hep_cor[1] == pytest.approx(ivc_cor[1], abs=0.02)  # above the IVC
    assert ivc_cor[1] < por_cor[1] and ivc_cor[0] == pytest.approx(por_cor[0], abs=0.02)  # right of the portal
    # axial (right panel): rows run anterior -> posterior, columns patient right -> left
    assert hep_ax[0] < ivc_ax[0] and hep_ax[1] == pytest.approx(ivc_ax[1], abs=0.02)  # in front of the IVC
    assert ivc_ax[1] < por_ax[1] and ivc_ax[0] == pytest.approx(por_ax[0], abs=0.02)
    assert all(c[1] < 0.5 for c in (hep_cor, por_cor, ivc_cor)) and all(c[1] > 0.5 for c in (hep_ax, por_ax, ivc_ax))


def test_without_known_vessel_layers_the_other_structures_are_drawn_in_their_colours(tmp_path):
    liver = np.zeros(SHAPE, bool)
    liver[5:25, 5:30, 5:20] = True
    kidney = np.zeros(SHAPE, bool)
    kidney[8:12, 8:12, 8:12] = True
    masks = {"liver": liver, "kidney_left": kidney, "spleen": np.zeros(SHAPE, bool)}  # the empty one is skipped
    img = _render(tmp_path, np.full(SHAPE, -1000.0, np.float32), masks, RAS)
    # the colour the SEG and every output give this class (structures_for over the non-empty masks)
    colour = structures_for(["liver", "kidney_left"])[1].rgb
    assert len(_centroids(img, colour)) == 2  # drawn in both panels; the liver is only outlined


def test_the_unsplit_vessel_mask_is_hidden_once_the_split_trees_are_drawn(tmp_path):
    masks = _blobs()
    del masks["inferior_vena_cava"]
    unsplit = np.zeros(SHAPE, bool)
    unsplit[22:27, 4:9, 3:7] = True  # where only the unsplit mask has voxels
    masks["liver_vessels"] = unsplit
    img = _render(tmp_path, np.full(SHAPE, -1000.0, np.float32), masks, RAS)
    h, w, _ = img.shape
    drawn = (img[: int(0.9 * h)].max(axis=-1) > 40)  # anything but the black background
    hep = _centroids(img, SEG_BY_NAME["hepatic_veins"].rgb)
    por = _centroids(img, SEG_BY_NAME["portal_vein_branches"].rgb)
    # in the coronal panel the unsplit blob would sit below the hepatic blob, level with the portal one
    row, col = int(por[0][0] * h), int(hep[0][1] * w)
    assert not drawn[row - 3:row + 4, col - 3:col + 4].any()


def test_the_headline_carries_the_split_summary_and_the_research_use_notice(tmp_path, monkeypatch):
    titles = []
    original = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, text, **kw: titles.append(text) or original(self, text, **kw))
    ct = np.full(SHAPE, -1000.0, np.float32)
    split_qc = {"portal_fraction": 0.4, "hepatic_fraction": 0.6, "confidence": {"overall": 0.83},
                "flags": ["few_hepatic_seeds", "large_unassigned"]}
    _render(tmp_path, ct, _blobs(), RAS, title="Case 7", split_qc=split_qc)
    _render(tmp_path, ct, _blobs(), RAS, title="Case 8")
    assert titles[0] == ("Case 7 | portal 40%, hepatic 60%, confidence 0.83 | flags: few_hepatic_seeds, "
                         "large_unassigned\nresearch use only, not for diagnosis")
    assert titles[1] == "Case 8\nresearch use only, not for diagnosis"


def test_the_background_is_shown_in_a_fixed_soft_tissue_window(tmp_path):
    # window level 40, width 400 (as the module computes it: (HU + 160) / 400): 0 HU is 40 % grey
    ct = np.full(SHAPE, 0.0, np.float32)
    ct[:15] = -160.0  # the patient's right half at the window's bottom (black)
    img = _render(tmp_path, ct, {"hepatic_veins": _blobs()["hepatic_veins"]}, RAS)
    h, w, _ = img.shape
    grey = np.all(np.abs(img - 0.4 * 255) < 8, axis=-1)[: int(0.9 * h), : w // 2]
    assert grey.sum() > 1000  # autoscaled, 0 HU was drawn at 255 (white)
