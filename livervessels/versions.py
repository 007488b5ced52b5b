"""Software versions recorded in every report: one list, snake_case keys (qc.json, metadata)."""
from __future__ import annotations

import importlib.metadata
import platform

from livervessels import __version__

# distributions whose versions decide a result: inference, resampling, repair, split, DICOM writing
_DISTRIBUTIONS = ("numpy", "scipy", "scikit-image", "torch", "nnunetv2", "connected-components-3d", "pydicom",
                  "highdicom", "nibabel")


def software_versions() -> dict[str, str | None]:
    """{"livervessels", "python", and each distribution as snake_case: version or None if absent}."""
    out: dict[str, str | None] = {"livervessels": __version__, "python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist.replace("-", "_")] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist.replace("-", "_")] = None
    return out
