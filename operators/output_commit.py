"""Last node: once every writer is done, move the staged outputs into the output folder."""
from __future__ import annotations

from monai.deploy.core import Operator, OperatorSpec

from livervessels.outputs import staging


class OutputCommitOperator(Operator):
    """Inputs report (QC writer) and files (NIfTI writer); publishes the staging folder."""

    def setup(self, spec: OperatorSpec):
        spec.input("report")
        spec.input("files")

    def compute(self, op_input, op_output, context):
        op_input.receive("report")
        op_input.receive("files")
        staging.commit(self.fragment.staging_dir, self.fragment.output_dir)
        self.fragment.committed = True
