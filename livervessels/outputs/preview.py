"""preview PNG: coronal and axial projections of the vessels over the CT, for a glance check.

Radiological convention: patient's right on the image's left, anterior and superior at the top.
Rendered with matplotlib's Agg backend: no display server needed.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from skimage import measure  # noqa: E402

from livervessels.geometry import Volume, to_canonical  # noqa: E402
from livervessels.outputs.structures import SEG_BY_NAME, structures_for  # noqa: E402

# Drawn in this order, later on top: the split labels over the unsplit vessel mask.
VESSEL_LAYERS = ("liver_vessels", "enhanced_liver_vessels", "inferior_vena_cava", "portal_vein_and_splenic_vein",
                 "hepatic_veins", "portal_vein_branches")


def _view(projection: np.ndarray) -> np.ndarray:
    """Orient a projection of a canonical (RAS) array for display: rows from superior (coronal) or
    anterior (axial) down, columns from the patient's right to left."""
    return np.flipud(projection.T)[:, ::-1]


def _project(array: np.ndarray, axis: int, how: str) -> np.ndarray:
    return (array.max(axis=axis) if how == "max" else array.mean(axis=axis))


def render_preview(volume: Volume, masks: dict[str, np.ndarray], path: str | Path, title: str = "",
                   split_qc: dict | None = None) -> Path:
    ct, affine, _ = to_canonical(np.asarray(volume.array, np.float32), volume.affine)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    canon = {k: to_canonical(np.asarray(v, bool), volume.affine)[0] for k, v in masks.items() if np.any(v)}
    liver = canon.get("liver")
    layers = [n for n in VESSEL_LAYERS if n in canon] or [n for n in canon if n != "liver"]
    if set(layers) & {"portal_vein_branches", "hepatic_veins"}:
        layers = [n for n in layers if n != "liver_vessels"]
    colours = {s.name: np.array(s.rgb) / 255 for s in structures_for(list(canon))}

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.6), facecolor="black")
    for ax, axis, name in ((axes[0], 1, "coronal"), (axes[1], 2, "axial")):
        # background: mean CT over the liver's extent (or the whole volume), soft-tissue window
        if liver is not None:
            extent = np.nonzero(liver.any(axis=tuple(a for a in range(3) if a != axis)))[0]
            sl = [slice(None)] * 3
            sl[axis] = slice(extent.min(), extent.max() + 1)
            background = _project(ct[tuple(sl)], axis, "mean")
        else:
            background = _project(ct, axis, "mean")
        dims = [d for d in range(3) if d != axis]
        aspect = spacing[dims[1]] / spacing[dims[0]]
        # a fixed soft-tissue window (level 40, width 400 HU): vmin/vmax stop matplotlib stretching it
        ax.imshow(_view(np.clip((background + 160) / 400, 0, 1)), cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect,
                  interpolation="bilinear")
        rgba = np.zeros(_view(background).shape + (4,))
        for layer in layers:
            proj = _view(_project(canon[layer], axis, "max"))
            rgba[proj] = (*colours[layer], 0.85)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest")
        if liver is not None:
            for contour in measure.find_contours(_view(_project(liver, axis, "max")).astype(float), 0.5):
                ax.plot(contour[:, 1], contour[:, 0], color=colours.get("liver", (1, 0.6, 0.4)), lw=1.2)
        ax.set_title(f"{name} projection (patient right on the left)", color="white", fontsize=10)
        ax.axis("off")
    handles = [Patch(color=colours[n], label=(SEG_BY_NAME[n].label if n in SEG_BY_NAME else n)) for n in layers]
    if liver is not None:
        handles.append(Patch(facecolor="none", edgecolor=colours.get("liver", (1, 0.6, 0.4)), label="Liver outline"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, labelcolor="white")
    headline = title
    if split_qc and "portal_fraction" in split_qc:
        headline += (f" | portal {split_qc['portal_fraction']:.0%}, hepatic {split_qc['hepatic_fraction']:.0%}")
        if "confidence" in split_qc:
            conf = split_qc["confidence"]
            conf = conf.get("overall", conf) if isinstance(conf, dict) else conf
            if isinstance(conf, (int, float)):
                headline += f", confidence {conf:.2f}"
        if split_qc.get("flags"):
            headline += f" | flags: {', '.join(split_qc['flags'])}"
    fig.suptitle(headline + "\nresearch use only, not for diagnosis", color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.93))
    path = Path(path)
    fig.savefig(path, dpi=110, facecolor="black")
    plt.close(fig)
    return path
