"""Meshes: one watertight shell per 26-connected piece of a mask, slivers dropped, thin vessels kept."""
from __future__ import annotations

import cc3d
import numpy as np
import pytest
import trimesh

from livervessels.outputs.meshes import MIN_PIECE_MM3, export_meshes, face_connect, mesh_pieces, read_stl

AFFINE = np.diag([0.8, 0.8, 1.5, 1.0])  # a usual CT grid: 0.96 mm^3 voxels


def _bodies(path) -> list[trimesh.Trimesh]:
    tri = read_stl(path)
    mesh = trimesh.Trimesh(tri.reshape(-1, 3), np.arange(len(tri) * 3).reshape(-1, 3), process=True)
    return mesh.split(only_watertight=False)


def _staircase(shape=(40, 40, 30)) -> np.ndarray:
    """A one-voxel vessel running diagonally: its voxels meet only at edges and corners."""
    m = np.zeros(shape, bool)
    for i in range(24):
        m[4 + i, 4 + i, 3 + i // 2] = True
    return m


def test_a_vessel_joined_only_diagonally_is_one_watertight_shell(tmp_path):
    m = _staircase()
    assert cc3d.connected_components(m, connectivity=6).max() > 10  # face neighbours alone: many pieces
    (path,) = export_meshes({"vessel": m}, AFFINE, tmp_path)
    (body,) = _bodies(path)
    assert body.is_watertight and body.volume > 0  # closed, normals outwards
    # the thin vessel keeps its course from end to end
    idx = np.argwhere(m)
    ends = (AFFINE @ np.c_[idx[[0, -1]], [1, 1]].T).T[:, :3] * [-1, -1, 1]  # RAS -> LPS
    assert np.linalg.norm(body.bounds[1] - body.bounds[0]) > 0.8 * np.linalg.norm(ends[1] - ends[0])


def test_face_connect_joins_each_piece_without_joining_separate_pieces():
    m = _staircase()
    m[30:33, 5:8, 20:23] = True  # a separate piece two voxels away from the staircase's end
    joined = face_connect(m)
    assert (joined >= m).all()
    assert (cc3d.connected_components(joined, connectivity=6).max()
            == cc3d.connected_components(m, connectivity=26).max() == 2)
    steps = int(_staircase().sum()) - 1
    assert joined.sum() - m.sum() <= 2 * steps  # one voxel per edge step, two per corner step


def test_one_shell_per_piece_slivers_dropped_and_cavities_closed(tmp_path):
    m = np.zeros((40, 40, 30), bool)
    m[5:15, 5:15, 5:12] = True
    m[9, 9, 8] = False  # an enclosed cavity: a second, inner shell unless it is filled
    m[25:30, 25:30, 20:24] = True
    m[35, 35, 2] = True  # one voxel, 0.96 mm^3 < MIN_PIECE_MM3: a sliver
    assert np.prod(np.diag(AFFINE)[:3]) < MIN_PIECE_MM3
    (path,) = export_meshes({"liver": m}, AFFINE, tmp_path)
    bodies = sorted(_bodies(path), key=lambda b: -b.volume)
    assert len(bodies) == 2 and all(b.is_watertight for b in bodies)
    assert bodies[0].volume == pytest.approx(10 * 10 * 7 * 0.96, rel=0.1)
    assert bodies[1].volume == pytest.approx(5 * 5 * 4 * 0.96, rel=0.2)
    # a mask holding nothing but slivers writes no file
    assert export_meshes({"speck": m & (np.arange(40)[:, None, None] == 35)}, AFFINE, tmp_path / "s") == []


def test_phantom_vessel_trees_mesh_into_as_many_shells_as_they_have_pieces(tmp_path, phantom):
    for name, tree in (("portal", 1), ("hepatic", 2)):
        mask = phantom.vessel_tree == tree
        voxel_mm3 = float(np.prod(phantom.spacing))
        labels = cc3d.connected_components(mask, connectivity=26)
        counts = np.bincount(labels.ravel())[1:]
        expected = int((counts * voxel_mm3 >= MIN_PIECE_MM3).sum())
        pieces = mesh_pieces(mask, phantom.affine)
        assert len(pieces) == expected
        (path,) = export_meshes({name: mask}, phantom.affine, tmp_path)
        bodies = _bodies(path)
        assert len(bodies) == expected and all(b.is_watertight for b in bodies)
        total = sum(b.volume for b in bodies)
        assert total == pytest.approx(mask.sum() * voxel_mm3, rel=0.25)
