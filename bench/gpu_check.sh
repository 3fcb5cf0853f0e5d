#!/usr/bin/env bash
# Every GPU check of LLM Atlas in ONE run, on a CUDA machine without streamlit,
# in under 8 minutes on one H200:
#   1. the GPU-marked tests (Triton kernels vs float64 references on CUDA,
#      fp16/bf16, odd shapes, backward), summarised from pytest's junit XML;
#   2. every benchmark module in bench/ that sets GPU_CHECK_ARGS.
# Writes one JSON, gpu-check-cuda.json, under $OUT when set (else
# bench/results/), and prints a short table last. Commit that file under
# bench/results/: pages show it as "recorded on <device>, <date>".
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-bench/results}"
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  echo "gpu_check: no CUDA device visible to $PY" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "=== 1/2 GPU tests ==="
timeout 150 "$PY" -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors \
  --ignore=tests/pages --ignore=tests/browser --ignore=tests/app --ignore=tests/load \
  --junitxml "$WORK/gpu-tests.xml" tests 2>&1 | tail -40

echo "=== 2/2 benchmarks ==="
"$PY" -m bench.run_all --gpu --out "$WORK" --budget-s 300 \
  --tests-xml "$WORK/gpu-tests.xml" --bundle "$OUT_DIR/gpu-check-cuda.json"
