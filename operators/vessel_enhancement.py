"""Liver vessel enhancement node."""
from __future__ import annotations

from monai.deploy.core import Fragment, Operator, OperatorSpec

from livervessels.pipeline import add_enhanced_vessels
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly


class VesselEnhancementOperator(Operator):
    """Inputs image, masks; output masks with enhanced_liver_vessels and the enhancement metadata added.

    device: the torch device of the repair's vesselness (the app's resolved compute device).
    """

    def __init__(self, fragment: Fragment, *args, device=None, **kwargs):
        self.device = device
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.input("masks")
        spec.output("masks")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        volume = op_input.receive("image").metadata()[CT_STUDY_KEY].volume
        bundle = op_input.receive("masks")
        masks, enhancement = add_enhanced_vessels(volume, bundle["masks"], device=self.device)
        op_output.emit({**bundle, "masks": masks, "enhancement": enhancement}, "masks")
