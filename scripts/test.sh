#!/usr/bin/env bash
# Set up (if needed) and run the test suite:  bash scripts/test.sh [pytest options]
# TEST_WORKERS (default 2) test processes share the modules (pytest-xdist, a whole module per
# process so module fixtures are made once); much of the suite waits on subprocesses, servers and a
# browser, so two processes on two cores finish in about 0.7x the time of one. TEST_WORKERS=1: serial.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=${TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 1 ] && [ "$workers" != 0 ]; then
  parallel=(-n "$workers" --dist loadfile)
fi
set +e
.venv/bin/python -m pytest "${parallel[@]}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  # pytest's "no tests collected": nothing failed, so not a failure of the code under test.
  echo "pytest collected no tests (exit 5)" >&2
  exit 0
fi
exit "$rc"
