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


COUINAUD_PREVIEW_FILE = "preview_couinaud_segments.png"


def render_couinaud_preview(volume: Volume, segments: np.ndarray, vessels: dict[str, np.ndarray], path: str | Path,
                            hilum_z_mm: float | None = None) -> Path:
    """Axial slices through the liver (a quarter, the bifurcation's height or the middle, three
    quarters up) with the Couinaud segments over the CT and the portal and hepatic veins on top;
    each segment's number at its centre in the slice. vessels: name -> mask (portal_vein_branches,
    hepatic_veins)."""
    from livervessels.outputs.structures import COUINAUD_STRUCTURES

    ct, affine, _ = to_canonical(np.asarray(volume.array, np.float32), volume.affine)
    seg = to_canonical(np.asarray(segments, np.uint8), volume.affine)[0]
    canon = {k: to_canonical(np.asarray(v, bool), volume.affine)[0] for k, v in vessels.items() if np.any(v)}
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    zs = np.flatnonzero(seg.any(axis=(0, 1)))
    if not len(zs):
        raise ValueError("no Couinaud segment to draw")
    # above the bifurcation (VII, VIII, IV, II, III), just above it, and below it (V, VI)
    middle = zs[len(zs) // 2]
    if hilum_z_mm is not None:
        middle = int(np.clip(np.round((hilum_z_mm - affine[2, 3]) / affine[2, 2]), zs[0], zs[-1]))
    top = (middle + zs[-1]) // 2
    below = (zs[0] + middle) // 2
    slices = [top, min(middle + max(1, int(round(5.0 / spacing[2]))), top), below]
    colours = np.array([(0, 0, 0)] + [s.rgb for s in COUINAUD_STRUCTURES], float) / 255
    roman = [s.label.split()[-1] for s in COUINAUD_STRUCTURES]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.6), facecolor="black")
    aspect = spacing[1] / spacing[0]
    for ax, k in zip(axes, slices):
        ax.imshow(_view(np.clip((ct[:, :, k] + 160) / 400, 0, 1)), cmap="gray", vmin=0.0, vmax=1.0, aspect=aspect)
        s = seg[:, :, k]
        rgba = np.zeros(s.shape + (4,))
        rgba[..., :3] = colours[s]
        rgba[..., 3] = np.where(s > 0, 0.45, 0.0)
        for name, colour in (("portal_vein_branches", (0.67, 0.24, 0.78)), ("hepatic_veins", (0.12, 0.56, 1.0))):
            if name in canon:
                m = canon[name][:, :, k]
                rgba[m] = (*colour, 1.0)
        ax.imshow(np.flipud(rgba.transpose(1, 0, 2))[:, ::-1], aspect=aspect, interpolation="nearest")  # as _view
        view = _view(s)
        for label in np.unique(view[view > 0]):
            r, c = np.argwhere(view == label).mean(axis=0)
            ax.text(c, r, roman[label - 1], color="white", fontsize=13, ha="center", va="center", weight="bold")
        ax.set_title(f"axial, {affine[2, 2] * k + affine[2, 3]:.0f} mm", color="white", fontsize=10)
        ax.axis("off")
    handles = [Patch(color=colours[i + 1], label=s.label) for i, s in enumerate(COUINAUD_STRUCTURES)]
    handles += [Patch(color=(0.67, 0.24, 0.78), label="Portal vein branches"),
                Patch(color=(0.12, 0.56, 1.0), label="Hepatic veins")]
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False, labelcolor="white")
    fig.suptitle("Couinaud segments from the hepatic veins and the portal bifurcation (patient right on the left)"
                 "\nresearch use only, not for diagnosis", color="white", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.92))
    path = Path(path)
    fig.savefig(path, dpi=100, facecolor="black")
    plt.close(fig)
    return path
