#!/bin/sh
# bench.sh — what `make bench` runs: GEMM GFLOP/s beside OpenBLAS, training/eval throughput of the
# models, and the cost of a quantized training step against FP32. Run it on an otherwise idle
# machine; compare with PyTorch through scripts/bench_vs_torch.sh (same sitting, alternating).
#   BENCH_QUICK=1 scripts/bench.sh    one batch size and thread count, shorter budgets
set -eu
cd "$(dirname "$0")/.."
b=${BUILD:-build/release}/bench
quick=${BENCH_QUICK:-0}
echo "## GEMM"
echo
if [ "$quick" = 1 ]; then "$b/bench_gemm" --reps=7 2>/dev/null; else "$b/bench_gemm" 2>/dev/null; fi
echo
echo "## Training and evaluation throughput (random data, 32x32x3 input; MobileNetV2 w1.0/w0.5 s1x3/s1x2, ResNet-20)"
echo
if [ "$quick" = 1 ]; then
  "$b/bench_train" --variant=both --batch=64 --threads=2 --budget=4 2>/dev/null
else
  "$b/bench_train" --variant=both 2>/dev/null
fi
echo
echo "## Quantized training step against FP32 (MobileNetV2 w0.5 s1x2, 28x28x1, batch 128, 2 threads)"
echo
echo "| method | phase | train img/s | step vs FP32 |"
echo "|---|---|---|---|"
common="--model=mnv2 --width=0.5 --variant=s1x2 --input=fmnist --batch=128 --threads=2 --budget=8"
rate() { "$b/bench_train" $common "$@" 2>&1 >/dev/null | sed -n 's/.*train_img_s=\([0-9.]*\).*/\1/p'; }
fp32=$(rate --quant=none)
echo "| FP32 | - | $fp32 | 1.00 |"
for run in "ddq joint" "ddq frozen" "lsq joint" "pact joint"; do
  set -- $run
  r=$(rate --quant="$1" --phase="$2")
  label=$2; [ "$1" != ddq ] && label=-
  awk -v m="$1" -v p="$label" -v r="$r" -v f="$fp32" 'BEGIN {printf "| %s | %s | %.1f | %.2f |\n", m, p, r, f / r}'
done
