"""What damaged JPEG 2000 slices of the real example CT decode to, and whether the pixel checks see it.

    .venv/bin/python bench/j2k_corruption.py          # prints a table, writes bench/results/j2k_corruption.json

For one slice of ../shared/data/totalseg_example/ct_dicom (lossless JPEG 2000): overwrite n bytes
of its codestream with random bytes (n = 1 ... 1024, at random places after the main header) or
cut it to a fraction of its length, decode it, and count the pixels that differ from the original
decode, their largest error, and whether livervessels.dicom.pixel_checks warns.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import encapsulate, generate_fragmented_frames

from livervessels.dicom.pixel_checks import pixel_warnings

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "totalseg_example" / "ct_dicom"


def _hu(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def main() -> int:
    if not DATA.is_dir():
        print(f"real example CT not found at {DATA}", file=sys.stderr)
        return 2
    datasets = sorted((pydicom.dcmread(f) for f in DATA.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    volume = np.stack([_hu(d) for d in datasets], axis=-1)
    k = len(datasets) // 2
    frame = b"".join(next(generate_fragmented_frames(datasets[k].PixelData)))
    rng = np.random.default_rng(1)
    trials = [("overwrite", n) for n in (1, 4, 16, 64, 256, 1024)] + [("cut", f) for f in (0.9, 0.5, 0.2)]
    rows = []
    print("| damage | decodes | wrong pixels | share | largest error (HU) | pixel checks warn |\n"
          "|---|---|---|---|---|---|")
    for kind, amount in trials:
        data = bytearray(frame)
        if kind == "overwrite":
            at = int(rng.integers(200, len(data) - amount - 2))  # past the main header
            data[at:at + amount] = rng.integers(0, 256, amount, dtype=np.uint8).tobytes()
        else:
            data = data[: int(len(data) * amount)]
        if len(data) % 2:
            data += b"\x00"
        damaged = copy.deepcopy(datasets[k])
        damaged.PixelData = encapsulate([bytes(data)])
        row = {"damage": f"{kind} {amount}", "decodes": True}
        try:
            slice_hu = _hu(damaged)
        except Exception:
            row.update(decodes=False, wrong_pixels=None, share=None, max_error_hu=None,
                       warned=None)
        else:
            wrong = slice_hu != volume[:, :, k]
            test = volume.copy()
            test[:, :, k] = slice_hu
            warned = bool(pixel_warnings(test, [*datasets[:k], damaged, *datasets[k + 1:]]))
            row.update(wrong_pixels=int(wrong.sum()), share=round(float(wrong.mean()), 4),
                       max_error_hu=float(np.abs(slice_hu - volume[:, :, k]).max()), warned=warned)
        rows.append(row)
        print(f"| {row['damage']} | {'yes' if row['decodes'] else 'no (refused as damaged)'} | "
              f"{row['wrong_pixels'] if row['decodes'] else '-'} | {row['share'] if row['decodes'] else '-'} | "
              f"{row['max_error_hu'] if row['decodes'] else '-'} | {row['warned'] if row['decodes'] else '-'} |")
    out = ROOT / "bench" / "results" / "j2k_corruption.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
