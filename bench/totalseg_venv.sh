#!/usr/bin/env bash
# Builds bench/.venv-totalseg: TotalSegmentator 2.18.0 in a venv of its own, for the parity and
# speed comparisons in bench/ (research use). It never touches the project's .venv.
#
#   bash bench/totalseg_venv.sh            # create (or complete) the venv
#   bash bench/totalseg_venv.sh --check    # only check that it imports, offline
#
# Versions: TotalSegmentator resolves nnU-Net trainer classes by importing every trainer module,
# and some of those import timm -> torchvision. PyPI's torchvision does not load beside the
# project's torch 2.13 CPU build ("operator torchvision::nms does not exist"), so this venv uses the
# matching pair torch==2.14.1 / torchvision==0.29.1 (on this machine's local wheel store; the pip
# constraints file caps torch at 2.14.1). nnunetv2, numpy, scipy, nibabel, SimpleITK and the
# network packages are pinned to the versions in the project's .venv, so both engines run the same
# nnU-Net and the same scipy resampling code.
#
# TotalSegmentator must never reach the internet: bench/parity_totalseg.py and
# bench/inference_speed.py run it with TOTALSEG_HOME_DIR pointing at a temporary folder that holds a
# config.json with "send_usage_stats": false (TotalSegmentator 2.18 config.py only posts usage
# statistics when that key is true) and the stand-in weights under nnunet/results (weights whose
# folder exists are never downloaded). The check below does the same.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TOTALSEG_VENV:-$ROOT/bench/.venv-totalseg}"
PROJECT_PY="$ROOT/.venv/bin/python"
TS_VERSION="2.18.0"
TORCH_PAIR=("torch==2.14.1" "torchvision==0.29.1")

check() {
  local home
  home="$(mktemp -d)"
  printf '{"totalseg_id": "totalseg_offline_bench", "send_usage_stats": false, "prediction_counter": 0, "statistics_disclaimer_shown": true}\n' >"$home/config.json"
  mkdir -p "$home/nnunet/results"
  # Run from the temporary folder: the repository root holds a totalsegmentator/ package of its
  # own (this project's compatibility shim) that would shadow the real one on sys.path.
  (cd "$home" && TOTALSEG_HOME_DIR="$home" "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import torch, torchvision  # noqa: F401  (torchvision must load: the trainer lookup imports it)
from totalsegmentator.config import setup_nnunet, get_config
setup_nnunet()
import totalsegmentator.nnunet  # noqa: F401  (imports nnunetv2 and TotalSegmentator's custom trainers)
cfg = get_config()
assert cfg is not None and cfg["send_usage_stats"] is False, cfg
print("TotalSegmentator", md.version("TotalSegmentator"), "| nnunetv2", md.version("nnunetv2"),
      "| torch", torch.__version__, "| torchvision", torchvision.__version__, "| usage stats off")
EOF
  )
  rm -rf "$home"
}

if [[ "${1:-}" == "--check" ]]; then
  check
  exit 0
fi

if [[ ! -x "$PROJECT_PY" ]]; then
  echo "project venv missing: $PROJECT_PY" >&2
  exit 1
fi
# The same interpreter as the project's venv (3.11).
BASE_PY="$("$PROJECT_PY" -c 'import sys; print(sys._base_executable)')"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$BASE_PY" -m venv "$VENV"
fi

# Pins taken from the project's venv, so both engines share nnU-Net and the numerics libraries.
mapfile -t PINS < <("$PROJECT_PY" - <<'EOF'
import importlib.metadata as md
for name in ("nnunetv2", "dynamic_network_architectures", "acvl_utils", "batchgenerators",
             "batchgeneratorsv2", "numpy", "scipy", "nibabel", "SimpleITK", "timm"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        pass
EOF
)
echo "installing totalsegmentator==$TS_VERSION ${TORCH_PAIR[*]} ${PINS[*]}"
"$VENV/bin/python" -m pip install --quiet "totalsegmentator==$TS_VERSION" "${TORCH_PAIR[@]}" "${PINS[@]}" \
  2> >(grep -v "^WARNING: Location 'file:" >&2)
check
