"""livervessels.split_types: the tree labels, SplitParams' invariants, and SplitBranches' mapping of
centerline voxels from the split's working grid back to the input grid."""
from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from livervessels import split_types
from livervessels.split_confidence import ConfidenceModel
from livervessels.split_types import Labelling, PortalHepaticSplit, SplitBranches, SplitParams
from livervessels.vessel_graph import Branch, VesselGraph

FIELDS = {f.name: f for f in dataclasses.fields(SplitParams)}
HINTS = typing.get_type_hints(SplitParams, vars(split_types))
DEFAULTS = SplitParams()


def test_tree_labels_are_the_documented_values():
    # the CLI and the outputs document 0 background, 1 portal vein branches, 2 hepatic veins
    assert (split_types.PORTAL, split_types.HEPATIC) == (1, 2)
    assert split_types.TREE_NAMES == {1: "portal", 2: "hepatic"}
    assert 0.0 <= split_types.UNREACHED_CONFIDENCE <= 1.0


# ---------------------------------------------------------------- SplitParams


def test_split_params_are_frozen():
    p = SplitParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed_distance_mm = 5.0  # type: ignore[misc]
    assert p.seed_distance_mm == 3.0


def test_replace_gives_a_changed_copy_and_leaves_the_original():
    p = SplitParams()
    q = dataclasses.replace(p, seed_distance_mm=5.0, max_enumerated_ends=4)
    assert (q.seed_distance_mm, q.max_enumerated_ends) == (5.0, 4)
    assert (p.seed_distance_mm, p.max_enumerated_ends) == (3.0, 8)
    assert q != p and dataclasses.replace(q, seed_distance_mm=3.0, max_enumerated_ends=8) == p


def test_equal_params_are_equal_and_hashable():
    # a frozen dataclass of numbers and a frozen ConfidenceModel: usable as a cache key
    assert SplitParams() == SplitParams()
    assert hash(SplitParams()) == hash(SplitParams())
    assert len({SplitParams(), SplitParams(), SplitParams(low_confidence=0.5)}) == 2


def test_every_default_has_its_annotated_type():
    # the benchmarks' --param NAME=VALUE parses the value with type(default): a float field with an
    # int default would refuse "2.5"
    for name, f in FIELDS.items():
        value = getattr(DEFAULTS, name)
        hint = HINTS[name]
        if name == "contrast_phase":  # the scan's phase, not a tuning parameter: --param refuses it
            assert value is None and hint == (str | None), (name, hint)
        elif hint is float:
            assert type(value) is float, (name, value)
        elif hint is int:
            assert type(value) is int, (name, value)
        else:
            assert hint is ConfidenceModel and isinstance(value, ConfidenceModel), name


def test_lengths_in_millimetres_are_positive():
    mm = [n for n in FIELDS if n.endswith("_mm")]
    # the naming convention is in use for the lengths the docstrings give in mm
    assert {"max_working_spacing_mm", "seed_distance_mm", "dome_window_mm", "axis_sigma_mm", "radial_reach_mm",
            "territory_block_mm", "territory_far_mm", "territory_near_mm"} <= set(mm)
    for name in mm:
        assert 0.0 < getattr(DEFAULTS, name) < 100.0, name  # within a liver's size


def test_angles_are_degrees_in_range():
    deg = [n for n in FIELDS if n.endswith("_deg")]
    assert deg == ["angle_scale_deg"]
    assert 0.0 < DEFAULTS.angle_scale_deg <= 180.0


def test_fractions_shares_and_confidences_lie_in_the_unit_interval():
    names = [n for n in FIELDS if n.endswith(("_fraction", "_share")) or "confidence" in n and n != "confidence_model"]
    assert {"emerging_lumen_fraction", "territory_min_fraction", "seed_failure_fraction", "territory_subtree_share",
            "territory_return_share", "low_confidence", "seed_failure_confidence",
            "territory_confidence"} <= set(names)
    for name in names:
        assert 0.0 <= getattr(DEFAULTS, name) <= 1.0, name


def test_ratios_weights_and_penalties_are_not_negative():
    for name in FIELDS:
        if name.endswith(("_ratio", "_weight", "_penalty", "_factor", "_sigma", "_margin", "_cost", "_mean")):
            assert getattr(DEFAULTS, name) >= 0.0, name


def test_counts_are_positive_integers():
    for name in ("max_enumerated_ends", "max_region_ends", "least_confident_listed"):
        assert getattr(DEFAULTS, name) >= 1, name
    assert DEFAULTS.territory_candidates >= 0  # 0: off


