"""The QC report: what went in, what was chosen, what came out, and what to be wary of."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from livervessels import __version__

QC_FILE = "qc.json"


def structure_summary(masks: dict[str, np.ndarray], spacing: tuple[float, float, float]) -> dict:
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {}
    for name, m in masks.items():
        n = int(np.count_nonzero(m))
        out[name] = {"voxels": n, "volume_ml": round(n * voxel_ml, 3), "empty": n == 0}
    return out


def software_versions() -> dict:
    import highdicom
    import nibabel
    import pydicom
    import torch

    versions = {"livervessels": __version__, "python": platform.python_version(), "numpy": np.__version__,
                "torch": torch.__version__, "pydicom": pydicom.__version__, "highdicom": highdicom.__version__,
                "nibabel": nibabel.__version__}
    try:
        from importlib.metadata import version

        versions["nnunetv2"] = version("nnunetv2")
    except Exception:
        pass
    return versions


def write_json(data: dict, path: str | Path) -> Path:
    Path(path).write_text(json.dumps(data, indent=2, default=_jsonable))
    return Path(path)


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
