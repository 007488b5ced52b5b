#!/usr/bin/env bash
# Set-up on a fresh machine: .venv in the repository root with the project and its dependencies.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip "setuptools>=77"  # SPDX licence string (pyproject)
.venv/bin/python -m pip install -q -r requirements.txt pytest pytest-xdist psutil pyarrow "ray==2.60.0" trimesh jsonschema playwright "ruff==0.17.6"  # psutil: benchmarks; pyarrow: cohort.parquet; ray: TotalSegmentatorBatch --ray; the rest: tests (pytest-xdist: two test processes, scripts/test.sh; playwright drives Debian's chromium, no browser download; ruff: tests/test_style.py)
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# Debian tools the tests use: dciodvfy (dicom3tools) validates the DICOM objects; Orthanc with its
# DICOMweb plugin is the PACS of the round-trip and viewer tests (started by the tests, stopped by
# PID); chromium runs the OHIF viewer headless.
missing=()
command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
[ -x /usr/bin/chromium ] || missing+=(chromium)  # the viewer test (OHIF itself is fetched with npm pack)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # the tests start their own Orthanc on free ports with its own configuration and storage
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
      || echo "warning: could not install ${missing[*]}; the tests that need them fail under CI" >&2
  else
    echo "note: install ${missing[*]} (Debian) to run the DICOM validation and PACS tests" >&2
  fi
fi
