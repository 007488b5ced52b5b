"""What the portal/hepatic split takes and gives: the tree labels, its parameters (SplitParams) and
its results (SplitBranches, PortalHepaticSplit). Shared by the split's modules (livervessels.portal_hepatic
and its split_* parts)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from livervessels.split_confidence import DEFAULT_MODEL, ConfidenceModel
from livervessels.vessel_graph import VesselGraph

PORTAL, HEPATIC = 1, 2


TREE_NAMES = {PORTAL: "portal", HEPATIC: "hepatic"}


# A component no tree reached takes the label of the nearest labelled vessel: a label with no path
# evidence, so a coin's confidence (0.25 was below chance: of such branches on the realistic
# tuning phantoms' network masks, 42 % were right; validation 64 %)
UNREACHED_CONFIDENCE = 0.5


@dataclass
class Labelling:
    """What a labelling method (the graph split or the geodesic fallback) hands back, on the cropped
    working grid: voxel labels, the mask voxels no seed reached, its QC figures, and for the graph
    split the centerline labels and the branch-level state (offset and origin still to be set)."""

    labels: np.ndarray  # uint8 0/1/2
    unreached: np.ndarray  # bool: vessel voxels that neither tree reached
    qc: dict
    skeleton_labels: np.ndarray | None = None
    branches: SplitBranches | None = None


@dataclass
class SplitBranches:
    """Branch-level result of the graph split (for statistics and benchmarks).

    The graph lives on a crop of the working grid, which is the input grid or, for coarse voxels,
    the input grid subdivided `scale` times per axis: input voxel index =
    (graph voxel index + offset) // scale + origin."""

    graph: VesselGraph
    offset: np.ndarray  # (3,) int, crop start on the working grid
    labels: np.ndarray  # (n_branches,) uint8 0/1/2
    confidence: np.ndarray  # (n_branches,) float in [0, 1]
    parent: np.ndarray  # (n_branches,) int: the branch each was reached from (-1: a seed or unreached)
    scale: np.ndarray = field(default_factory=lambda: np.ones(3, np.int64))  # (3,) int
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3, np.int64))  # (3,) int, on the input grid
    # the evidence behind each confidence: split_confidence.EVIDENCE name -> (n_branches,) array
    evidence: dict[str, np.ndarray] | None = None

    def input_voxels(self, branch: int) -> np.ndarray:
        """(n, 3) input-grid voxel indices of a branch's centerline (repeats on a finer working grid)."""
        return (self.graph.branches[branch].voxels + self.offset) // self.scale + self.origin


@dataclass
class PortalHepaticSplit:
    labels: np.ndarray  # uint8 on the input grid: 0 background, 1 portal, 2 hepatic
    skeleton_labels: np.ndarray | None  # uint8 centerline voxels with their label, when computed
    qc: dict  # portal_hepatic_split_qc
    branches: SplitBranches | None = None  # the labelled centerline graph, when computed
    seeds: np.ndarray | None = None  # uint8 on the input grid: 1 portal / 2 hepatic seed voxels used


