"""The application graph.

StudyLoader -> CTSeriesSelector -> CTSeriesToVolume -> NnUNetSegmentation -> VesselEnhancement
-> PortalHepaticSplit -> CouinaudSegments (LIVERVESSELS_COUINAUD=1; else it passes the result on)
-> {DicomSegWriter, NiftiWriter, StudyArtifactsWriter}; DicomSegWriter and
StudyArtifactsWriter -> DicomReportWriter (SR, SC) -> QcReportWriter -> OutputCommit

Writers write into a staging folder beside the outputs; OutputCommit moves everything into the
output folder at the end, so a failed run leaves nothing half-written.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import AppContext, Application

from livervessels import __version__
from livervessels.compute import resolve
from livervessels.errors import InputError
from livervessels.outputs import staging
from operators import (
    CouinaudSegmentsOperator,
    CTSeriesSelectorOperator,
    CTSeriesToVolumeOperator,
    DicomReportWriterOperator,
    DicomSegWriterOperator,
    NiftiWriterOperator,
    NnUNetSegmentationOperator,
    OutputCommitOperator,
    PortalHepaticSplitOperator,
    QcReportWriterOperator,
    StudyArtifactsWriterOperator,
    StudyLoaderOperator,
    VesselEnhancementOperator,
)
from operators.couinaud_segments import couinaud_requested

log = logging.getLogger(__name__)


class LiverVesselsApp(Application):
    """Liver vessel analysis of a CT study. Research use only; not a medical device."""

    name = "livervessels"
    description = "Liver, liver vessels, portal vein branches, hepatic veins, IVC and portal trunk from CT"
    version = __version__

    def __init__(self, *args, **kwargs):
        self.staging_dir: Path | None = None
        self.output_lock: staging.OutputLock | None = None
        self.output_dir: Path | None = None
        self.committed = False
        self.failure: BaseException | None = None  # an operator's InputError (operators.refusal)
        self.stage_timings: dict[str, float] = {}  # node name -> seconds (operators/refusal.py)
        self.run_started = time.perf_counter()
        super().__init__(*args, **kwargs)

    def compose(self):
        context: AppContext = Application.init_app_context(self.argv)
        input_dir = Path(context.input_path)
        self.output_dir = Path(context.output_path)
        model_dir = Path(context.model_path) if context.model_path else None
        if not input_dir.is_dir():  # the SDK loader would only say "No valid input path from input port"
            raise InputError(f"input {input_dir} is not a folder; pass the folder that holds the DICOM study"
                             if input_dir.exists() else f"input folder {input_dir} does not exist")
        # LIVERVESSELS_DEVICE / LIVERVESSELS_PRECISION, resolved once for every computing node
        compute = resolve()
        staging.check_output_folder(self.output_dir)
        self.output_lock = staging.OutputLock(self.output_dir).__enter__()  # released by app.run.main
        self.staging_dir = staging.begin(self.output_dir)
        log.info("input %s, output %s, models %s, compute %s", input_dir, self.output_dir, model_dir,
                 compute.describe())

        loader = StudyLoaderOperator(self, CountCondition(self, 1), input_folder=input_dir, name="study_loader")
        selector = CTSeriesSelectorOperator(self, name="ct_series_selector")
        to_volume = CTSeriesToVolumeOperator(self, name="ct_series_to_volume")
        inference = NnUNetSegmentationOperator(
            self, model_dirs=[model_dir] if model_dir else None, device=compute, name="nnunet_segmentation")
        enhance = VesselEnhancementOperator(self, device=compute.device, name="vessel_enhancement")
        split = PortalHepaticSplitOperator(self, name="portal_hepatic_split")
        couinaud = CouinaudSegmentsOperator(self, enabled=couinaud_requested(), device=compute,
                                            model_dirs=[model_dir] if model_dir else None, name="couinaud_segments")
        staged = self.staging_dir  # every writer writes here; output_commit publishes it at the end
        seg_writer = DicomSegWriterOperator(self, output_folder=staged, name="dicom_seg_writer")
        nifti_writer = NiftiWriterOperator(self, output_folder=staged, name="nifti_writer")
        qc_writer = QcReportWriterOperator(self, output_folder=staged, name="qc_report_writer")
        artifacts_writer = StudyArtifactsWriterOperator(self, output_folder=staged, name="study_artifacts_writer")
        report_writer = DicomReportWriterOperator(self, output_folder=staged, name="dicom_report_writer")
        commit = OutputCommitOperator(self, staging_folder=staged, output_folder=self.output_dir, name="output_commit")

        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, to_volume, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(to_volume, inference, {("image", "image")})
        self.add_flow(to_volume, enhance, {("image", "image")})
        self.add_flow(inference, enhance, {("result", "result")})
        self.add_flow(to_volume, split, {("image", "image")})
        self.add_flow(enhance, split, {("result", "result")})
        self.add_flow(to_volume, couinaud, {("image", "image")})
        self.add_flow(split, couinaud, {("result", "result")})
        for writer in (seg_writer, nifti_writer, qc_writer, artifacts_writer, report_writer):
            self.add_flow(to_volume, writer, {("image", "image")})
            self.add_flow(couinaud, writer, {("result", "result")})
        self.add_flow(seg_writer, qc_writer, {("seg", "seg")})
        self.add_flow(seg_writer, report_writer, {("seg", "seg")})
        self.add_flow(artifacts_writer, report_writer, {("files", "artifacts")})
        self.add_flow(report_writer, qc_writer, {("reports", "reports")})
        self.add_flow(qc_writer, commit, {("report", "report")})
        self.add_flow(nifti_writer, commit, {("files", "files")})
        self.add_flow(artifacts_writer, commit, {("files", "artifacts")})
