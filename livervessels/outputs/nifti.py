"""NIfTI outputs: one uint8 mask per structure, in the input grid, written in parallel."""
from __future__ import annotations

import json
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


def write_masks(masks: dict[str, np.ndarray], affine: np.ndarray, out_dir: str | Path,
                threads: int = 4) -> list[Path]:
    """<out_dir>/<name>.nii.gz for every mask; zlib releases the GIL, so threads overlap."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, threads)) as pool:
        jobs = [pool.submit(write_mask, m, affine, out_dir / f"{name}.nii.gz") for name, m in masks.items()]
        return [j.result() for j in jobs]


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
