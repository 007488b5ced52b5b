#!/usr/bin/env bash
# Run the built MAP on a DICOM study folder, as an orchestrator would (needs Docker and, for the GPU,
# the NVIDIA container toolkit):
#   scripts/run_map.sh INPUT_DIR OUTPUT_DIR [IMAGE] [extra `monai-deploy run` options]
# IMAGE defaults to the name scripts/package_map.sh gives the image for this version. The MAP refuses
# the demo model; for a trial of a MAP built without --weights, export LIVERVESSELS_ALLOW_DEMO_MODEL=1
# (passed into the container).
set -euo pipefail
cd "$(dirname "$0")/.."
input=$(realpath "${1:?input folder}")
output=$(realpath -m "${2:?output folder}")
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' livervessels/__init__.py)
image=${3:-livervessels-x64-workstation-dgpu-linux-amd64:${version}}
shift $(( $# < 3 ? $# : 3 ))
mkdir -p "$output"
if [ -n "${LIVERVESSELS_ALLOW_DEMO_MODEL:-}" ]; then
  # monai-deploy run has no option for extra variables: run the container directly, as it would
  exec docker run --rm --gpus all -e LIVERVESSELS_ALLOW_DEMO_MODEL="$LIVERVESSELS_ALLOW_DEMO_MODEL" \
    -v "$input":/var/holoscan/input:ro -v "$output":/var/holoscan/output "$image" "$@"
fi
exec .venv/bin/monai-deploy run "$image" -i "$input" -o "$output" "$@"
