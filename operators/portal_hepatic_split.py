"""Portal vein / hepatic vein split node."""
from __future__ import annotations

from monai.deploy.core import Operator, OperatorSpec

from livervessels.pipeline import LiverVesselResult, add_portal_hepatic_split
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly


class PortalHepaticSplitOperator(Operator):
    """Inputs image, masks (with enhanced_liver_vessels); output result: a LiverVesselResult."""

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("masks")
        spec.output("result")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        bundle = op_input.receive("masks")
        masks, split_qc = add_portal_hepatic_split(volume, bundle["masks"])
        op_output.emit(LiverVesselResult(masks, bundle["enhancement"], split_qc, bundle["plan"], bundle["timings"],
                                         bundle["sources"]), "result")
