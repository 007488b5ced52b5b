"""Surface meshes per structure (binary STL) in patient coordinates (DICOM LPS, millimetres)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import measure

from livervessels.geometry import LPS_TO_RAS, voxel_spacing

_STL_DTYPE = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def mask_to_mesh(mask: np.ndarray, affine_ras: np.ndarray, smoothing_mm: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) in LPS mm and faces (M, 3), outward-facing, from a smoothed mask.

    Smoothing the mask with a Gaussian of smoothing_mm before marching cubes removes the voxel
    staircase without shrinking thin vessels the way mesh-level Laplacian smoothing does.
    """
    m = np.pad(np.asarray(mask, np.float32), 2)
    sigma = [smoothing_mm / s for s in voxel_spacing(affine_ras)]
    smooth = ndimage.gaussian_filter(m, sigma) if smoothing_mm > 0 else m
    verts, faces, _, _ = measure.marching_cubes(smooth, level=0.5)
    verts -= 2  # undo the padding
    world = (LPS_TO_RAS @ affine_ras @ np.c_[verts, np.ones(len(verts))].T).T[:, :3]
    # marching_cubes winds faces so their right-hand normals point into the object in index space;
    # STL wants them outwards. A mirrored grid (negative determinant) already turns them around.
    if np.linalg.det(affine_ras[:3, :3]) > 0:
        faces = faces[:, ::-1]
    return world, faces


def write_stl(verts: np.ndarray, faces: np.ndarray, path: str | Path, name: str = "") -> Path:
    tri = verts[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norms = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, norms, out=np.zeros_like(normals), where=norms > 0)
    data = np.zeros(len(faces), _STL_DTYPE)
    data["normal"], data["v"] = normals, tri
    with open(path, "wb") as fh:
        fh.write(f"livervessels {name} LPS mm".encode()[:80].ljust(80, b" "))
        fh.write(np.uint32(len(faces)).tobytes())
        fh.write(data.tobytes())
    return Path(path)


def read_stl(path: str | Path) -> np.ndarray:
    """Triangles (M, 3, 3) of a binary STL."""
    raw = Path(path).read_bytes()
    n = int(np.frombuffer(raw[80:84], "<u4")[0])
    return np.frombuffer(raw[84:84 + n * _STL_DTYPE.itemsize], _STL_DTYPE)["v"].copy()


def export_meshes(masks: dict[str, np.ndarray], affine_ras: np.ndarray, out_dir: str | Path) -> list[Path]:
    """<out_dir>/<name>.stl for every non-empty mask."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, mask in masks.items():
        if np.any(mask):
            verts, faces = mask_to_mesh(mask, affine_ras)
            written.append(write_stl(verts, faces, out_dir / f"{name}.stl", name))
    return written
