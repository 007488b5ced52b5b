"""Write the bundled demo DICOM study (and its ground truth) from a synthetic phantom.

    python scripts/make_demo_study.py [--out demo]

demo/study/ holds a CT series (1.5 x 1.5 x 2.5 mm, 64 slices) and a one-slice localizer, as a
scanner would send them: head-first supine, ImageOrientationPatient (1,0,0, 0,1,0) (rows run to the
patient's left, columns to the back; a viewer shows anterior at the top and the patient's right on
the screen's left). demo/ground_truth/ holds the phantom's label maps as NIfTI (RAS, their own
affine). The seed is not one the demo model was trained on.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from livervessels.synthetic.phantom import make_phantom, save_nifti
from livervessels.synthetic.write_series import write_image_series

DEMO_SEED = 2026


def scanner_storage(array: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A RAS-stored volume re-stored as a scanner writes a supine series: x and y reversed, so the
    rows run to the patient's left and the columns to the back (IOP 1,0,0, 0,1,0). Same patient
    space, same voxels."""
    n = np.array(array.shape)
    affine = affine_ras.copy()
    affine[:3, :2] *= -1
    affine[:3, 3] = affine_ras[:3, :3] @ np.array([n[0] - 1, n[1] - 1, 0]) + affine_ras[:3, 3]
    return np.ascontiguousarray(array[::-1, ::-1]), affine


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="demo")
    args = ap.parse_args()
    out = Path(args.out)
    shutil.rmtree(out / "study", ignore_errors=True)
    ph = make_phantom(seed=DEMO_SEED)
    ct, affine = scanner_storage(ph.ct, ph.affine)
    write_image_series(ct, affine, out / "study" / "ct", series_description="Abdomen portal venous 2.5 mm",
                       series_number=2, seed=DEMO_SEED)
    # A localizer in the same study: the series selection must skip it.
    mid = ct.shape[2] // 2
    loc_affine = affine.copy()
    loc_affine[:3, 3] = affine[:3, :3] @ np.array([0, 0, mid]) + affine[:3, 3]
    write_image_series(ct[:, :, mid:mid + 1], loc_affine, out / "study" / "localizer",
                       image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), series_description="Topogram",
                       series_number=1, seed=DEMO_SEED)
    save_nifti(ph, out / "ground_truth")
    (out / "ground_truth" / "ct.nii.gz").unlink()  # the CT is the DICOM series itself
    print(f"wrote {out / 'study'} and {out / 'ground_truth'}")


if __name__ == "__main__":
    main()
