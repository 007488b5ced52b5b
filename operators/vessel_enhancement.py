"""Liver vessel enhancement node."""
from __future__ import annotations

from dataclasses import replace

from monai.deploy.core import Fragment, Operator, OperatorSpec

from livervessels.pipeline import add_enhanced_vessels
from livervessels.stage_types import LiverVesselResult
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly


class VesselEnhancementOperator(Operator):
    """Inputs image, result (a LiverVesselResult from inference); output result: the same with
    enhanced_liver_vessels and the enhancement metadata added.

    device: the torch device of the repair's vesselness (the app's resolved compute device).
    """

    def __init__(self, fragment: Fragment, *args, device=None, **kwargs):
        self.device = device
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("result")
        spec.output("result")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        result: LiverVesselResult = op_input.receive("result")
        masks, enhancement = add_enhanced_vessels(volume, result.masks, device=self.device)
        op_output.emit(replace(result, masks=masks, enhancement=enhancement), "result")
