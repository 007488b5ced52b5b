"""DICOM SEG writer node (into the run's staging folder)."""
from __future__ import annotations

from monai.deploy.core import OperatorSpec

from livervessels.outputs.study_outputs import write_study_seg
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly
from operators.staged_writer import StagedWriterOperator


class DicomSegWriterOperator(StagedWriterOperator):
    """Inputs image, result; output seg: a SegResult (path, segments written, empty ones left out)."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.output("seg")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        study = op_input.receive("image").metadata()[CT_STUDY_KEY]
        result = op_input.receive("result")
        op_output.emit(write_study_seg(self.output_folder, study, result), "seg")
