"""Select the CT series to segment.

Wraps the SDK selector: its JSON rules match attributes but cannot rank matches (thinnest slices,
then most instances) or say why each series was rejected, which the QC report needs. The rules
live in livervessels.dicom.selection so the CLI applies the same ones.
"""
from __future__ import annotations

from monai.deploy.core.domain.dicom_series_selection import SelectedSeries, StudySelectedSeries
from monai.deploy.operators import DICOMSeriesSelectorOperator

from livervessels.dicom.selection import select_ct_series
from operators.refusal import refuses_cleanly
from operators.study_loader import SCAN_KEY, SERIES_KEY

SELECTION_KEY = "livervessels_selection"


class CTSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """Input dicom_study_list; output study_selected_series_list holding the one chosen CT series."""

    compute = refuses_cleanly(DICOMSeriesSelectorOperator.compute)

    def __init__(self, fragment, *args, **kwargs):
        super().__init__(fragment, *args, all_matched=True, **kwargs)

    def filter(self, selection_rules, dicom_study_list, all_matched=False, sort_by_sop_instance_count=False):
        scan = dicom_study_list[0].metadata()[SCAN_KEY]
        selection = select_ct_series(scan)
        for study in dicom_study_list:
            for sdk_series in study.get_all_series():
                if sdk_series.metadata().get(SERIES_KEY) is selection.selected:
                    chosen = StudySelectedSeries(study, metadata={SELECTION_KEY: selection, SCAN_KEY: scan})
                    chosen.add_selected_series(SelectedSeries("CT", sdk_series))
                    return [chosen]
        raise RuntimeError("selected series missing from the study list")  # cannot happen: same scan
