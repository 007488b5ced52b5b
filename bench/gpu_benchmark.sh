#!/usr/bin/env bash
# One-command GPU benchmark: TotalSegmentator 2.18 and this project side by side, same input, same
# stand-in weights in the official layout (research use; no official weights needed).
#
#   bash bench/gpu_benchmark.sh              # on a machine with an NVIDIA GPU: 512x512x300 CT
#   bash bench/gpu_benchmark.sh --dry-run    # tiny CT on the CPU: checks that every step still runs
#
# Steps: the project's .venv (scripts/setup.sh, if missing); TotalSegmentator 2.18 in its own venv
# (bench/totalseg_venv.sh; needs the package index once); stand-in weights (bench/standin_weights.py:
# random nnU-Net-sized networks for timing, demo-derived ones for the full run); then
# bench/inference_speed.py times, for each engine, `-ta total` (5 parts, 117 masks written),
# `--fast --ml`, `-ta liver_vessels`, and this project's full liver-vessel run DICOM -> SEG
# (support labels from total + liver_vessels + repair + split + SEG), with peak host memory (PSS of
# the process tree) and peak VRAM (nvidia-smi, and torch's own count for the in-process engine).
# Writes bench/results/gpu_benchmark.json (dry run: build/gpu_benchmark_dry_run.json) and prints
# the table. Budget: under 10 minutes on one H100-class GPU once the venvs and weights exist (build
# them on a CPU machine first: `bash bench/gpu_benchmark.sh --prepare`).
#
# Options: --dry-run, --prepare (venvs, weights and the input only), --skip-ts (this project only),
# --runs "total fast_ml liver_vessels enhanced" (a subset).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
DRY=0
PREPARE=0
SKIP_TS=0
RUNS="total fast_ml liver_vessels enhanced"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    --skip-ts) SKIP_TS=1 ;;
    --runs) RUNS="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see bash bench/gpu_benchmark.sh --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ ! -x "$PY" ]]; then
  bash scripts/setup.sh
fi

if [[ $DRY == 1 ]]; then
  DEVICE=cpu
  SHAPE=(40 40 24)   # 120 mm cube: a few 64^3 tiles at 1.5 mm, enough phantom liver to repair and split
  SPACING=(3.0 3.0 5.0)
  JSON="$ROOT/build/gpu_benchmark_dry_run.json"
  TIMEOUT=900
else
  DEVICE=gpu
  SHAPE=(512 512 300)
  SPACING=(0.8 0.8 1.5)
  JSON="$ROOT/bench/results/gpu_benchmark.json"
  TIMEOUT=600
  if [[ $PREPARE == 0 ]] && ! command -v nvidia-smi >/dev/null; then
    echo "error: no nvidia-smi: this benchmark needs an NVIDIA GPU (use --dry-run to check it on the CPU)" >&2
    exit 2
  fi
fi

ENGINES=(engine cli ts)
if [[ $SKIP_TS == 1 ]]; then
  ENGINES=(engine cli)
elif [[ ! -x bench/.venv-totalseg/bin/TotalSegmentator ]]; then
  if [[ $DRY == 1 && -n "${CI:-}" ]]; then
    # CI checks this script, not TotalSegmentator's install (a large download): said, not hidden
    echo "dry run in CI: TotalSegmentator 2.18 venv not built, timing this project only" >&2
    ENGINES=(engine cli)
  else
    bash bench/totalseg_venv.sh
  fi
fi

if [[ $DRY == 1 ]]; then
  # tiny random networks: the dry run checks the plumbing, not the speed
  "$PY" bench/standin_weights.py --random --tiny
  WEIGHTS="$ROOT/build/standin_weights/tiny/nnunet/results"
else
  "$PY" bench/standin_weights.py --random
  WEIGHTS="$ROOT/build/standin_weights/random/nnunet/results"
fi
"$PY" bench/standin_weights.py

ARGS=(--device "$DEVICE" --weights "$WEIGHTS" --shape "${SHAPE[@]}" --spacing "${SPACING[@]}" --runs $RUNS
      --engines "${ENGINES[@]}" --timeout "$TIMEOUT" --json "$JSON")
if [[ $PREPARE == 1 ]]; then
  ARGS+=(--prepare-only)
fi
"$PY" bench/inference_speed.py "${ARGS[@]}"
