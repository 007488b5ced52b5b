"""The centerline graph (livervessels/vessel_graph.py) against the geometry of tubes drawn in mm:
lengths, radii, junctions and terminal branches, on isotropic and anisotropic grids."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from livervessels.vessel_graph import (
    _trace,
    attach_image_axes,
    build_vessel_graph,
    distances_at,
    feature_indices,
    median,
    summarize_tree,
)

from synthetic_ct import tube_mask


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.5, 0.5, 1.0)])
def test_a_straight_tube_is_one_branch_of_its_length_and_radius(spacing):
    # 40 mm along the last axis, radius 2.5 mm: the same tube in mm on either grid
    shape = tuple(int(round(e / s)) for e, s in zip((16, 16, 50), spacing))
    mask = tube_mask(shape, spacing, [((8, 8, 5), (8, 8, 45))], 2.5, caps=False)
    graph = build_vessel_graph(mask, spacing)
    assert len(graph.branches) == 1
    (branch,) = graph.branches
    assert branch.is_terminal
    assert branch.length_mm == pytest.approx(40.0, abs=1.5)
    # distance to the nearest background voxel centre: the radius plus up to half a voxel
    assert 2.5 <= branch.mean_radius_mm <= 2.5 + max(spacing)
    assert [n.kind for n in graph.nodes] == ["endpoint", "endpoint"]
    assert summarize_tree(graph)["total_length_mm"] == pytest.approx(branch.length_mm, abs=0.01)


def test_a_bifurcation_is_three_branches_meeting_at_one_junction():
    spacing = (0.6, 0.6, 0.6)
    shape = (60, 40, 40)
    fork = (18.0, 12.0, 12.0)
    mask = tube_mask(shape, spacing, [((2, 12, 12), fork), (fork, (34, 22, 12)), (fork, (34, 2, 12))], 1.8)
    graph = build_vessel_graph(mask, spacing)
    junctions = [n for n in graph.nodes if n.kind == "junction"]
    assert len(junctions) == 1 and junctions[0].degree == 3
    assert len(graph.branches) == 3
    assert np.linalg.norm(graph.node_position_mm(junctions[0].index) - np.array(fork)) < 2.5
    summary = summarize_tree(graph)
    assert summary["branches"] == 3 and summary["terminal_branches"] == 3
    # the trunk is 16 mm, each child sqrt(16^2 + 10^2) = 18.9 mm
    assert summary["total_length_mm"] == pytest.approx(16 + 2 * np.hypot(16, 10), rel=0.1)
    assert summary["max_radius_mm"] >= 1.8


def test_a_wall_bump_is_pruned_but_a_side_branch_is_kept():
    spacing = (0.5, 0.5, 0.5)
    shape = (80, 30, 30)
    trunk = [((2, 7.5, 7.5), (38, 7.5, 7.5))]
    bump = tube_mask(shape, spacing, trunk, 2.5) | tube_mask(shape, spacing, [((20, 7.5, 7.5), (20, 11.0, 7.5))], 1.2)
    assert len(build_vessel_graph(bump, spacing).branches) == 1  # 3.5 mm out of a 2.5 mm vessel: its wall
    side = tube_mask(shape, spacing, trunk, 2.5) | tube_mask(shape, spacing, [((20, 7.5, 7.5), (20, 14.5, 7.5))], 1.2)
    assert len(build_vessel_graph(side, spacing).branches) == 3



def test_a_free_end_is_a_skeleton_voxel_with_one_neighbour():
    # A skeleton cut out of realistic phantom 1000 around a junction cluster: voxel (5, 5, 5) has
    # two neighbours, both in that cluster, and so has (8, 5, 6). Such a voxel is a staircase step
    # that leaves the junction and re-enters it, not a vessel end; it was once traced as a 1-voxel
    # terminal branch (15-18 per realistic phantom).
    local = [(1, 0, 5), (2, 0, 5), (3, 1, 4), (3, 2, 3), (3, 3, 3), (4, 1, 2), (4, 1, 4), (4, 4, 3),
             (5, 2, 4), (5, 3, 3), (5, 5, 4), (6, 3, 4), (6, 6, 4)]
    skeleton = np.zeros((11, 11, 11), bool)
    skeleton[tuple((np.array(local) + 2).T)] = True
    branches, nodes = _trace(np.argwhere(skeleton), skeleton.shape)
    neighbours = ndimage.convolve(skeleton.astype(int), np.ones((3, 3, 3), int), mode="constant") - skeleton
    ends = [vox[0] for kind, vox in nodes if kind == "endpoint"]
    assert ends and all(neighbours[tuple(v)] == 1 for v in ends)
    single = [tuple(vox[0]) for vox, _ in branches if len(vox) == 1]
    assert (5, 5, 5) not in single and (8, 5, 6) not in single
    # every skeleton voxel still belongs to a branch or a node
    covered = {tuple(v) for vox, _ in branches for v in vox} | {tuple(v) for _, vox in nodes for v in vox}
    assert covered == {tuple(v) for v in np.argwhere(skeleton)}

def test_the_centerline_hu_is_the_ct_on_the_centerline():
    spacing = (0.5, 0.5, 0.5)
    mask = tube_mask((20, 20, 60), spacing, [((5, 5, 4), (5, 5, 26))], 2.0)
    ct = np.where(mask, 180.0, 90.0)
    (branch,) = build_vessel_graph(mask, spacing, ct).branches
    assert branch.mean_hu == pytest.approx(180.0)
    assert build_vessel_graph(mask, spacing).branches[0].mean_hu is None


def test_an_empty_mask_gives_an_empty_graph_and_an_empty_summary():
    graph = build_vessel_graph(np.zeros((5, 5, 5), bool), (1, 1, 1))
    assert graph.branches == [] and graph.nodes == []
    assert summarize_tree(graph) == {"branches": 0, "total_length_mm": 0.0, "mean_radius_mm": 0.0,
                                     "max_radius_mm": 0.0, "terminal_branches": 0}


def test_median_and_distances_agree_with_numpy_and_scipy():
    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 10):
        values = rng.normal(size=n)
        assert median(values) == np.median(values)
    spacing = (0.7, 0.9, 2.0)
    blob = tube_mask((20, 18, 10), spacing, [((3, 3, 4), (10, 12, 14))], 2.5)
    points = np.nonzero(blob)
    expected = ndimage.distance_transform_edt(blob, sampling=spacing)[points]
    assert np.array_equal(distances_at(feature_indices(blob, spacing), points, spacing), expected)


def test_labels_empty_masks_node_radii_and_the_summary_by_hand():
    spacing = (0.5, 0.5, 0.5)
    shape = (16, 16, 50)
    mask = tube_mask(shape, spacing, [((4, 4, 5), (4, 4, 20))], 1.5, caps=False)
    labelled = mask.astype(np.uint8) * 2  # a label mask (value 2) counts as the vessels it marks
    a, b = build_vessel_graph(mask, spacing), build_vessel_graph(labelled, spacing)
    assert np.array_equal(a.skeleton, b.skeleton) and len(a.branches) == len(b.branches) == 1
    empty = build_vessel_graph(np.zeros(shape, bool), spacing)
    assert empty.skeleton.shape == shape and empty.skeleton.dtype == bool and not empty.skeleton.any()
    assert empty.branches == [] and empty.nodes == []
    # a node's radius: the largest distance-transform value over its voxels
    (branch,) = a.branches
    for n in branch.nodes:
        assert a.node_radius_mm(n) == pytest.approx(float(a.radius_mm[tuple(a.nodes[n].voxels.T)].max()))
        assert a.node_radius_mm(n) > 0
    assert branch.other_node(branch.nodes[0]) == branch.nodes[1]
    assert branch.other_node(branch.nodes[1]) == branch.nodes[0]
    # the summary's length-weighted mean radius, to three decimals
    s = summarize_tree(a)
    assert s["mean_radius_mm"] == round(branch.mean_radius_mm, 3) and s["mean_radius_mm"] != round(s["mean_radius_mm"])
    assert summarize_tree(a, []) == {"branches": 0, "total_length_mm": 0.0, "mean_radius_mm": 0.0,
                                     "max_radius_mm": 0.0, "terminal_branches": 0}


def test_image_axes_follow_each_branch_of_a_fork():
    # the axes of every branch, not only the first one's, are read at that branch's own voxels
    spacing = (0.6, 0.6, 0.6)
    shape = (60, 40, 40)
    fork = (18.0, 12.0, 12.0)
    ends = [(2, 12, 12), (34, 22, 12), (34, 2, 12)]
    mask = tube_mask(shape, spacing, [(ends[0], fork), (fork, ends[1]), (fork, ends[2])], 1.8)
    ct = ndimage.gaussian_filter(np.where(mask, 250.0, 80.0), 0.7).astype(np.float32)
    graph = build_vessel_graph(mask, spacing, ct)
    attach_image_axes(graph, ct, sigma_mm=1.5)
    assert len(graph.branches) == 3
    for b in graph.branches:
        mid = b.voxels.mean(axis=0) * spacing
        end = min(ends, key=lambda e: np.linalg.norm(np.subtract(e, mid)))
        d = np.subtract(end, fork) / np.linalg.norm(np.subtract(end, fork))
        weight = np.linalg.norm(b.axes, axis=1)
        inner = weight > 0.5
        assert b.axes.shape == (len(b.voxels), 3) and inner.sum() >= 5
        assert np.median(np.abs(b.axes[inner] @ d) / weight[inner]) > 0.95
