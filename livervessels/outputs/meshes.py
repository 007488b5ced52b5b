"""Surface meshes per structure (binary STL) in patient coordinates (DICOM LPS, millimetres)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import measure

from livervessels.geometry import LPS_TO_RAS, voxel_spacing

_STL_DTYPE = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])


# Pieces smaller than this are voxel slivers, not anatomy a surgeon plans on or a printer can print.
MIN_PIECE_MM3 = 1.0
# Weight of the binary mask in the field that marching cubes cuts at 0.5: above 0.5 every mask voxel
# stays inside and every other voxel outside (the mask's own topology), while the smoothed part
# moves the surface off the voxel staircase.
_MASK_WEIGHT = 0.5


def face_connect(mask: np.ndarray) -> np.ndarray:
    """The mask with voxels added where two of its voxels meet only at an edge or a corner.

    Marching cubes joins voxels only through faces, so a vessel that the segmentation keeps
    26-connected would fall apart into separate shells at every diagonal step. One voxel per such
    step (on the shared face path) makes the piece face-connected; it moves the surface by at most
    a voxel there and never joins two separate 26-connected pieces when called on one piece.
    """
    m = np.pad(np.asarray(mask, bool), 1)
    for _ in range(8):  # a bridge can expose another diagonal step; a few rounds settle it
        before = int(m.sum())
        for d in _DIAGONALS:  # one of d, -d each: a pair is bridged once, from its first voxel
            axes = [i for i in range(3) if d[i]]
            steps = [tuple(d[i] if j == i else 0 for j in range(3)) for i in axes]
            both = m & _shifted(m, d)
            if len(axes) == 2:
                need = both & ~(_shifted(m, steps[0]) | _shifted(m, steps[1]))
                m |= _unshift(need, steps[0])
            else:  # corner: is any face path x -> x+e_i -> x+e_i+e_j -> x+d there?
                ok = np.zeros_like(m)
                for i in range(3):
                    for j in range(3):
                        if i != j:
                            e_ij = tuple(steps[i][k] + steps[j][k] for k in range(3))
                            ok |= _shifted(m, steps[i]) & _shifted(m, e_ij)
                need = both & ~ok
                e_01 = tuple(steps[0][k] + steps[1][k] for k in range(3))
                m |= _unshift(need, steps[0]) | _unshift(need, e_01)
        if int(m.sum()) == before:
            break
    return m[1:-1, 1:-1, 1:-1]


# Edge steps first (one voxel bridges them), then corner steps; of d and -d only the one whose first
# non-zero component is positive.
_DIAGONALS = sorted(((a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if abs(a) + abs(b) + abs(c) >= 2 and next(k for k in (a, b, c) if k) > 0),
                    key=lambda d: abs(d[0]) + abs(d[1]) + abs(d[2]))


def _shifted(m: np.ndarray, d: tuple[int, int, int]) -> np.ndarray:
    """out[x] = m[x + d] (False beyond the border; the caller pads by one)."""
    out = np.zeros_like(m)
    src = tuple(slice(max(k, 0), m.shape[i] + min(k, 0)) for i, k in enumerate(d))
    dst = tuple(slice(max(-k, 0), m.shape[i] + min(-k, 0)) for i, k in enumerate(d))
    out[dst] = m[src]
    return out


def _unshift(m: np.ndarray, d: tuple[int, int, int]) -> np.ndarray:
    """out[x + d] = m[x]."""
    return _shifted(m, tuple(-k for k in d))


def mask_to_mesh(mask: np.ndarray, affine_ras: np.ndarray, smoothing_mm: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) in LPS mm and faces (M, 3), outward-facing, of one closed surface.

    The mask should be one 26-connected piece (`export_meshes` splits masks into pieces): it is
    made face-connected and its enclosed cavities are filled, so the surface is a single watertight
    shell. Marching cubes cuts a blend of the mask and the mask smoothed with a Gaussian of
    smoothing_mm: the blend keeps the mask's voxels on their side of the surface (thin vessels
    neither vanish nor break, as they would at level 0.5 of the smoothed mask alone) while the
    smoothed part takes the voxel staircase off the surface.
    """
    solid = ndimage.binary_fill_holes(face_connect(mask))
    m = np.pad(solid.astype(np.float32), 2)
    sigma = [smoothing_mm / s for s in voxel_spacing(affine_ras)]
    smooth = ndimage.gaussian_filter(m, sigma) if smoothing_mm > 0 else m
    field = _MASK_WEIGHT * m + (1 - _MASK_WEIGHT) * smooth
    verts, faces, _, _ = measure.marching_cubes(field, level=0.5)
    verts -= 2  # undo the padding
    world = (LPS_TO_RAS @ affine_ras @ np.c_[verts, np.ones(len(verts))].T).T[:, :3]
    # marching_cubes winds faces so their right-hand normals point into the object in index space;
    # STL wants them outwards. A mirrored grid (negative determinant) already turns them around.
    if np.linalg.det(affine_ras[:3, :3]) > 0:
        faces = faces[:, ::-1]
    return world, faces


def mesh_pieces(mask: np.ndarray, affine_ras: np.ndarray, min_piece_mm3: float = MIN_PIECE_MM3,
                smoothing_mm: float = 0.7) -> list[tuple[np.ndarray, np.ndarray]]:
    """One closed surface per 26-connected piece of the mask of at least min_piece_mm3, largest first."""
    import cc3d

    mask = np.asarray(mask, bool)
    labels = cc3d.connected_components(mask, connectivity=26)
    voxel_mm3 = float(np.prod(voxel_spacing(affine_ras)))
    stats = cc3d.statistics(labels)
    order = np.argsort(-stats["voxel_counts"][1:]) + 1
    pieces = []
    for label in order:
        if stats["voxel_counts"][label] * voxel_mm3 < min_piece_mm3:
            continue
        box = stats["bounding_boxes"][label]
        piece = labels[box] == label
        shift = np.eye(4)
        shift[:3, 3] = [s.start for s in box]
        verts, faces = mask_to_mesh(piece, affine_ras @ shift, smoothing_mm)
        pieces.append((verts, faces))
    return pieces


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
    """<out_dir>/<name>.stl for every mask with a piece of at least MIN_PIECE_MM3: one watertight
    shell per 26-connected piece, slivers dropped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, mask in masks.items():
        if not np.any(mask):
            continue
        pieces = mesh_pieces(mask, affine_ras)
        if not pieces:
            continue
        offsets = np.cumsum([0] + [len(v) for v, _ in pieces[:-1]])
        verts = np.concatenate([v for v, _ in pieces])
        faces = np.concatenate([f + o for (_, f), o in zip(pieces, offsets)])
        written.append(write_stl(verts, faces, out_dir / f"{name}.stl", name))
    return written
