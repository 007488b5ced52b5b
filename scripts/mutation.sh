#!/usr/bin/env bash
# Mutation testing of the core modules named in pyproject.toml [tool.mutmut] (mutmut 3):
#   bash scripts/mutation.sh                    # runs, rechecks the survivors, then prints the score per module
#   bash scripts/mutation.sh "livervessels.outputs.staging.*"   # only the mutants matching these patterns
#   RECHECK_K="not demo" bash scripts/mutation.sh ...   # leave the module's slow tests out of the recheck
#   RECHECK_ONLY=1 bash scripts/mutation.sh ...   # after new tests: recheck the survivors, no mutmut run
#   RECHECK_JOBS=2 bash scripts/mutation.sh ...   # two rechecks at a time
#   SAMPLE=300 bash scripts/mutation.sh "livervessels.enhancement.*"   # a random sample of 300 mutants per
#       module (SAMPLE=300,150: sizes per module in name order; SAMPLE_SEED, default 20261207), scored
#       alone: for modules with thousands of mutants. With RECHECK_ONLY=1 the sample's mutants that
#       mutmut's run did not reach (stopped early) are checked like survivors, against the module's tests;
#       SAMPLE_FIRST=20,150: only the first mutants of each module's draw, in drawn order (a smaller
#       sample than drawn, the draw unchanged)
# Results are cached in mutants/ (git-ignored); `mutmut show NAME` prints one mutant's diff.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c "import mutmut" 2>/dev/null || .venv/bin/python -m pip install -q "mutmut==3.8.1"
# mutmut keeps its coverage pass (which tests call which function) and reruns it only for new tests:
# after a module joins [tool.mutmut], every old test would count as calling none of its functions
# ("no tests"), and a module copied into mutants/ before it joined stays unmutated. A changed
# [tool.mutmut] section therefore starts from scratch.
config_hash=$(sed -n '/^\[tool.mutmut\]/,/^\[/p' pyproject.toml | sha256sum | cut -c1-16)
if [ -d mutants ] && [ "$(cat mutants/.config-hash 2>/dev/null)" != "$config_hash" ]; then
    rm -rf mutants
fi
if [ -n "${SAMPLE:-}" ]; then
    # mutmut makes every mutant at the start of a run: a run whose pattern matches none makes them
    # and tests nothing; then a seeded sample of each module's mutants (matching the patterns given)
    # replaces the patterns, and the score below counts the sample only.
    .venv/bin/mutmut run "livervessels.no_such_module.*" >/dev/null 2>&1 || true
    .venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, fnmatch, random, re, sys
sizes, seed, patterns = [int(n) for n in sys.argv[1].split(",")], int(sys.argv[2]), sys.argv[4:] or ["*"]
by_module = collections.defaultdict(list)
for line in sys.stdin:
    m = re.match(r"\s*(([\w.]+)\.x\S*__mutmut_\d+): ", line)
    if m and any(fnmatch.fnmatch(m.group(1), p) for p in patterns):
        by_module[m.group(2)].append(m.group(1))
first = [int(n) for n in sys.argv[3].split(",")] if sys.argv[3] else None
rng = random.Random(seed)  # one generator through the modules in name order
for i, module in enumerate(sorted(by_module)):
    names, size = sorted(by_module[module]), sizes[min(i, len(sizes) - 1)]
    drawn = rng.sample(names, min(size, len(names)))
    print("\n".join(drawn[:first[min(i, len(first) - 1)]] if first else drawn))
' "$SAMPLE" "${SAMPLE_SEED:-20261207}" "${SAMPLE_FIRST:-}" "$@" > mutants/.sample
    # an empty sample would leave no names, and a mutmut run without names runs every mutant
    [ -s mutants/.sample ] || { echo "SAMPLE: no mutants match the patterns given" >&2; exit 2; }
    set -- $(cat mutants/.sample)
fi
# one worker: with two, a killed mutant was once reported as surviving
if [ -z "${RECHECK_ONLY:-}" ]; then
    .venv/bin/mutmut run --max-children "${JOBS:-1}" "$@" >/dev/null 2>&1 || true
fi
echo "$config_hash" > mutants/.config-hash
# mutmut runs, for each mutant, only the tests its coverage pass saw calling the function, and that
# pass misses callers (LabelMasks.__getitem__ called from a test was credited only to a test calling
# it from worker threads): such mutants are reported as surviving although the module's own test
# file fails on them. Each survivor, and each mutant whose function no test was seen calling, is
# rerun against tests/test_<module>.py with mutmut's switch.
# RECHECK_JOBS (default 1) rechecks run side by side: each is its own pytest process with its own mutant.
.venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, concurrent.futures, os, re, subprocess, sys
count = collections.defaultdict(collections.Counter)
# A survivor runs its whole test file: where that file also runs a network for a minute, every
# survivor costs that minute; RECHECK_K drops such tests from the recheck (fewer kills, never more).
rk = os.environ.get("RECHECK_K", "")
recheck_k = f" and ({rk})" if rk else ""
def recheck(name, module):
    test_file = "tests/test_" + module.rpartition(chr(46))[2] + ".py"
    env = {**os.environ, "MUTANT_UNDER_TEST": name}
    run = subprocess.run([os.path.abspath(".venv/bin/python"), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                          "-k", "not test_app_" + recheck_k, test_file], cwd="mutants", env=env, capture_output=True, timeout=600)
    verdict = "killed on recheck" if run.returncode in (1, 2) else "survived"  # 2: the mutant broke collection
    if verdict == "survived":
        print("survived:", name, file=sys.stderr)
    return verdict

sample = set(open("mutants/.sample").read().split()) if os.environ.get("SAMPLE") else None
pending = []
with concurrent.futures.ThreadPoolExecutor(int(os.environ.get("RECHECK_JOBS", "1"))) as pool:
    for line in sys.stdin:
        m = re.match(r"\s*(([\w.]+)\.x\S*__mutmut_\d+): (.+)", line)
        if not m:
            continue
        name, module, verdict = m.group(1), m.group(2), m.group(3).strip()
        if sample is not None and name not in sample:
            continue
        # "no tests": the coverage pass saw no caller; "not checked" in a sample: the mutmut run stopped
        # before it (a sample of a slow module can be finished with RECHECK_ONLY=1)
        if verdict in ("survived", "no tests") or (sample is not None and verdict == "not checked"):
            pending.append((module, pool.submit(recheck, name, module)))
        else:
            count[module][verdict] += 1
    for module, verdict in pending:
        count[module][verdict.result()] += 1
print("| module | mutants | killed | killed on recheck | timeout | survived | score (killed / tested) |")
print("|---|---|---|---|---|---|---|")
for module, c in sorted(count.items()):
    killed, recheck, timeout, survived = c["killed"], c["killed on recheck"], c["timeout"], c["survived"]
    tested = killed + recheck + timeout + survived
    if not tested:  # not run this time (patterns given)
        continue
    score = f"{(killed + recheck + timeout) / tested:.0%}"
    print(f"| {module} | {tested} | {killed} | {recheck} | {timeout} | {survived} | {score} |")
'
