"""NIfTI writer node: one uint8 mask per structure, in the input grid."""
from __future__ import annotations

from monai.deploy.core import OperatorSpec

from livervessels.outputs.nifti import write_masks
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly
from operators.staged_writer import StagedWriterOperator


class NiftiWriterOperator(StagedWriterOperator):
    """Inputs image, result; output files: the paths written."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.output("files")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        result = op_input.receive("result")
        op_output.emit(write_masks(result.masks, volume.affine, self.output_folder), "files")
