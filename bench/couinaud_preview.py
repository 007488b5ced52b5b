"""The README's picture of vessel-derived Couinaud segments: one realistic phantom through
TotalSegmentatorEnhanced's Python API (support labels and vessel mask from the phantom's truth,
split, --couinaud, preview), its preview_couinaud_segments.png copied to OUT.

    .venv/bin/python bench/couinaud_preview.py --seed 1000 --out docs/couinaud_preview.png
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.api import enhance_liver_vessels  # noqa: E402
from livervessels.outputs.preview import COUINAUD_PREVIEW_FILE  # noqa: E402
from livervessels.synthetic.realistic import make_realistic_phantom  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "docs" / "couinaud_preview.png"))
    args = ap.parse_args()
    ph = make_realistic_phantom(args.seed, "normal")
    support = ph.support()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "support").mkdir()
        nib.save(nib.Nifti1Image(ph.ct, ph.affine), str(tmp / "ct.nii.gz"))
        for name, mask in (("liver", support["liver"]), ("inferior_vena_cava", support["ivc"]),
                           ("portal_vein_and_splenic_vein", support["portal_vein"]),
                           ("liver_vessels", ph.vessel_mask)):
            nib.save(nib.Nifti1Image(mask.astype(np.uint8), ph.affine), str(tmp / "support" / f"{name}.nii.gz"))
        enhance_liver_vessels(str(tmp / "ct.nii.gz"), str(tmp / "out"), split_portal_hepatic=True,
                              split_support_dir=str(tmp / "support"), couinaud=True, preview=True, quiet=True)
        shutil.copyfile(tmp / "out" / COUINAUD_PREVIEW_FILE, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
