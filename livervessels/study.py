"""Study loading: a DICOM folder to its selected, decoded CT series (or a NIfTI file's input report)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from livervessels.dicom.scan import scan_dicom_folder
from livervessels.dicom.selection import select_ct_series
from livervessels.dicom.volume import build_volume
from livervessels.geometry import Volume
from livervessels.plausibility import WARNINGS_KEY
from livervessels.stage_types import CtStudy


def load_ct_study(folder: str | Path) -> CtStudy:
    """Scan a DICOM folder, select the CT series, build its volume.

    Raises:
        InputError: no readable DICOM, no usable CT series, or a series that cannot form a volume.
    """
    scan = scan_dicom_folder(folder)
    selection = select_ct_series(scan)
    return CtStudy(scan, selection, build_volume(selection.selected, scan.unreadable_files))


def nifti_input_report(path: str | Path, volume: Volume) -> dict:
    """The input section of qc.json for a NIfTI file: its grid and the plausibility warnings."""
    return {"file": str(path), "shape": list(volume.shape), "spacing_mm": [round(s, 4) for s in volume.spacing],
            "affine_ras": np.round(volume.affine, 5).tolist(),
            WARNINGS_KEY: list(volume.meta.get(WARNINGS_KEY, []))}
