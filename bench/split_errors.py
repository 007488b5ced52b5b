"""Where the portal / hepatic split goes wrong: each wrongly labelled branch traced to the junction
where its tree crossed into the other tree, and that junction classified.

    .venv/bin/python bench/split_errors.py [--seeds 300 ... 319] [--json bench/results/split_errors.json]

Phantoms: make_phantom(seed, vessel_clearance_mm=0) (touching vessels, 1.5 x 1.5 x 2.5 mm), ground-truth
vessel mask, as in the first case of bench/split_accuracy.py. Each branch of the split's own graph
takes the phantom's majority label and the phantom segment nearest its centerline. A wrong branch is
followed up its growth links (SplitBranches.parent) to the first link whose two branches belong to
different trees: the crossing. Its junction region is classified by
  - how many branch ends meet there (3: one vessel end on another vessel, or a bifurcation);
  - whether the true grouping of those ends (same segment, parent and child, or siblings are one
    vessel) leaves an end alone: a vessel ending on the side of another vessel;
  - whether the junction explanation's best grouping already disagreed with the truth ("explanation
    wrong": the local evidence favoured the wrong grouping) or agreed ("growth": the grouping was
    right, but the other tree reached the branch by a cheaper path).
Wrong seed branches are counted apart. Prints the table (wrong branches per category, share) and
writes JSON. Diagnostic only: uses the split's internal junction helpers.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livervessels.portal_hepatic import SplitParams, split_portal_hepatic  # noqa: E402
from livervessels.split_junctions import _axis_offsets, _group_cost, _junction_regions, _partitions, _region_ends  # noqa: E402
from livervessels.synthetic.phantom import LABELS, centerline_distances, make_phantom  # noqa: E402


def nearest_segment(ph, points_mm: np.ndarray) -> int:
    """The phantom segment whose tube surface is nearest to most of these points."""
    r = np.array([s.radius_mm for s in ph.segments])
    d = centerline_distances(points_mm, ph.segments) - r[None]
    return int(np.bincount(np.argmin(d, axis=1), minlength=len(r)).argmax())


def true_grouping(segments: list[int], phantom_segments) -> list[tuple[int, ...]]:
    """Ends whose segments are the same, parent and child, or siblings form one vessel."""
    parent = [phantom_segments[s].parent for s in segments]
    k = len(segments)
    group = list(range(k))

    def find(i):
        while group[i] != i:
            i = group[i]
        return i

    for i in range(k):
        for j in range(i + 1, k):
            si, sj = segments[i], segments[j]
            if si == sj or parent[i] == sj or parent[j] == si or (parent[i] == parent[j] >= 0):
                group[find(i)] = find(j)
    out = collections.defaultdict(list)
    for i in range(k):
        out[find(i)].append(i)
    return [tuple(g) for g in out.values()]


def analyse(seed: int, p: SplitParams) -> dict:
    ph = make_phantom(seed=seed, vessel_clearance_mm=0.0)
    vessels = ph.labels == LABELS["liver_vessels"]
    split = split_portal_hepatic(vessels, ph.ct, ph.spacing, affine=ph.affine, params=p,
                                 liver=ph.labels == LABELS["liver"], ivc=ph.labels == LABELS["inferior_vena_cava"],
                                 portal_vein=ph.labels == LABELS["portal_vein_and_splenic_vein"])
    br = split.branches
    graph = br.graph
    truth = np.where(vessels, ph.vessel_tree, 0)
    true_label = np.array([np.argmax(np.bincount(truth[tuple(br.input_voxels(b.index).T)], minlength=3)[1:]) + 1
                           for b in graph.branches])
    # centerline voxels of the working grid -> input voxel coordinates -> mm
    segment = []
    for b in graph.branches:
        ijk = (b.voxels + br.offset + 0.5) / br.scale - 0.5 + br.origin
        segment.append(nearest_segment(ph, ijk @ ph.affine[:3, :3].T + ph.affine[:3, 3]))
    regions = [_region_ends(graph, nodes, internal, p)
               for nodes, internal in _junction_regions(graph, p.max_region_ends)]
    voxel_mm = float(np.mean(graph.spacing))

    def classify(a: int, b: int) -> str:
        for ends in regions:
            ids = [e[0] for e in ends]
            if a not in ids or b not in ids:
                continue
            k = len(ends)
            truth_part = true_grouping([segment[i] for i in ids], ph.segments)
            lone = any(len(g) == 1 for g in truth_part)
            size = f"{k} ends" if k <= 4 else "5+ ends"
            if k > p.max_enumerated_ends:
                return f"{size}, {'an end on another vessel' if lone else 'bifurcations'}, large region"
            offsets = _axis_offsets(ends) if p.axis_offset_weight > 0 else None
            cache: dict = {}

            def cost(part):
                total = 0.0
                for g in part:
                    if g not in cache:
                        cache[g] = _group_cost(g, ends, p, voxel_mm, None, offsets)
                    total += cache[g]
                return total

            best = min(cost(part) for part in _partitions(tuple(range(k)), 4))
            cause = "explanation wrong" if best < cost(truth_part) - 1e-9 else "growth"
            return f"{size}, {'an end on another vessel' if lone else 'bifurcations'}, {cause}"
        return "no shared junction region"

    wrong = np.flatnonzero((br.labels != true_label) & (br.labels > 0))
    counts: collections.Counter = collections.Counter()
    for x in wrong:
        chain = [int(x)]
        while br.parent[chain[-1]] >= 0:
            chain.append(int(br.parent[chain[-1]]))
        for up, down in zip(chain[1:], chain[:-1]):
            if true_label[up] != true_label[down]:
                counts[classify(up, down)] += 1
                break
        else:
            counts["wrong seed branch"] += 1
    return {"seed": seed, "branches": len(graph.branches), "wrong": int(len(wrong)),
            "branch_accuracy_own_graph": round(float(1 - len(wrong) / max(len(graph.branches), 1)), 4),
            "causes": dict(counts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(300, 320)))
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_errors.json"))
    args = ap.parse_args()
    p = SplitParams()
    rows = []
    for seed in args.seeds:
        rows.append(analyse(seed, p))
        print(f"seed {seed}: {rows[-1]['wrong']} of {rows[-1]['branches']} branches wrong", flush=True)
    total: collections.Counter = collections.Counter()
    for r in rows:
        total.update(r["causes"])
    n_wrong = sum(total.values())
    print(f"\n{n_wrong} wrong branches over seeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)} phantoms), "
          "by the junction where their tree crossed into the other")
    print(f"{'junction where the trees crossed':62s} {'wrong branches':>15s} {'share':>7s}")
    for cause, n in total.most_common():
        print(f"{cause:62s} {n:15d} {n / max(n_wrong, 1):7.2f}")
    out = {"seeds": args.seeds, "wrong_branches": n_wrong, "causes": dict(total.most_common()), "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
