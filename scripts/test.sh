#!/usr/bin/env bash
# Set up (if needed) and run the test suite:  bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  # pytest's "no tests collected": nothing failed, so not a failure of the code under test.
  echo "pytest collected no tests (exit 5)" >&2
  exit 0
fi
exit "$rc"