def test_emerging_roots_are_thinner_than_ordinary_roots():
    # "thinner roots (a left portal vein, an inferior right hepatic vein)": a lower radius ratio
    assert DEFAULTS.emerging_root_ratio < DEFAULTS.root_radius_ratio
    # radius bins "this factor apart (1: off)": a factor above 1 would not make bins of thinner vessels
    assert 0.0 < DEFAULTS.radius_bin_factor <= 1.0


def test_confidence_model_has_one_weight_per_feature():
    from livervessels.split_confidence import FEATURES

    assert len(DEFAULTS.confidence_model.weights) == len(FEATURES)


# ---------------------------------------------------------------- SplitBranches


def _graph(*voxel_lists) -> VesselGraph:
    branches = [Branch(index=i, voxels=np.asarray(v, np.int64), nodes=(-1, -1), length_mm=float(len(v)),
                       radii_mm=np.ones(len(v)), mean_hu=None, is_terminal=True)
                for i, v in enumerate(voxel_lists)]
    return VesselGraph(shape=(16, 16, 16), spacing=(1.0, 1.0, 1.0), skeleton=np.zeros((16, 16, 16), bool),
                       radius_mm=np.zeros((16, 16, 16), np.float32), branches=branches, nodes=[])


def _branches(graph, offset, **kw) -> SplitBranches:
    n = len(graph.branches)
    labels = np.full(n, split_types.PORTAL, np.uint8)
    return SplitBranches(graph=graph, offset=np.asarray(offset, np.int64), labels=labels, confidence=np.ones(n),
                         parent=np.full(n, -1), **kw)


def test_input_voxels_on_the_input_grid_add_the_crop_offset():
    b = _branches(_graph([[0, 0, 0], [1, 2, 3]], [[4, 4, 4]]), offset=[5, 6, 7])
    assert np.array_equal(b.input_voxels(0), [[5, 6, 7], [6, 8, 10]])
    assert np.array_equal(b.input_voxels(1), [[9, 10, 11]])
    assert np.array_equal(b.scale, [1, 1, 1]) and np.array_equal(b.origin, [0, 0, 0])


def test_input_voxels_on_a_finer_working_grid():
    # input index = (graph index + offset) // scale + origin, worked by hand:
    #   (0,0,0)+(2,0,1) = (2,0,1)  // (2,2,3) = (1,0,0) + (10,20,30) = (11,20,30)
    #   (1,1,1)+(2,0,1) = (3,1,2)  // (2,2,3) = (1,0,0) + (10,20,30) = (11,20,30)  a repeat
    #   (5,3,5)+(2,0,1) = (7,3,6)  // (2,2,3) = (3,1,2) + (10,20,30) = (13,21,32)
    graph = _graph([[0, 0, 0], [1, 1, 1], [5, 3, 5]])
    b = _branches(graph, offset=[2, 0, 1], scale=np.array([2, 2, 3]), origin=np.array([10, 20, 30]))
    out = b.input_voxels(0)
    assert np.array_equal(out, [[11, 20, 30], [11, 20, 30], [13, 21, 32]])
    assert np.issubdtype(out.dtype, np.integer)
    assert np.array_equal(graph.branches[0].voxels, [[0, 0, 0], [1, 1, 1], [5, 3, 5]])  # not changed in place


def test_default_scale_and_origin_are_not_shared_between_instances():
    a = _branches(_graph([[0, 0, 0]]), offset=[0, 0, 0])
    b = _branches(_graph([[0, 0, 0]]), offset=[0, 0, 0])
    a.scale[:] = 2
    a.origin[:] = 7
    assert np.array_equal(b.scale, [1, 1, 1]) and np.array_equal(b.origin, [0, 0, 0])
    assert b.evidence is None


def test_replace_sets_scale_and_origin_as_the_finer_grid_split_does():
    b = _branches(_graph([[3, 3, 3]]), offset=[1, 1, 1])
    moved = dataclasses.replace(b, scale=np.array([2, 2, 2]), origin=np.array([4, 0, 8]))
    assert np.array_equal(moved.input_voxels(0), [[6, 2, 10]])  # (4,4,4)//2 + (4,0,8)
    assert np.array_equal(b.input_voxels(0), [[4, 4, 4]])


# ---------------------------------------------------------------- the plain containers


def test_labelling_and_split_results_hold_what_they_are_given():
    labels = np.zeros((2, 2, 2), np.uint8)
    unreached = np.zeros((2, 2, 2), bool)
    lab = Labelling(labels, unreached, {"method": "geodesic"})
    assert lab.labels is labels and lab.unreached is unreached and lab.qc == {"method": "geodesic"}
    assert lab.skeleton_labels is None and lab.branches is None
    split = PortalHepaticSplit(labels, None, {"flags": []})
    assert split.labels is labels and split.skeleton_labels is None and split.qc == {"flags": []}
    assert split.branches is None and split.seeds is None
