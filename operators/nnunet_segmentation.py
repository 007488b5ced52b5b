"""nnU-Net inference node: support labels (liver, IVC, portal trunk) and the raw vessel mask."""
from __future__ import annotations

from monai.deploy.core import Fragment, Operator, OperatorSpec

from livervessels.model_plan import choose_model_plan, preload_models
from livervessels.pipeline import collect_masks
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly


class NnUNetSegmentationOperator(Operator):
    """Input image (SDK Image from CTSeriesToVolumeOperator); output result: a LiverVesselResult with
    the support masks and the raw liver_vessels ({name: uint8 array}), the plan and their sources.

    device: a Compute or device request (livervessels.compute). The model plan (official
    TotalSegmentator weights, else the bundled demo model) is decided at construction; the models
    themselves are loaded on first use and cached for the process.
    """

    def __init__(self, fragment: Fragment, *args, model_dirs: list | None = None, device=None, **kwargs):
        self.model_dirs = model_dirs
        self.device = device
        self.plan = choose_model_plan(model_dirs)
        preload_models(self.plan, model_dirs, device)  # loading overlaps reading and decoding the study
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("image")
        spec.output("result")

    @refuses_cleanly
    def compute(self, op_input, op_output, context):
        image = op_input.receive("image")
        volume = image.metadata()[CT_STUDY_KEY].volume
        op_output.emit(collect_masks(volume, plan=self.plan, model_dirs=self.model_dirs, device=self.device),
                       "result")
