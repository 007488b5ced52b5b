#!/usr/bin/env bash
# Set-up on a fresh machine: .venv in the repository root with the project and its dependencies.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt pytest
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
