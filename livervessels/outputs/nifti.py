"""NIfTI outputs: one uint8 mask per structure, in the input grid, written in parallel."""
from __future__ import annotations

import json
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np

from livervessels.geometry import nifti_image


def write_mask(array: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    img = nifti_image(np.asarray(array, np.uint8), affine)
    img.header.set_data_dtype(np.uint8)
    nib.save(img, path)
    return Path(path)


def write_masks(masks: Mapping[str, np.ndarray], affine: np.ndarray, out_dir: str | Path,
                threads: int = 4) -> list[Path]:
    """<out_dir>/<name>.nii.gz for every mask; zlib releases the GIL, so threads overlap. Each
    worker fetches its own mask, so a lazy mapping (LabelMasks) keeps only `threads` in memory."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        jobs = [pool.submit(lambda n: write_mask(masks[n], affine, out_dir / f"{n}.nii.gz"), name) for name in masks]
        return [j.result() for j in jobs]


class LabelMasks(Mapping):
    """{class name: uint8 mask} computed from a label map on access: 117 full-size masks of a
    512x512x300 CT would take 9 GB at once."""

    def __init__(self, labels: np.ndarray, classes: dict[int, str]):
        self.labels = labels
        self.ids = {name: label for label, name in classes.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        return (self.labels == self.ids[name]).astype(np.uint8)

    def __iter__(self):
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def label_table_xml(classes: dict[int, str]) -> str:
    """Label names as a CIFTI/Caret-style LabelTable (read by viewers that understand it)."""
    from xml.sax.saxutils import escape

    rng = np.random.default_rng(0)
    rows = []
    for key, name in sorted(classes.items()):
        r, g, b = rng.uniform(0.2, 1.0, 3)
        rows.append(f'<Label Key="{key}" Red="{r:.3f}" Green="{g:.3f}" Blue="{b:.3f}" Alpha="1">{escape(name)}</Label>')
    return ("<?xml version='1.0' encoding='UTF-8'?>\n<CaretExtension>\n<VolumeInformation Index=\"0\">\n"
            "<LabelTable>\n" + "\n".join(rows) + "\n</LabelTable>\n</VolumeInformation>\n</CaretExtension>\n")


def write_multilabel(labels: np.ndarray, affine: np.ndarray, classes: dict[int, str], path: str | Path) -> Path:
    """One label map: names in a NIfTI header extension and in a sidecar <name>.json."""
    path = Path(path)
    dtype = np.uint8 if max(classes, default=0) < 256 else np.uint16
    img = nifti_image(np.asarray(labels, dtype), affine)
    img.header.set_data_dtype(dtype)
    img.header.extensions.append(nib.nifti1.Nifti1Extension(0, label_table_xml(classes).encode()))
    nib.save(img, path)
    sidecar = path.with_name(path.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    sidecar.write_text(json.dumps({str(k): v for k, v in sorted(classes.items())}, indent=1))
    return path


def read_label_names(path: str | Path) -> dict[int, str]:
    """The label names stored by write_multilabel in the header extension."""
    import re

    img = nib.load(str(path))
    for ext in img.header.extensions:
        text = ext.get_content().decode(errors="replace") if isinstance(ext.get_content(), bytes) else ""
        found = re.findall(r'<Label Key="(\d+)"[^>]*>([^<]*)</Label>', text)
        if found:
            from xml.sax.saxutils import unescape

            return {int(k): unescape(v) for k, v in found}
    return {}
