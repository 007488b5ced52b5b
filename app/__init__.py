"""MONAI Deploy application: DICOM CT study in; DICOM SEG, NIfTI masks and QC JSON out."""
