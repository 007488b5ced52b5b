"""livervessels/versions.py: the software versions every report records.

The values are compared with what each package says about itself (its __version__ attribute and
the interpreter's own version), not with importlib.metadata, the module's own source; a package
that is not installed must read None rather than break the report.
"""
from __future__ import annotations

import importlib.metadata
import re
import sys

import highdicom
import nibabel
import numpy
import pydicom
import pytest
import scipy
import skimage

import livervessels
from livervessels.versions import software_versions


def test_keys_are_snake_case_and_name_the_packages_that_decide_a_result():
    versions = software_versions()
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", key) for key in versions)
    # the inference, resampling, repair, split and DICOM writing stacks the package imports
    assert {"livervessels", "python", "numpy", "scipy", "scikit_image", "torch", "nnunetv2", "connected_components_3d",
            "pydicom", "highdicom", "nibabel"} <= set(versions)


def test_each_version_is_the_one_the_package_reports_itself():
    versions = software_versions()
    assert versions["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert versions["livervessels"] == livervessels.__version__
    for key, module in [("numpy", numpy), ("scipy", scipy), ("scikit_image", skimage), ("pydicom", pydicom),
                        ("highdicom", highdicom), ("nibabel", nibabel)]:
        assert versions[key] == module.__version__, key
    torch = pytest.importorskip("torch")
    assert versions["torch"] == torch.__version__


def test_a_package_that_is_not_installed_reads_none(monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name == "nnunetv2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    versions = software_versions()
    assert versions["nnunetv2"] is None
    assert versions["numpy"] == numpy.__version__  # the others are still reported
