"""Load DICOM studies from a folder.

Replaces the SDK loader's file parsing: DICOMDataLoaderOperator drops every instance whose
Study/Series UID is empty (it raises "No study loaded" on the shared real CT), decodes all pixel
data up front, and does not report ignored files. We scan headers with livervessels.dicom.scan
(UID repair, pixel data read only for the selected series) and emit the SDK's own DICOMStudy
objects, so SDK operators downstream still work.
"""
from __future__ import annotations

from pathlib import Path

from monai.deploy.core.domain.dicom_series import DICOMSeries
from monai.deploy.core.domain.dicom_study import DICOMStudy
from monai.deploy.operators import DICOMDataLoaderOperator
from pydicom.dataset import Dataset

from livervessels import interrupts
from livervessels.dicom.scan import scan_dicom_folder
from operators.refusal import refuses_cleanly

_SERIES_LEVEL = ("SeriesDate", "SeriesTime", "Modality", "SeriesDescription", "BodyPartExamined", "PatientPosition",
                 "SeriesNumber", "Laterality", "PixelSpacing", "ImagerPixelSpacing", "ImageOrientationPatient")
SCAN_KEY = "livervessels_scan"
SERIES_KEY = "livervessels_series"


class StudyLoaderOperator(DICOMDataLoaderOperator):
    """Output dicom_study_list: list of DICOMStudy; each study's metadata()[SCAN_KEY] holds the scan."""

    compute = refuses_cleanly(DICOMDataLoaderOperator.compute)

    def load_data_to_studies(self, input_path: Path) -> list[DICOMStudy]:
        # Holoscan installs its own SIGINT/SIGTERM handling when the graph starts (it force-exits
        # 3 s later, exit 1, before any clean-up). The first node restores the default: the signal
        # ends the process at once (130 / 143) and the app's guardian process cleans up.
        interrupts.default_signal_disposition()
        scan = scan_dicom_folder(input_path)
        studies: dict[str, DICOMStudy] = {}
        for series in scan.series:
            study = studies.get(series.study_uid)
            if study is None:
                study = DICOMStudy(series.study_uid)
                self.populate_study_attributes(study, series.first)
                study.metadata()[SCAN_KEY] = scan
                studies[series.study_uid] = study
            sdk_series = DICOMSeries(series.series_uid)
            self.populate_series_attributes(sdk_series, series.first)
            sdk_series.metadata()[SERIES_KEY] = series
            for ds in series.datasets:
                sdk_series.add_sop_instance(ds)
            study.add_series(sdk_series)
        return list(studies.values())

    def populate_series_attributes(self, series, sop_instance):
        # The SDK casts SeriesNumber with int() and fails on an empty one (the shared real CT has
        # one); hand it only the series-level attributes that carry a value.
        present = Dataset()
        for keyword in _SERIES_LEVEL:
            value = sop_instance.get(keyword)
            if value not in (None, ""):
                setattr(present, keyword, value)
        super().populate_series_attributes(series, present)
