"""Application graph nodes. Each is a thin shell: receive, call a livervessels function, emit.

They import holoscan (through the MONAI Deploy App SDK); the algorithms they call do not.
"""
from operators.couinaud_segments import CouinaudSegmentsOperator
from operators.ct_series_selector import CTSeriesSelectorOperator
from operators.ct_series_to_volume import CTSeriesToVolumeOperator
from operators.dicom_report_writer import DicomReportWriterOperator
from operators.dicom_seg_writer import DicomSegWriterOperator
from operators.nifti_writer import NiftiWriterOperator
from operators.nnunet_segmentation import NnUNetSegmentationOperator
from operators.output_commit import OutputCommitOperator
from operators.portal_hepatic_split import PortalHepaticSplitOperator
from operators.qc_report_writer import QcReportWriterOperator
from operators.study_artifacts_writer import StudyArtifactsWriterOperator
from operators.study_loader import StudyLoaderOperator
from operators.vessel_enhancement import VesselEnhancementOperator

__all__ = [
    "StudyLoaderOperator",
    "CTSeriesSelectorOperator",
    "CTSeriesToVolumeOperator",
    "NnUNetSegmentationOperator",
    "VesselEnhancementOperator",
    "PortalHepaticSplitOperator",
    "CouinaudSegmentsOperator",
    "DicomSegWriterOperator",
    "DicomReportWriterOperator",
    "NiftiWriterOperator",
    "QcReportWriterOperator",
    "StudyArtifactsWriterOperator",
    "OutputCommitOperator",
]
