#!/usr/bin/env bash
# Build the MONAI Application Package (needs Docker):  scripts/package_map.sh [extra packager options]
# The packager copies only the application folder and the folders given with --add, and installs the
# application folder's requirements.txt, so we assemble exactly that under build/map first.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(python3 -c "import re;print(re.search(r'__version__ = \"(.+)\"', open('livervessels/__init__.py').read())[1])")
rm -rf build/map && mkdir -p build/map/lib
cp -r app build/map/app && cp requirements.txt build/map/app/requirements.txt
cp -r livervessels operators build/map/lib/
find build/map -name __pycache__ -prune -exec rm -rf {} +
[ "${ASSEMBLE_ONLY:-0}" = 1 ] && { echo "assembled build/map"; exit 0; }
exec monai-deploy package build/map/app -c app.yaml -t "livervessels:${version}" --platform x86_64 \
  -m models --add build/map/lib "$@"
