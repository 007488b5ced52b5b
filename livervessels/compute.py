"""Where and in which precision the computing stages run: one policy for every entry point.

The app's LIVERVESSELS_DEVICE / LIVERVESSELS_PRECISION, the command lines' --device / --precision
and the Python API's device= / precision= all come here, and the resolved torch device reaches
every stage that computes (nnU-Net inference, resampling, the repair's vesselness).

Device: auto (the first GPU when present, else the CPU), cpu, gpu, gpu:N, cuda, cuda:N (gpu is
TotalSegmentator's spelling). gpu without a GPU warns once and runs everything on the CPU; gpu:N
that does not exist is an input error (the user named a specific card).

Precision of the networks: fp32 (exact parity with TotalSegmentator on the CPU), bf16 (bfloat16
autocast), fp16 (float16 autocast, CUDA only: what nnU-Net and TotalSegmentator do on a GPU).
auto: fp16 on CUDA (as TotalSegmentator), bf16 on a CPU with native bfloat16 arithmetic (AVX512-BF16
or AMX; about 2x faster there, lowest class Dice 0.992 against fp32), else fp32 (without native
support bf16 is emulated and slower than fp32).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import lru_cache

import torch

from livervessels.errors import InputError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "gpu", "gpu:N", "cuda", "cuda:N")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICE_ENV = "LIVERVESSELS_DEVICE"
PRECISION_ENV = "LIVERVESSELS_PRECISION"

_warned: set[str] = set()


@dataclass(frozen=True)
class Compute:
    """A resolved device and network precision, handed to every stage that computes."""

    device: torch.device
    precision: str  # fp32, bf16 or fp16

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        return f"{self.device} {self.precision}"


def warn_once(message: str) -> None:
    """Log a warning the first time this process sees the message."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device for a device request (see the module docstring for the spellings).

    Raises:
        InputError: an unknown spelling, or a numbered GPU that is not present.
    """
    if isinstance(device, torch.device):
        device = str(device)
    name = (device or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index_text = name.partition(":")
    if kind not in ("gpu", "cuda") or (index_text and not index_text.isdigit()):
        raise InputError(f"unknown device '{device}'; use one of {', '.join(DEVICE_CHOICES)}")
    if not torch.cuda.is_available():
        if index_text:
            raise InputError(f"device '{device}' asked for a specific GPU but none is available; use cpu or auto")
        warn_once(f"device '{device}': no GPU available, running every stage on the CPU (slow for large CTs)")
        return torch.device("cpu")
    index = int(index_text or 0)
    if index >= torch.cuda.device_count():
        raise InputError(f"device '{device}': only {torch.cuda.device_count()} GPU(s) present (numbered from 0)")
    return torch.device("cuda", index)


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    try:  # other platforms: oneDNN's own check (true on AVX512 without native bf16 too, so second)
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """fp32, bf16 or fp16 for a precision request on a resolved device.

    Raises:
        InputError: an unknown precision, or fp16 on the CPU.
    """
    name = (precision or "auto").strip().lower()
    if name not in PRECISIONS:
        raise InputError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise InputError("precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    if name == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warn_once("precision bf16: this CPU has no native bfloat16 arithmetic, so it is emulated and slower "
                  "than fp32")
    return name


def resolve(device: Compute | str | torch.device | None = None, precision: str | None = None) -> Compute:
    """The compute settings for a request; None falls back to LIVERVESSELS_DEVICE / _PRECISION, then auto.

    Raises:
        InputError: see resolve_device and resolve_precision.
    """
    if isinstance(device, Compute):
        device = device.device
    if device is None:
        device = os.environ.get(DEVICE_ENV) or None
    if precision is None:
        precision = os.environ.get(PRECISION_ENV) or None
    torch_device = resolve_device(device)
    return Compute(torch_device, resolve_precision(precision, torch_device))


def as_compute(compute: Compute | str | torch.device | None) -> Compute:
    """A Compute from whatever a caller passed as its device (a Compute passes through).

    Raises:
        InputError: an unknown device or precision, or a GPU asked for that is not there.
    """
    return compute if isinstance(compute, Compute) else resolve(compute)
