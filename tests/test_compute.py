"""One device and precision policy for every entry point and every computing stage (simulated CUDA)."""
from __future__ import annotations

import dataclasses
import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch

from livervessels import cli, compute, enhancement, nnunet_runner, resample
from livervessels.api import enhance_liver_vessels
from livervessels.errors import InputError
from livervessels.pipeline import run_liver_vessels
from livervessels.stage_types import ModelPlan
from livervessels.tasks import TASKS

from conftest import DEMO_STUDY, MODELS, run_app


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(compute, "_warned", set())


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(compute, "_warned", set())


@pytest.mark.parametrize("request_,expected", [
    (None, "cpu"), ("auto", "cpu"), ("cpu", "cpu"), ("CPU", "cpu"), ("gpu", "cpu"), ("cuda", "cpu"),
])
def test_device_requests_without_a_gpu(no_gpu, request_, expected):
    assert compute.resolve_device(request_) == torch.device(expected)


@pytest.mark.parametrize("request_,expected", [
    (None, "cuda:0"), ("auto", "cuda:0"), ("gpu", "cuda:0"), ("cuda", "cuda:0"), ("gpu:1", "cuda:1"),
    ("cuda:1", "cuda:1"), ("cpu", "cpu"), (torch.device("cuda", 1), "cuda:1"),
])
def test_device_requests_with_simulated_gpus(two_gpus, request_, expected):
    assert compute.resolve_device(request_) == torch.device(expected)


@pytest.mark.parametrize("request_,message", [
    ("tpu", "unknown device 'tpu'"), ("gpu:x", "unknown device"), ("gpu:2", r"only 2 GPU\(s\) present"),
])
def test_bad_device_requests_say_what_to_use(two_gpus, request_, message):
    with pytest.raises(InputError, match=message):
        compute.resolve_device(request_)


def test_a_numbered_gpu_without_any_gpu_is_refused(no_gpu):
    with pytest.raises(InputError, match="none is available"):
        compute.resolve_device("gpu:0")


def test_gpu_without_a_gpu_warns_once(no_gpu, caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            compute.resolve("gpu")
    assert caplog.text.count("no GPU available") == 1


def test_precision_policy(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: True)
    assert compute.resolve_precision(None, cpu) == "bf16"
    assert compute.resolve_precision("fp32", cpu) == "fp32"
    assert compute.resolve_precision("auto", gpu) == "fp16"  # as nnU-Net / TotalSegmentator on a GPU
    assert compute.resolve_precision("bf16", gpu) == "bf16"
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: False)
    assert compute.resolve_precision("auto", cpu) == "fp32"  # emulated bf16 is slower than fp32
    with pytest.raises(InputError, match="fp16 needs a GPU"):
        compute.resolve_precision("fp16", cpu)
    with pytest.raises(InputError, match="unknown precision 'half'"):
        compute.resolve_precision("half", cpu)


def test_environment_is_the_default_and_arguments_win(two_gpus, monkeypatch):
    monkeypatch.setenv(compute.DEVICE_ENV, "gpu:1")
    monkeypatch.setenv(compute.PRECISION_ENV, "fp32")
    assert compute.resolve() == compute.Compute(torch.device("cuda", 1), "fp32")
    assert compute.resolve("cpu", "auto").device == torch.device("cpu")


def test_precision_wrapper_runs_the_network_as_asked():
    net = torch.nn.Conv3d(1, 2, 3)
    x = torch.randn(1, 1, 5, 5, 5)
    wrapped = nnunet_runner._with_precision(net, torch.device("cpu"), "bf16")
    with torch.inference_mode():
        y = wrapped(x)
    assert y.dtype == torch.float32  # nnU-Net accumulates float32 logits
    assert not torch.equal(y, net(x))  # computed in bfloat16: not the fp32 result
    assert torch.allclose(y, net(x), atol=0.1)
    assert nnunet_runner._with_precision(net, torch.device("cpu"), "fp32") is net
    cuda_fp32 = nnunet_runner._with_precision(net, torch.device("cuda", 0), "fp32")
    assert cuda_fp32.dtype is None  # autocast switched off inside nnU-Net's fp16 autocast


