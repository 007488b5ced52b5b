#!/usr/bin/env bash
# Both phantom tables of the Couinaud / contrast-phase section of the README in one command:
#   bash bench/couinaud_phase_tables.sh          # about 15 min on 2 cores
# (bench/couinaud_realistic.py --set final, then bench/contrast_phase.py; each prints its table and
# writes its JSON under bench/results/.)
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python bench/couinaud_realistic.py --set final "$@"
.venv/bin/python bench/contrast_phase.py
