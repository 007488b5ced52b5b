"""Portal vein / hepatic vein split node."""
from __future__ import annotations

from dataclasses import replace

from monai.deploy.core import Operator, OperatorSpec

from livervessels.pipeline import add_portal_hepatic_split
from livervessels.stage_types import LiverVesselResult
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly


class PortalHepaticSplitOperator(Operator):
    """Inputs image, result (a LiverVesselResult with enhanced_liver_vessels); output result: the
    same with the portal / hepatic masks and the split QC added."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.output("result")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        result: LiverVesselResult = op_input.receive("result")
        masks, split_qc = add_portal_hepatic_split(volume, result.masks,
                                                   contrast_phase=result.contrast_phase.get("phase"))
        op_output.emit(replace(result, masks=masks, split_qc=split_qc), "result")
