"""Base of the writer nodes: they write into the run's staging folder, given at construction (as
the SDK's own writers take their output folder), which output_commit publishes at the end."""
from __future__ import annotations

from pathlib import Path

from monai.deploy.core import Fragment, Operator


class StagedWriterOperator(Operator):
    """output_folder: the staging folder this node writes into (outputs.staging.begin)."""

    def __init__(self, fragment: Fragment, *args, output_folder: Path, **kwargs):
        self.output_folder = Path(output_folder)
        super().__init__(fragment, *args, **kwargs)
