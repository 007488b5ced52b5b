"""Writes statistics.json, the preview PNG and the STL meshes (one node: all read the same masks)."""
from __future__ import annotations

from monai.deploy.core import OperatorSpec

from livervessels.outputs.study_outputs import write_study_artifacts
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly
from operators.staged_writer import StagedWriterOperator


class StudyArtifactsWriterOperator(StagedWriterOperator):
    """Inputs image, result; output files: the paths written."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.output("files")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        result = op_input.receive("result")
        op_output.emit(write_study_artifacts(self.output_folder, volume, result), "files")