class StageDevices:
    """Records the device each computing stage is handed, and runs the stage on the CPU."""

    def __init__(self, monkeypatch):
        self.seen: dict[str, set[str]] = {"load_model": set(), "precision": set(), "resample": set(),
                                          "vesselness": set()}
        real_load, real_resample, real_vesselness = (nnunet_runner.load_model, resample.resample_to_shape_torch,
                                                     enhancement.vesselness)

        def load_model(folder, fold=0, device=None, step_size=0.5, mirroring=False, precision="fp32"):
            self.seen["load_model"].add(str(device))
            self.seen["precision"].add(precision)
            return real_load(folder, fold, torch.device("cpu"), step_size, mirroring, "fp32")

        def resample_torch(array, shape, order, device="cuda"):
            self.seen["resample"].add(str(device))
            return real_resample(array, shape, order, device="cpu")

        def vesselness(*args, device=None, **kwargs):
            self.seen["vesselness"].add(str(compute.resolve_device(device)))
            return real_vesselness(*args, device="cpu", **kwargs)

        monkeypatch.setattr(nnunet_runner, "load_model", load_model)
        monkeypatch.setattr(resample, "resample_to_shape_torch", resample_torch)
        monkeypatch.setattr(enhancement, "vesselness", vesselness)
        # the demo task resampled to 3 mm by us, as the official tasks are, so resampling runs too
        monkeypatch.setitem(TASKS, "demo_liver", dataclasses.replace(TASKS["demo_liver"], resample_mm=3.0))


@pytest.mark.parametrize("entry", ["pipeline", "api"])
def test_the_same_device_reaches_every_stage_on_a_simulated_gpu(two_gpus, monkeypatch, small_phantom, entry):
    stages = StageDevices(monkeypatch)
    volume_args = (small_phantom.ct.astype(np.float32), small_phantom.affine)
    if entry == "pipeline":
        from livervessels.geometry import Volume

        run_liver_vessels(Volume(*volume_args), model_dirs=[MODELS], device="gpu:1",
                          plan=ModelPlan("demo", "demo_liver", "demo_liver"), split=False)
    else:
        enhance_liver_vessels(nib.Nifti1Image(*volume_args), device="gpu:1", model_dirs=[MODELS], quiet=True)
    assert stages.seen == {"load_model": {"cuda:1"}, "precision": {"fp16"}, "resample": {"cuda:1"},
                           "vesselness": {"cuda:1"}}


def test_gpu_request_without_a_gpu_runs_every_stage_on_the_cpu(no_gpu, monkeypatch, small_phantom, caplog):
    stages = StageDevices(monkeypatch)
    monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        enhance_liver_vessels(nib.Nifti1Image(small_phantom.ct.astype(np.float32), small_phantom.affine),
                              device="gpu", model_dirs=[MODELS], quiet=True)
    assert stages.seen["load_model"] == stages.seen["vesselness"] == {"cpu"}
    assert stages.seen["resample"] == set()  # scipy on the CPU, never torch on a device
    assert caplog.text.count("no GPU available") == 1


def test_enhanced_cli_accepts_what_totalsegmentator_users_type(tmp_path, small_phantom):
    """`--device gpu` used to crash the repair's vesselness ("Expected one of cpu, cuda ... device type")."""
    image = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(small_phantom.ct.astype(np.int16), small_phantom.affine), image)
    rc = cli.enhanced_main(["-i", str(image), "-o", str(tmp_path / "out"), "--mode", "enhanced_liver",
                            "--split_portal_hepatic", "-m", str(MODELS), "--device", "gpu", "--precision", "fp32",
                            "-q"])
    assert rc == 0
    qc = json.loads((tmp_path / "out" / "qc.json").read_text())
    device = str(compute.resolve_device("gpu"))
    assert qc["models"]["compute"] == f"{device} fp32"
    metadata = json.loads((tmp_path / "out" / "enhanced_liver_vessels_metadata.json").read_text())
    assert metadata["parameters"]["device"] == device


def test_app_reads_its_device_settings_from_the_environment(tmp_path):
    result = run_app(DEMO_STUDY, tmp_path / "out", env={compute.DEVICE_ENV: "tpu"}, timeout=300)
    assert result.returncode == 2
    assert "error: unknown device 'tpu'; use one of auto, cpu, gpu" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
