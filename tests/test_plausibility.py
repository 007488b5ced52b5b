"""Implausible CT input is refused (or repaired and warned) before any inference, on every entry point."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from livervessels import cli
from livervessels.errors import InputError
from livervessels.geometry import Volume
from livervessels.plausibility import WARNINGS_KEY, check_ct_volume

from conftest import MODELS


def _volume(phantom, array=None, affine=None) -> Volume:
    return Volume(phantom.ct if array is None else array, phantom.affine if affine is None else affine)


def test_a_real_ct_passes_unchanged(small_phantom):
    checked = check_ct_volume(_volume(small_phantom, affine=np.diag([0.8, 0.8, 1.5, 1.0])), "ct")
    assert checked.array is small_phantom.ct and checked.meta[WARNINGS_KEY] == []


@pytest.mark.parametrize("change,message", [
    (lambda ct: ct.astype(np.int32) + 1024, "rescale to HU is missing or wrong"),  # stored values, no rescale
    (lambda ct: np.full(ct.shape, -1000, np.int16) + (np.arange(ct.size) % 7).reshape(ct.shape).astype(np.int16),
     "no body in the image"),
    (lambda ct: np.zeros(ct.shape, np.int16), "every voxel is 0"),
    (lambda ct: np.full(ct.shape, np.nan, np.float32), "NaN or infinite"),
    (lambda ct: np.where(np.arange(ct.size).reshape(ct.shape) % 10 == 0, np.inf, ct).astype(np.float32),
     "10.0% of the voxels are NaN or infinite"),
])
def test_implausible_intensities_are_refused(small_phantom, change, message):
    with pytest.raises(InputError, match="ct.nii.gz: ") as err:
        check_ct_volume(_volume(small_phantom, change(small_phantom.ct)), "ct.nii.gz")
    assert message in str(err.value)


def test_a_few_nan_voxels_become_air_with_a_warning(small_phantom):
    ct = small_phantom.ct.astype(np.float32)
    ct.flat[:: 500] = np.nan  # 0.2 %
    checked = check_ct_volume(_volume(small_phantom, ct), "ct")
    assert np.isfinite(checked.array).all()
    assert np.all(checked.array.flat[:: 500] == -1024)
    assert any("NaN/infinite voxel(s) (0.20%) set to -1024 HU" in w for w in checked.meta[WARNINGS_KEY])


@pytest.mark.parametrize("scale,message", [
    ((0.0, 1.0, 1.0), "geometry is singular"),
    ((0.01, 1.0, 1.0), "not a real CT voxel size"),
    ((30.0, 30.0, 30.0), "too coarse to segment"),
    ((10.0, 10.0, 1.0), "too coarse to segment"),  # a 10 mm PixelSpacing
    ((0.8, 0.8, 15.0), "too coarse to segment"),
])
def test_unusable_voxel_sizes_are_refused(small_phantom, scale, message):
    affine = np.diag([*scale, 1.0])
    with pytest.raises(InputError, match=message):
        check_ct_volume(_volume(small_phantom, affine=affine), "ct")


@pytest.mark.parametrize("slice_mm", [6.0, 10.0])  # old 10 mm protocols still run
def test_thick_slices_are_warned(small_phantom, slice_mm):
    checked = check_ct_volume(_volume(small_phantom, affine=np.diag([0.8, 0.8, slice_mm, 1.0])), "ct")
    assert f"coarse voxels (0.8 x 0.8 x {slice_mm:g} mm)" in checked.meta[WARNINGS_KEY][0]


def test_dicom_series_without_rescale_is_refused_before_inference(tmp_path, small_phantom, write_series, capsys,
                                                                  monkeypatch):
    folder = write_series(small_phantom.ct.astype(np.int32) + 1024, small_phantom.affine)  # stored = HU + 1024

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran on an image that is not in HU")

    monkeypatch.setattr("livervessels.api.segment", no_inference)
    rc = cli.totalsegmentator_main(["-i", str(folder), "-o", str(tmp_path / "out"), "-ta", "demo_liver", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("error:") == 1 and "RescaleSlope / RescaleIntercept" in err
    assert "series " in err and not (tmp_path / "out").exists()


def test_nifti_with_a_few_nan_voxels_is_segmented(tmp_path, small_phantom):
    """It used to give every mask empty: NaN spread through the network's normalisation."""
    ct = small_phantom.ct.astype(np.float32)
    ct.flat[:: 500] = np.nan
    nib.save(nib.Nifti1Image(ct, small_phantom.affine), tmp_path / "ct.nii.gz")
    rc = cli.totalsegmentator_main(["-i", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "out"),
                                    "-ta", "demo_liver", "-m", str(MODELS), "-q"])
    assert rc == 0
    liver = np.asanyarray(nib.load(tmp_path / "out" / "liver.nii.gz").dataobj)
    assert liver.sum() > 0.5 * (small_phantom.labels == 1).sum()
