#!/usr/bin/env bash
# Build the MONAI Application Package (needs Docker):
#   scripts/package_map.sh --weights DIR [extra packager options]
# DIR holds TotalSegmentator's official weights in their own layout (DatasetNNN_*/trainer/fold_0/...);
# they are checked and baked into the MAP, which refuses to run on the demo model. Without --weights
# the MAP carries only the demo model and runs only with LIVERVESSELS_ALLOW_DEMO_MODEL=1 (trials on
# the demo study).
# The packager copies only the application folder and the folders given with --add, and installs the
# application folder's requirements.txt, so we assemble exactly that under $MAP_BUILD_DIR first
# (ASSEMBLE_ONLY=1 stops there; scripts/map_layout.py uses it to rebuild the MAP's layout without Docker).
set -euo pipefail
cd "$(dirname "$0")/.."
weights=""
if [ "${1:-}" = "--weights" ]; then
  weights="${2:?--weights needs a folder}"
  shift 2
fi
python=${PYTHON:-.venv/bin/python}
build=${MAP_BUILD_DIR:-build/map}
version=$("$python" -c "import re;print(re.search(r'__version__ = \"(.+)\"', open('livervessels/__init__.py').read())[1])")
rm -rf "$build" && mkdir -p "$build/lib"
cp -r app "$build/app" && cp requirements.txt "$build/app/requirements.txt"
cp -r livervessels operators "$build/lib/"
rm -rf "$build/lib/livervessels/synthetic"  # test/benchmark tools (phantoms, metrics), not part of the application
find "$build" -name __pycache__ -prune -exec rm -rf {} +
[ "${ASSEMBLE_ONLY:-0}" = 1 ] && { echo "assembled $build"; exit 0; }
if [ -n "$weights" ]; then
  # the same check the app makes at start-up, with the demo model refused
  "$python" - "$weights" <<'PY' || exit 2
import sys
from livervessels.errors import InputError
from livervessels.model_plan import check_official_weights
try:
    check_official_weights(sys.argv[1])
except InputError as exc:
    sys.exit(f"error: {exc}")
PY
  models="$weights"
else
  echo "warning: no --weights: the MAP holds only the demo model and refuses to run without LIVERVESSELS_ALLOW_DEMO_MODEL=1" >&2
  models=models
fi
exec monai-deploy package "$build/app" -c app.yaml -t "livervessels:${version}" --platform x86_64 \
  -m "$models" --add "$build/lib" "$@"
