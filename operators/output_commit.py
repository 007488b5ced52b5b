"""Last node: once every writer is done, move the staged outputs into the output folder."""
from __future__ import annotations

from pathlib import Path

from monai.deploy.core import Fragment, Operator, OperatorSpec

from livervessels.outputs import staging
from operators.refusal import refuses_cleanly


class OutputCommitOperator(Operator):
    """Inputs report (QC writer), files (NIfTI writer), artifacts (statistics, preview, meshes);
    publishes the staging folder once all three arrived: staging_folder's files move into
    output_folder."""

    def __init__(self, fragment: Fragment, *args, staging_folder: Path, output_folder: Path, **kwargs):
        self.staging_folder = Path(staging_folder)
        self.output_folder = Path(output_folder)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("report")
        spec.input("files")
        spec.input("artifacts")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        for port in ("report", "files", "artifacts"):
            op_input.receive(port)
        staging.commit(self.staging_folder, self.output_folder)
        self.fragment.committed = True
