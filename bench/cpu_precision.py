"""What pays for nnU-Net inference on this CPU: one 128^3 tile of nnU-Net's default 1.5 mm CT network
(PlainConvUNet, 6 stages, 32..320 features, 25 outputs, random weights) in fp32, with the
channels-last memory format, and under bfloat16 autocast.

    .venv/bin/python bench/cpu_precision.py                            # all three (bf16 is minutes without native bf16)
    .venv/bin/python bench/cpu_precision.py --variants fp32 channels_last

Prints seconds per tile (mean of --repeats after one warm-up), whether the CPU has native
bfloat16 (livervessels.compute.cpu_has_native_bf16) and writes bench/results/cpu_precision.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.compute import cpu_has_native_bf16  # noqa: E402


def network() -> torch.nn.Module:
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    torch.manual_seed(0)
    return PlainConvUNet(1, 6, [32, 64, 128, 256, 320, 320], torch.nn.Conv3d, 3, [1, 2, 2, 2, 2, 2], [2] * 6, 25,
                         [2] * 5, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                         norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=torch.nn.LeakyReLU,
                         nonlin_kwargs={"inplace": True}).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["fp32", "channels_last", "bf16"],
                    choices=["fp32", "channels_last", "bf16"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "cpu_precision.json")
    args = ap.parse_args()
    net = network()
    x = torch.randn(1, 1, 128, 128, 128)
    reference = None
    rows = []
    for variant in args.variants:
        model, inp = net, x
        if variant == "channels_last":
            model, inp = net.to(memory_format=torch.channels_last_3d), x.to(memory_format=torch.channels_last_3d)

        def run():
            with torch.inference_mode():
                if variant == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return model(inp).float()
                return model(inp)

        run()  # warm-up
        t = time.perf_counter()
        for _ in range(args.repeats):
            out = run()
        seconds = (time.perf_counter() - t) / args.repeats
        if variant == "fp32":
            reference = out
        agree = None if reference is None else float((out.argmax(1) == reference.argmax(1)).float().mean())
        rows.append({"variant": variant, "seconds_per_tile": round(seconds, 2), "argmax_agreement_with_fp32": agree})
        print(f"{variant:14s} {seconds:7.2f} s per tile" + (f"  (argmax agrees with fp32 on {agree:.4f})"
                                                             if agree is not None and variant != "fp32" else ""),
              flush=True)
        net = net.to(memory_format=torch.contiguous_format)
    report = {"command": "bench/cpu_precision.py " + " ".join(sys.argv[1:]), "cpu": platform.processor() or
              platform.machine(), "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
              "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"native bf16: {report['native_bf16']}; wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
