"""Vessel-derived Couinaud segments node (on with LIVERVESSELS_COUINAUD=1)."""
from __future__ import annotations

import os
from dataclasses import replace

from monai.deploy.core import Fragment, Operator, OperatorSpec

from livervessels.errors import InputError
from livervessels.pipeline import add_couinaud_segments
from livervessels.stage_types import LiverVesselResult
from operators.ct_series_to_volume import CT_STUDY_KEY
from operators.refusal import refuses_cleanly

COUINAUD_ENV = "LIVERVESSELS_COUINAUD"


def couinaud_requested(environ=os.environ) -> bool:
    """Whether LIVERVESSELS_COUINAUD asks for the segments (1/true/yes; unset, 0/false/no: not).

    Raises:
        InputError: any other value.
    """
    value = environ.get(COUINAUD_ENV, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise InputError(f"{COUINAUD_ENV}={environ.get(COUINAUD_ENV)!r} is not understood; use 1 to derive Couinaud "
                     "segments from the split's veins or 0 to leave them out")


class CouinaudSegmentsOperator(Operator):
    """Inputs image, result (a LiverVesselResult with the portal/hepatic split); output result: the
    same with the Couinaud label map and its QC added when enabled, else passed on unchanged.

    enabled: the app's LIVERVESSELS_COUINAUD (couinaud_requested); model_dirs, device: where the
    liver_segments model is looked for and runs (the agreement check, when its weights are installed).
    """

    def __init__(self, fragment: Fragment, *args, enabled: bool = False, model_dirs=None, device=None, **kwargs):
        self.enabled = enabled
        self.model_dirs = model_dirs
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
        if not self.enabled:
            op_output.emit(result, "result")
            return
        masks, couinaud = add_couinaud_segments(volume, result.masks, result.split_qc, model_dirs=self.model_dirs,
                                                device=self.device)
        op_output.emit(replace(result, masks=masks, couinaud=couinaud), "result")
