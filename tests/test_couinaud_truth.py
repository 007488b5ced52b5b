"""Ground-truth Couinaud segments of the realistic phantoms (livervessels.synthetic.couinaud_truth)."""
from __future__ import annotations

import numpy as np
import pytest

from livervessels.couinaud import couinaud_segments
from livervessels.synthetic.couinaud_truth import landmarks_of, main_vein_of_nodes, true_landmarks, true_segments
from livervessels.synthetic.realistic import make_realistic_phantom, realistic_trees
from livervessels.synthetic.vascular_tree import VascularTree

SEED = 1006  # a tuning seed


def test_every_node_takes_the_main_branch_it_hangs_from():
    # 0 (root, on "a") - 1 ("a") - 2 (grown) - 3 (grown); 1 - 4 ("b") - 5 (grown); 6: a root of its own
    points = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0], [1, 1, 0], [1, 2, 0], [9, 9, 9]], float)
    tree = VascularTree(points, np.array([-1, 0, 1, 2, 1, 4, -1]), np.ones(7), 1)
    names = main_vein_of_nodes(tree, points[[0, 1, 4]], ["a", "a", "b"])
    assert list(names) == ["a", "a", "a", "a", "b", "b", ""]


@pytest.fixture(scope="module")
def phantom():
    return make_realistic_phantom(SEED, "normal")


def test_landmarks_follow_couinauds_order_and_do_not_need_the_image(phantom):
    lm = true_landmarks(phantom)
    # right hepatic vein to the right-front, middle to the front, then the umbilical point and the left vein
    assert -30.0 < lm.right_hv_deg < lm.middle_hv_deg < lm.umbilical_deg < lm.left_hv_deg < 200.0
    assert lm.middle_hv_deg - lm.right_hv_deg > 30.0
    assert lm.hilum_mm[2] < lm.confluence_z_mm  # the bifurcation lies below the hepatic vein confluence
    portal, hepatic, anat, _ = realistic_trees(SEED)
    assert landmarks_of(anat, portal, hepatic) == lm


def test_the_truth_labels_the_whole_liver_in_eight_plausible_segments(phantom):
    seg = true_segments(phantom)
    liver = phantom.support()["liver"]
    assert np.array_equal(seg > 0, liver)
    share = np.bincount(seg[liver], minlength=9)[1:] / liver.sum()
    assert (share > 0.005).all()  # every segment present
    assert share[[6, 7]].sum() > share[[4, 5]].sum()  # this family's bifurcation sits low: VII+VIII > V+VI


def test_the_method_finds_the_truths_segments_from_the_true_veins(phantom):
    support = phantom.support()
    result = couinaud_segments(support["liver"], phantom.vessel_tree == 1, phantom.vessel_tree == 2, support["ivc"],
                               phantom.affine, portal_trunk=support["portal_vein"])
    truth = true_segments(phantom)
    merged = lambda a: np.where(a == 4, 3, a)  # noqa: E731  (III and IV: see couinaud_truth)
    a, t = merged(result.labels), merged(truth)
    dice = [2 * ((a == s) & (t == s)).sum() / ((a == s).sum() + (t == s).sum()) for s in (1, 2, 3, 5, 6, 7, 8)]
    assert np.mean(dice) > 0.85, dice
