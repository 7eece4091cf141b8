#!/usr/bin/env bash
# One check of the CUDA path on a lent GPU machine, under 10 minutes (issue 18):
#   1. the `gpu` tests with the book's sample files present; any skip fails the check
#   2. classify end to end against the book's loop and timm on the GPU (bench_classify.py --device cuda)
#   3. zebrafy end to end against the book's code on the GPU, every precision and --compile
#   4. a Ray run with a GPU actor (rows equal the local engine's)
#   5. out of memory: a huge picture with zebrafy --size 0, alone and with the GPU's memory capped
# (time limits: 150 + 150 + 100 + 90 + 60 s) and prints a markdown block to paste into benchmarks/README.md. No internet is needed.
#
#   bash benchmarks/gpu_check.sh [VENV]     # VENV: a virtual environment to use (default: .venv, made if missing)
#   DEVICE=cuda:1 bash benchmarks/gpu_check.sh
set -u -o pipefail

cd "$(dirname "$0")/.." || exit 2
VENV=${1:-.venv}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-benchmarks/results/gpu-check-$(date +%Y%m%d-%H%M%S)}
SHARED=${PTM_SHARED_DATA:-../shared/data}
mkdir -p "$OUT"
status=0
fail() { echo "FAILED: $*" | tee -a "$OUT/summary.txt"; status=1; }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || exit 2
    "$VENV/bin/pip" install -q -e '.[test,openvino,ray]' || exit 2  # from a local wheel cache when offline
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PTM_OFFLINE=1 PTM_SHARED_DATA="$SHARED"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "no CUDA device here: nothing to check"; exit 2; }
for sample in bobby.jpg horse.jpg; do
    [ -f "$SHARED/$sample" ] || fail "$SHARED/$sample is missing: the gpu tests would skip"
done

echo "== 1. gpu tests (no skips allowed)"
TORCH_DEVICE=$DEVICE timeout 150 python -m pytest -q -m gpu -rs tests/ >"$OUT/gpu-tests.txt" 2>&1
rc=$?
tail -n 5 "$OUT/gpu-tests.txt"
[ "$rc" -eq 0 ] || fail "gpu tests exit $rc (see $OUT/gpu-tests.txt)"
grep -q "SKIPPED" "$OUT/gpu-tests.txt" && fail "a gpu test skipped: $(grep SKIPPED "$OUT/gpu-tests.txt" | head -n 3)"
grep -Eq "[0-9]+ passed" "$OUT/gpu-tests.txt" || fail "no gpu test ran"

echo "== 2. classify against the book and timm on $DEVICE"
python -c "import timm" 2>/dev/null || fail "timm is not installed: the timm peer cannot run (pip install timm)"
timeout 150 python benchmarks/bench_classify.py --device "$DEVICE" --images 128 --batch-size 64 --repeats 2 \
    | tee "$OUT/bench-classify-cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "bench_classify.py --device $DEVICE"

echo "== 3. zebrafy against the book on $DEVICE"
timeout 100 python benchmarks/gpu_check.py zebrafy --device "$DEVICE" --images 32 | tee "$OUT/zebrafy-cuda.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "zebrafy on $DEVICE"

echo "== 4. Ray with a GPU actor"
timeout 90 python benchmarks/gpu_check.py ray --device "$DEVICE" | tee "$OUT/ray-gpu.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "ray with a GPU actor"

echo "== 5. out of GPU memory"
timeout 60 python benchmarks/gpu_check.py oom --device "$DEVICE" | tee "$OUT/oom.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "out-of-memory handling"

echo
echo "== paste into benchmarks/README.md"
{
    echo "## GPU check ($(date +%Y-%m-%d), benchmarks/gpu_check.sh, \`$OUT/\`)"
    echo
    python benchmarks/gpu_check.py env
    echo
    echo '```'
    grep -E "passed|failed" "$OUT/gpu-tests.txt" | tail -n 1
    grep -E "^(book|ptm|timm|-- )|img/s" "$OUT/bench-classify-cuda.txt" | head -n 20
    cat "$OUT/zebrafy-cuda.txt" "$OUT/ray-gpu.txt" "$OUT/oom.txt"
    echo '```'
    [ "$status" -eq 0 ] && echo "All five checks passed." || echo "Some checks FAILED: see summary.txt."
} | tee "$OUT/readme-block.md"
exit "$status"
