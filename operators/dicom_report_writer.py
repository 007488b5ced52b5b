"""DICOM SR measurement report and preview secondary capture writer node (into the staging folder)."""
from __future__ import annotations

from monai.deploy.core import OperatorSpec

from livervessels.outputs.study_outputs import write_dicom_reports
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly
from operators.staged_writer import StagedWriterOperator


class DicomReportWriterOperator(StagedWriterOperator):
    """Inputs image, result, seg (SegResult), artifacts (statistics and preview written); output
    reports: a DicomReports (SR and SC paths and UIDs, or why one was skipped)."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.input("seg")
        spec.input("artifacts")
        spec.output("reports")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        study = op_input.receive("image").metadata()[CT_STUDY_KEY]
        result = op_input.receive("result")
        seg = op_input.receive("seg")
        op_input.receive("artifacts")  # statistics.json and the preview are on disk once this arrives
        op_output.emit(write_dicom_reports(self.output_folder, study, result, seg), "reports")
