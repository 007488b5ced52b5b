"""The QC report: what went in, what was chosen, what came out, and what to be wary of."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

QC_FILE = "qc.json"
# Version of the layout of qc.json, statistics.json and enhanced_liver_vessels_metadata.json (JSON
# Schemas in docs/schemas/): a reader checks it before trusting a key. Bump the major part when a key
# is removed or changes meaning, the minor part when keys are added.
SCHEMA_VERSION = "1.3"


def provenance(input_report: dict, dicom_uids: dict[str, str | None] | None = None) -> dict:
    """Where a run's results come from and which DICOM objects carry them: the study and the source
    series (DICOM input) or the source file (NIfTI), and the SOP Instance UIDs of the SEG, the SRs and
    the SC written (None when one was not)."""
    series = input_report.get("selected_series") or {}
    out = {"study_instance_uid": series.get("study_instance_uid"),
           "source_series_instance_uid": series.get("series_instance_uid"),
           "source_file": input_report.get("file")}
    for kind in ("seg", "sr", "key_sr", "sc"):
        out[f"{kind}_sop_instance_uid"] = (dicom_uids or {}).get(kind)
    return out


def stamp(data: dict, prov: dict) -> dict:
    """data with schema_version and provenance first."""
    return {"schema_version": SCHEMA_VERSION, "provenance": prov, **data}


def structure_summary(masks: dict[str, np.ndarray], spacing: tuple[float, float, float]) -> dict:
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {}
    for name, m in masks.items():
        n = int(np.count_nonzero(m))
        out[name] = {"voxels": n, "volume_ml": round(n * voxel_ml, 3), "empty": n == 0}
    return out


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
