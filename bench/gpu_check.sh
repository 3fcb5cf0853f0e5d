#!/usr/bin/env bash
# Every GPU check of LLM Atlas in ONE run, on a CUDA machine without streamlit,
# in under 8 minutes on one H200 (worst case, every stage at its limit: ~7 min):
#   1. the attention benchmark first (the targets: ours vs SDPA flash and cuDNN, bf16,
#      head_dim 64/128, causal and not; naive only at N=1k), each case written as it
#      finishes; then the block-size sweep on its own budget     <= ATTN_BUDGET_S (250 s)
#   2. the GPU-marked tests (Triton kernels vs float64 references on CUDA, fp16/bf16,
#      odd shapes, backward), summarised from pytest's junit XML  <= TESTS_S (100 s)
#   3. every other benchmark module that sets GPU_CHECK_ARGS     <= REST_BUDGET_S (70 s)
# Modules with GPU_CHECK_SKIP (or in run_all.KNOWN_SKIPS, e.g. bench/llm.py: its model
# file cannot travel to the GPU machine) are recorded as skipped with the reason.
# Writes one JSON, gpu-check-cuda.json, under $OUT when set (else bench/results/),
# rewritten after every stage, and prints a short table last. Commit that file under
# bench/results/: pages show it as "recorded on <device>, <date>".
#
#   bash bench/gpu_check.sh             # the real run (needs CUDA)
#   bash bench/gpu_check.sh --dry-run   # no GPU needed: walks the whole CUDA plan, validates
#                                       # every config, writes the bundle with every case
#                                       # "not run", runs no kernel; exit 0 only if the real
#                                       # run could start every case. Writes under $OUT, else
#                                       # a fresh temporary folder (never over bench/results/).
# The commit is read with git, else taken from $ATLAS_COMMIT (the GPU machine gets the
# working tree without .git: ATLAS_COMMIT=$(git rev-parse --short HEAD) bash bench/gpu_check.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=0
[[ "${1:-}" == "--dry-run" ]] && DRY_RUN=1
ATTN_BUDGET_S="${ATTN_BUDGET_S:-250}"
TESTS_S="${TESTS_S:-100}"
REST_BUDGET_S="${REST_BUDGET_S:-70}"
if [[ $DRY_RUN == 1 ]]; then OUT_DIR="${OUT:-$(mktemp -d -t atlas-gpu-dry-run-XXXXXX)}"; else OUT_DIR="${OUT:-bench/results}"; fi
mkdir -p "$OUT_DIR"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [[ -z "${PYTHON:-}" && -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [[ -z "${ATLAS_COMMIT:-}" ]]; then
  ATLAS_COMMIT="$(git rev-parse --short HEAD 2>/dev/null || true)"
fi
export ATLAS_COMMIT
BUNDLE="$OUT_DIR/gpu-check-cuda.json"
TESTS_CMD="timeout -s INT -k 10 $TESTS_S $PY -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors --ignore=tests/pages --ignore=tests/browser --ignore=tests/app --ignore=tests/load --junitxml $WORK/gpu-tests.xml tests"
RUN_ALL=("$PY" -m bench.run_all --gpu --out "$WORK" --runs "$WORK/runs.json" --bundle "$BUNDLE"
         --tests-xml "$WORK/gpu-tests.xml")

if [[ $DRY_RUN == 1 ]]; then
  echo "=== dry run: the CUDA plan of every stage, validated; no kernel runs ==="
  "${RUN_ALL[@]}" --dry-run --tests-command "$TESTS_CMD"
  rc=$?
  echo "bundle: $BUNDLE"
  exit $rc
fi

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)"; then
  echo "gpu_check: no CUDA device visible to $PY (bash bench/gpu_check.sh --dry-run checks the plan)" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

echo "=== 1/3 attention benchmark (targets first, then the sweep) ==="
"${RUN_ALL[@]}" --only attention --budget-s "$ATTN_BUDGET_S" --no-table

echo "=== 2/3 GPU tests ==="
# SIGINT first: pytest stops like on Ctrl-C and still writes its junit XML.
$TESTS_CMD 2>&1 | tail -40

echo "=== 3/3 other benchmarks ==="
"${RUN_ALL[@]}" --skip attention --budget-s "$REST_BUDGET_S"
