#!/usr/bin/env bash
# Mutation testing of the core modules named in pyproject.toml [tool.mutmut] (mutmut 3):
#   bash scripts/mutation.sh        # runs, then prints the score per module
# Results are cached in mutants/ (git-ignored); `mutmut show NAME` prints one mutant's diff.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c "import mutmut" 2>/dev/null || .venv/bin/python -m pip install -q "mutmut==3.8.1"
# one worker: with two, a killed mutant was once reported as surviving
.venv/bin/mutmut run --max-children "${JOBS:-1}" >/dev/null 2>&1 || true
.venv/bin/mutmut results --all true | .venv/bin/python -c '
import collections, re, sys
count = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    m = re.match(r"\s*([\w.]+)\.x.*__mutmut_\d+: (.+)", line)
    if m:
        count[m.group(1)][m.group(2).strip()] += 1
print("| module | mutants | killed | timeout | survived | no tests | score (killed+timeout / tested) |")
print("|---|---|---|---|---|---|---|")
for module, c in sorted(count.items()):
    killed, timeout, survived, untested = c["killed"], c["timeout"], c["survived"], c["no tests"]
    tested = killed + timeout + survived
    score = f"{(killed + timeout) / tested:.0%}" if tested else "-"
    print(f"| {module} | {sum(c.values())} | {killed} | {timeout} | {survived} | {untested} | {score} |")
'
