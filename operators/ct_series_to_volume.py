"""Build the CT volume of the selected series.

Replaces the SDK converter's geometry: DICOMSeriesToVolumeOperator stacks whatever slices it is
given, so a missing slice in the middle silently shrinks the anatomy. livervessels.dicom.volume
checks completeness and spacing and keeps slice k = source instance k, which the DICOM SEG needs.
"""
from __future__ import annotations

from monai.deploy.core.domain import Image
from monai.deploy.operators import DICOMSeriesToVolumeOperator

from livervessels.dicom.volume import build_volume
from livervessels.stage_types import CtStudy
from operators.ct_series_selector import SELECTION_KEY
from operators.refusal import refuses_cleanly
from operators.study_loader import SCAN_KEY, SERIES_KEY

CT_STUDY_KEY = "ct_study"


class CTSeriesToVolumeOperator(DICOMSeriesToVolumeOperator):
    """Input study_selected_series_list; output image: an SDK Image whose metadata holds the CtStudy."""

    compute = refuses_cleanly(DICOMSeriesToVolumeOperator.compute)

    def convert_to_image(self, study_selected_series_list) -> Image:
        chosen = study_selected_series_list[0]
        series = chosen.selected_series[0].series.metadata()[SERIES_KEY]
        scan = chosen.metadata()[SCAN_KEY]
        study = CtStudy(scan, chosen.metadata()[SELECTION_KEY], build_volume(series, scan.unreadable_files))
        volume = study.volume
        return Image(volume.array, metadata={**volume.meta, "affine": volume.affine, "spacing": volume.spacing,
                                             CT_STUDY_KEY: study})