@dataclass(frozen=True)
class SplitParams:
    """Physical parameters of the split (millimetres, degrees, dimensionless costs)."""

    # working grid: coarser voxels are subdivided so thin vessels get a clean centerline
    max_working_spacing_mm: float = 1.0
    # seeds
    seed_distance_mm: float = 3.0  # vessel voxels this close to the portal vein / IVC are seeds
    dome_window_mm: float = 40.0  # hepatic seeds: IVC contacts within this of the most superior one
    seed_radius_ratio: float = 0.7  # IVC contacts of vessels thinner than this x the thickest contact are not roots
    seed_reach_mm: float = 6.0  # a contact's vessel thickness: largest radius within this of the contact
    root_radius_ratio: float = 0.8  # portal roots: branches near the contact at least this x the thickest
    hepatic_root_ratio: float = 0.35  # hepatic roots: at least this x the thickest (thin portal vessels brush the IVC)
    emerging_root_ratio: float = 0.4  # thinner roots (a left portal vein, an inferior right hepatic vein) when
    emerging_lumen_fraction: float = 0.6  # ... they emerge from the portal vein / IVC: joined through lumen this
    # fraction of their own radius wide (a vessel merely touching it is joined through a narrow waist)
    emerging_min_radius_mm: float = 2.0  # ... and at least this thick (first-order portal branches, hepatic trunks)
    root_cost_weight: float = 3.0  # such a root costs this x ln(thickest root radius / its radius)
    # centerline graph and junction explanation
    spur_ratio: float = 1.0  # terminal branches not longer than this x the junction radius are wall bumps
    direction_reach_mm: float = 9.0  # branch axis at a junction: measured over this much centerline
    axis_sigma_mm: float = 1.5  # scale of the CT Hessian giving the vessel axis (0: centerline voxels only)
    angle_scale_deg: float = 60.0  # a child leaving its parent's flow at this angle costs 1
    radius_log_sigma: float = 0.15  # relative radius noise (plus half a voxel of measurement error)
    end_penalty: float = 2.0  # a branch ending on another vessel: as costly as a child leaving at ~85 deg
    trifurcation_penalty: float = 2.0  # three children at one junction (two close bifurcations)
    axis_offset_weight: float = 1.0  # weight of the axis-offset term (vessels touch, they do not interpenetrate)
    max_enumerated_ends: int = 8  # exact partition search up to this many branches at a junction
    max_region_ends: int = 8  # junctions close together join one region up to this many branch ends
    upstream_weight: float = 1.0  # cost of growing into a vessel thicker than the path so far
    radial_weight: float = 3.0  # cost of leaving a junction straight back towards the tree's root
    radial_reach_mm: float = 20.0  # near a root "away from it" is ill-defined: the cost x d / (d + this)
    radius_bin_factor: float = 0.6  # trees grow thick vessels first, in radius bins this factor apart (1: off)
    contrast_phase: str | None = None  # the scan's (livervessels.contrast_phase), when known: for the intensity cue
    tree_intensity_weight: float = 0.5  # weight of the scan's portal / hepatic HU difference (where it shows one)
    orphan_climb_ratio: float = 2.5  # a vessel reached only through vessels this many times thinner is cut off
    orphan_min_radius_mm: float = 2.0  # ... from its own tree (a gap) when at least this thick: it roots itself,
    orphan_distance_ratio: float = 0.67  # ... in the tree whose root is nearer (this x the other's distance; else not)
    intensity_root_min_radius_mm: float = 2.0  # a branch this thick whose own HU speaks for the other tree
    intensity_root_log_odds: float = 3.0  # ... with log-odds at least this (0: off) roots itself there
    intensity_root_cost: float = 0.0  # ... at this cost
    intensity_root_min_length_mm: float = 5.0  # ... when this long (a stub at a junction mixes both trees' HU)
    # a subtree changes tree when its HU evidence beats its attachment by this (0: off)
    subtree_flip_margin: float = 3.0
    subtree_flip_mean: float = 1.0  # ... and its branches' mean log-odds for the other tree reach this
    # one tree missing from a region of the liver (split_territory): both trees reach everywhere
    territory_block_mm: float = 3.0  # measured on blocks about this size
    territory_far_mm: float = 30.0  # liver this far from every branch of one tree ...
    territory_far_ratio: float = 6.0  # ... (for the flag: or this x the median distance from the liver to any vessel;
    territory_search_ratio: float = 4.0  # ... for the search for roots that give a region its tree back: this x)
    territory_near_mm: float = 15.0  # ... and this close to the other's lacks the first tree
    territory_min_fraction: float = 0.05  # flagged when such liver is at least this share of the liver
    # branches tried as a root of the missing tree there (0: off): those whose growth subtree holds
    # territory_subtree_share of the region's branches, weakest link first
    territory_candidates: int = 5
    territory_subtree_share: float = 0.2
    territory_return_share: float = 0.3  # a root is kept when at most this share of the region stays without its tree
    territory_hu_support: float = 2.0  # ... and the branches it moves carry this many nats of HU log-odds for it
    # branches of the present tree there: confidence at most this x (1 - the region's share of the liver)
    # (1: off; 0.7: the share right of such branches over the flagged tuning cases, 0.46-0.85)
    territory_confidence: float = 0.7
    # confidence: a model of P(label right | evidence), fitted on synthetic livers (split_confidence)
    confidence_model: ConfidenceModel = DEFAULT_MODEL
    # QC
    low_confidence: float = 0.6  # branches below this confidence are counted as low confidence
    seed_failure_fraction: float = 0.05  # a class with a smaller share of the vessel voxels failed
    seed_failure_confidence: float = 0.25  # the case's confidence is at most this when a class failed
    least_confident_listed: int = 5  # branches listed in the QC, least confident first
