"""QC report writer node: qc.json and enhanced_liver_vessels_metadata.json."""
from __future__ import annotations

import time

from monai.deploy.core import OperatorSpec

from livervessels.outputs.study_outputs import write_reports
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly
from operators.staged_writer import StagedWriterOperator


class QcReportWriterOperator(StagedWriterOperator):
    """Inputs image, result, seg, reports (SR and SC); output report: the QC dict."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.input("seg")
        spec.input("reports")
        spec.output("report")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        study = op_input.receive("image").metadata()[CT_STUDY_KEY]
        result, seg, reports = op_input.receive("result"), op_input.receive("seg"), op_input.receive("reports")
        timings = {"stages": dict(self.fragment.stage_timings),
                   "total": round(time.perf_counter() - self.fragment.run_started, 3)}
        report = write_reports(self.output_folder, study.input_report(), study.volume.spacing,
                               result, seg, reports, timings)
        op_output.emit(report, "report")
