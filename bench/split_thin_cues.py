"""Diagnostic: where the split's errors on the realistic family's true masks are, and whether cues
the split does not use would tell the trees apart there (README, "Cues tried against those errors").

    .venv/bin/python bench/split_thin_cues.py                       # tuning seeds 1000-1002, normal
    .venv/bin/python bench/split_thin_cues.py --seeds 1000 --condition hard

Per seed: the split on the phantom's true vessel mask, each branch of its own graph given the
phantom's majority tree. Reported:
  - wrong branches, and the islands they form: each wrong branch followed up its growth links to
    the branch where the wrong tree entered; for how many wrong branches the right tree's
    branch most strongly linked to that entry is itself wrong (or missing);
  - two subtree moves the split does not make, scored against the truth: move a grown subtree to
    the other tree where (a) its best junction link to that tree is cheaper than the link it was
    grown over by more than a margin, or (b) the summed strength -ln(1 - q) of its links to the
    other tree beats that of its links to its own (a Potts border energy) by that margin;
  - two per-branch cues on thin branches (core radius under 1.2 mm): the branch's orientation
    against the direction from each tree's root (the tree whose radial direction it follows more
    closely), and the nearer tree's thick vessels (radius at least 1.5, 2 or 3 mm).
Tuning seeds only (the family's seed sets: bench/split_realistic.py). Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
from scipy import spatial

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from livervessels.portal_hepatic import SplitParams, split_portal_hepatic  # noqa: E402
from livervessels.split_growth import branch_core_radius, link_costs  # noqa: E402
from livervessels.split_junctions import junction_affinities  # noqa: E402
from livervessels.synthetic.realistic import make_realistic_phantom  # noqa: E402

from results_provenance import provenance  # noqa: E402

MARGINS = (0.0, 1.0, 2.0, 3.0)
THICK_MM = (1.5, 2.0, 3.0)
THIN_MM = 1.2


def analyse(seed: int, condition: str) -> dict:
    ph = make_realistic_phantom(seed, condition)
    p = SplitParams()
    split = split_portal_hepatic(ph.vessel_mask, ph.ct, ph.spacing, affine=ph.affine, params=p, **ph.support())
    br = split.branches
    g = br.graph
    nb = len(g.branches)
    sp = np.asarray(g.spacing)
    truth = np.zeros(nb, int)
    for b in range(nb):
        t = ph.vessel_tree[tuple(br.input_voxels(b).T)]
        t = t[t > 0]
        truth[b] = np.bincount(t, minlength=3).argmax() if len(t) else 0
    lab, par = br.labels, br.parent
    rad = branch_core_radius(g)
    edges, _ = junction_affinities(g, p)
    link = link_costs(edges)
    strength: dict[tuple[int, int], float] = {}
    for _, a, b, q in edges:
        if a != b:
            k = (min(a, b), max(a, b))
            strength[k] = max(strength.get(k, 0.0), -np.log(max(1 - q, 1e-6)))
    nbrs = collections.defaultdict(list)
    for (a, b), c in link.items():
        nbrs[a].append((b, c))
        nbrs[b].append((a, c))
    known = (truth > 0) & (lab > 0)
    wrong = known & (truth != lab)

    # islands: each wrong branch's entry, and whether the right tree's best-linked neighbour is right
    entries = collections.Counter()
    for b in np.flatnonzero(wrong):
        x = b
        while par[x] >= 0 and truth[par[x]] == truth[b]:
            x = par[x]
        entries[x] += 1
    right_neighbour_wrong = 0
    for x, n in entries.items():
        alts = sorted((c, y) for y, c in nbrs[x] if truth[y] == truth[x])
        if not alts or lab[alts[0][1]] != truth[alts[0][1]]:
            right_neighbour_wrong += n

    # subtree moves by local link evidence
    kids = collections.defaultdict(list)
    for b, a in enumerate(par):
        if a >= 0:
            kids[a].append(b)
    moves = []
    for b in range(nb):
        if par[b] < 0 or lab[b] == 0:
            continue
        members = [b]
        stack = list(kids[b])
        while stack:
            x = stack.pop()
            members.append(x)
            stack.extend(kids[x])
        inside, other = set(members), 3 - lab[b]
        border = [(x, y, c) for x in members for y, c in nbrs[x] if y not in inside]
        best = min((c for _, y, c in border if lab[y] == other), default=np.inf)
        own = link.get((min(par[b], b), max(par[b], b)), 0.0)
        pull = sum(strength.get((min(x, y), max(x, y)), 0.0) for x, y, _ in border if lab[y] == other)
        hold = sum(strength.get((min(x, y), max(x, y)), 0.0) for x, y, _ in border if lab[y] == lab[b])
        m = np.array(members)
        m = m[truth[m] > 0]
        gain = int((truth[m] == other).sum() - (truth[m] == lab[b]).sum())
        moves.append((own - best, pull - hold, gain))

    # per-branch cues on thin branches
    roots = {}
    for t in (1, 2):
        ids = np.flatnonzero((par < 0) & (lab == t))
        ids = ids[np.argsort(-rad[ids])][:3]
        roots[t] = np.vstack([g.branches[i].voxels for i in ids]).mean(0) * sp
    def tree_of(t: int, thr: float) -> spatial.cKDTree:
        ids = np.flatnonzero((lab == t) & (rad >= thr))
        return spatial.cKDTree(np.vstack([g.branches[i].voxels for i in ids]) * sp)

    thick = {thr: {t: tree_of(t, thr) for t in (1, 2)} for thr in THICK_MM}
    thin = []
    for b in np.flatnonzero(known & (rad < THIN_MM)):
        v = g.branches[b].voxels * sp
        d = v[-1] - v[0]
        length = np.linalg.norm(d)
        orient = None
        if len(v) >= 3 and length >= 3.0:
            mid = v.mean(0)
            cos = {t: abs((d / length) @ (mid - roots[t])) / np.linalg.norm(mid - roots[t]) for t in (1, 2)}
            orient = 1 if cos[1] > cos[2] else 2
        near = {thr: 1 if np.median(tr[1].query(v)[0]) < np.median(tr[2].query(v)[0]) else 2
                for thr, tr in thick.items()}
        thin.append((int(truth[b]), int(lab[b]), orient, near))
    return {"seed": seed, "condition": condition, "branches": int(known.sum()), "wrong": int(wrong.sum()),
            "entries": len(entries), "wrong_with_right_neighbour_wrong_or_missing": right_neighbour_wrong,
            "moves": moves, "thin": thin}


def summary(results: list[dict]) -> dict:
    moves = np.array([m for r in results for m in r["moves"]], float).reshape(-1, 3)
    out = {"per_seed": [{k: r[k] for k in ("seed", "condition", "branches", "wrong", "entries",
                                           "wrong_with_right_neighbour_wrong_or_missing")} for r in results]}
    for name, col in (("cheaper_link", 0), ("potts_border", 1)):
        rows = []
        for margin in MARGINS:
            sel = moves[:, col] > margin
            gain = moves[sel, 2]
            rows.append({"margin": margin, "subtrees": int(sel.sum()), "better": int((gain > 0).sum()),
                         "worse": int((gain < 0).sum()), "net_branches": int(gain.sum())})
        out[name] = rows
    thin = [t for r in results for t in r["thin"]]
    split_right = np.array([t[0] == t[1] for t in thin])
    oriented = [t for t in thin if t[2] is not None]
    out["thin_branches"] = len(thin)
    out["thin_split_accuracy"] = round(float(split_right.mean()), 3)
    out["orientation_accuracy"] = round(float(np.mean([t[2] == t[0] for t in oriented])), 3)
    out["nearer_thick_vessel"] = {
        str(thr): {"accuracy": round(float(np.mean([t[3][thr] == t[0] for t in thin])), 3),
                   "on_split_errors": round(float(np.mean([t[3][thr] == t[0] for t, ok in zip(thin, split_right)
                                                           if not ok])), 3)}
        for thr in THICK_MM}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    ap.add_argument("--condition", default="normal")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "split_thin_cues.json"))
    args = ap.parse_args(argv)
    results = [analyse(s, args.condition) for s in args.seeds]
    out = summary(results)
    for r in out["per_seed"]:
        print(f"seed {r['seed']} {r['condition']}: {r['wrong']} of {r['branches']} branches wrong, entered at "
              f"{r['entries']} points; for {r['wrong_with_right_neighbour_wrong_or_missing']} the right tree's "
              "best-linked neighbour of the entry is wrong too (or missing)")
    for name in ("cheaper_link", "potts_border"):
        print(f"subtree move by {name}:  margin  subtrees  better  worse  net branches")
        for row in out[name]:
            print(f"    {row['margin']:>24.1f}  {row['subtrees']:8d}  {row['better']:6d}  {row['worse']:5d}  "
                  f"{row['net_branches']:12d}")
    print(f"thin branches (< {THIN_MM} mm): {out['thin_branches']}, split right {out['thin_split_accuracy']}; "
          f"orientation cue right {out['orientation_accuracy']}")
    for thr, v in out["nearer_thick_vessel"].items():
        print(f"    nearer thick vessel (>= {thr} mm): right {v['accuracy']}, "
              f"on the split's errors {v['on_split_errors']}")
    out.update(seeds=args.seeds, condition=args.condition, provenance=provenance())
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
