#!/usr/bin/env bash
# Open a run's results over its CT in a local OHIF viewer (Orthanc + OHIF on 127.0.0.1):
#   scripts/view.sh OUTPUT_DIR [INPUT_STUDY]
# INPUT_STUDY: the DICOM study folder the run read, or the CT NIfTI of a NIfTI run. Prints the URL to
# open; Ctrl-C stops the viewer and Orthanc. Needs Debian's orthanc + orthanc-dicomweb and npm
# (scripts/setup.sh installs them); OHIF is fetched once into ~/.cache/livervessels.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/pacs_viewer.py "$@"
