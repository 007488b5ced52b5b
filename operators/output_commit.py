"""Last node: once every writer is done, move the staged outputs into the output folder."""
from __future__ import annotations

from monai.deploy.core import Operator, OperatorSpec

from livervessels.outputs import staging
from operators.refusal import refuses_cleanly


class OutputCommitOperator(Operator):
    """Inputs report (QC writer), files (NIfTI writer), artifacts (statistics, preview, meshes);
    publishes the staging folder once all three arrived."""

    def setup(self, spec: OperatorSpec):
        spec.input("report")
        spec.input("files")
        spec.input("artifacts")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        for port in ("report", "files", "artifacts"):
            op_input.receive(port)
        staging.commit(self.fragment.staging_dir, self.fragment.output_dir)
        self.fragment.committed = True
