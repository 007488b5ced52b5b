"""The data the app's graph hands from node to node, in one place.

study loading -> CtStudy -> inference (ModelPlan chosen) -> LiverVesselResult -> repair ->
LiverVesselResult -> split -> LiverVesselResult -> writers (SegResult, DicomReports). The CLI and
the API pass the same objects between the same functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livervessels.dicom.scan import DicomScan
from livervessels.dicom.selection import SeriesSelection
from livervessels.dicom.volume import SeriesVolume
from livervessels.geometry import Volume


@dataclass
class CtStudy:
    """The selected CT series of a DICOM folder, decoded (livervessels.study.load_ct_study)."""

    scan: DicomScan
    selection: SeriesSelection
    series_volume: SeriesVolume

    @property
    def volume(self) -> Volume:
        return self.series_volume.volume

    def input_report(self) -> dict:
        """What was read, ignored, selected and repaired: the input section of qc.json."""
        return {
            "files_ignored": [{"file": f, "reason": r} for f, r in self.scan.ignored_files],
            "series_found": [v.as_dict() for v in self.selection.verdicts],
            "selected_series": {
                **{k: v for k, v in self.volume.meta.items() if k != "sop_instance_uids"},
                "instances": len(self.series_volume.sorted_datasets),
                "shape": list(self.volume.shape),
                "spacing_mm": [round(s, 4) for s in self.volume.spacing],
                "affine_ras": np.round(self.volume.affine, 5).tolist(),
            },
            "uid_repairs": self.scan.repairs.as_dict(),
        }


@dataclass
class ModelPlan:
    """Which tasks provide the support labels and the raw vessel mask (livervessels.model_plan)."""

    name: str  # "official", "demo" or "support files"
    support_task: str
    vessel_task: str
    note: str = ""  # a warning for qc.json (the demo model's limits)

    @property
    def algorithm_name(self) -> str:
        """How the DICOM objects name the algorithm that made them."""
        return f"livervessels {self.name} ({self.support_task}+{self.vessel_task})"


# every mask came from a support folder: no model ran
SUPPORT_FILES_PLAN = ModelPlan("support files", "none", "none")


@dataclass
class LiverVesselResult:
    """What the graph's computing nodes hand on, stage after stage (inference -> repair -> split),
    and what the writers read: each stage fills its own fields."""

    masks: dict[str, np.ndarray]  # every mask so far, on the volume grid
    plan: ModelPlan  # the models that made the masks (SUPPORT_FILES_PLAN: none, all from files)
    enhancement: dict = field(default_factory=dict)  # the repair's metadata (pipeline.add_enhanced_vessels)
    split_qc: dict = field(default_factory=dict)  # the split's QC (pipeline.add_portal_hepatic_split)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    sources: dict = field(default_factory=dict)  # where each input mask came from
    contrast_phase: dict = field(default_factory=dict)  # livervessels.contrast_phase.ContrastPhase.as_qc()
    couinaud: dict = field(default_factory=dict)  # CouinaudResult.as_qc() (pipeline.add_couinaud_segments)


@dataclass
class SegResult:
    """The DICOM SEG written (livervessels.outputs.dicom_seg), or why none was."""

    path: Path | None
    segments: list[str] = field(default_factory=list)  # structure names, in segment-number order
    empty_segments: list[str] = field(default_factory=list)
    skipped_reason: str | None = None
    sop_instance_uid: str | None = None


@dataclass
class DicomObject:
    """One DICOM object written into the study (or why it was not)."""

    path: Path | None
    sop_instance_uid: str | None = None
    series_instance_uid: str | None = None
    skipped_reason: str | None = None


@dataclass
class DicomReports:
    """The SR measurement report, its image-anchored key measurements and the preview secondary capture
    written into the study (livervessels.outputs.study_outputs.write_dicom_reports)."""

    sr: DicomObject
    sc: DicomObject
    key_sr: DicomObject
