"""NIfTI outputs: one uint8 mask per structure, in the input grid, written in parallel."""
from __future__ import annotations

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
