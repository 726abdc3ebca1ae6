#!/bin/sh
# bench.sh — what `make bench` runs: GEMM GFLOP/s beside OpenBLAS, training/eval throughput of the
# models, the cost of a quantized training step against FP32, and the integer engine against FP32
# evaluation (with the int8 GEMM against its peak), then — when installed — PyTorch training and
# ONNX Runtime evaluation on the same models side by side. Run it on an otherwise idle
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
scripts/bench_qstep.sh "$([ "$quick" = 1 ] && echo 1 || echo 3)"
echo
echo "## Integer inference against FP32 evaluation (DDQ W4A4, levels snapped; 2 threads) and the int8 GEMM"
echo
if [ "$quick" = 1 ]; then "$b/bench_infer" --reps=3 --budget=0.2 2>/dev/null; else "$b/bench_infer" 2>/dev/null; fi
echo
echo "## Against PyTorch and ONNX Runtime (same sitting, alternating rounds; each when installed)"
echo
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  scripts/bench_vs_torch.sh "$([ "$quick" = 1 ] && echo 1 || echo 3)" mnv2:1.0:s1x3:64:2 resnet20:-:-:64:2
else
  echo "(PyTorch not installed: apt-get install python3-torch python3-torchvision, then scripts/bench_vs_torch.sh)"
fi
echo
if node -e "require('./scripts/node_modules/onnxruntime-node')" >/dev/null 2>&1; then
  scripts/bench_eval_vs_ort.sh "$([ "$quick" = 1 ] && echo 1 || echo 3)" 2>/dev/null
else
  echo "(ONNX Runtime not installed: scripts/ensure-deps.sh onnxruntime, then scripts/bench_eval_vs_ort.sh)"
fi
