#!/usr/bin/env bash
# Set-up on a fresh machine: .venv in the repository root with the project and its dependencies.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77"  # SPDX licence string (pyproject)
.venv/bin/python -m pip install -q -r requirements.txt pytest psutil pyarrow trimesh  # psutil: benchmarks; pyarrow: cohort.parquet; trimesh: mesh checks in the tests
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# dciodvfy (Debian dicom3tools) validates the DICOM SEG in the tests.
if ! command -v dciodvfy >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools) >/dev/null \
      || echo "warning: could not install dicom3tools; the DICOM SEG validation test will be skipped" >&2
  else
    echo "note: install dicom3tools (dciodvfy) to run the DICOM SEG validation test" >&2
  fi
fi
