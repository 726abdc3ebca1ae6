#!/bin/sh
# bench_eval_vs_ort.sh — float evaluation speed of ddqc beside ONNX Runtime on the same models, in
# one sitting: for each configuration bench_train writes the float model (random weights) as ONNX
# with its timed batch (--onnx_dir), then ddqc's evaluation (bench_train --eval_only: BatchNorm
# folded into the convolutions) and ONNX Runtime's (scripts/bench_ort.js on the same batch, graph
# optimisations on) run alternately ROUNDS times; medians and their ratio.
#
#   scripts/bench_eval_vs_ort.sh [ROUNDS (3)] [configs ...]
#   config = model:width:variant:input:batch:threads; the default is the three models of issue 12:
#   mnv2:1.0:s1x3:cifar:64:2 resnet20:-:-:cifar:64:2 mnv2:0.5:s1x2:fmnist:250:2 (the main model)
#
# ONNX Runtime runs our export (nn/onnx.c: BatchNorm folded in double, NHWC input transposed once
# inside the graph) — the architectures of bench/torch_reference.py layer for layer. Needs an
# otherwise idle machine and ONNX Runtime (scripts/ensure-deps.sh onnxruntime).
# Output: a Markdown table; RESULT lines on stderr.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
[ $# -gt 0 ] && shift
configs=${*:-"mnv2:1.0:s1x3:cifar:64:2 resnet20:-:-:cifar:64:2 mnv2:0.5:s1x2:fmnist:250:2"}
scripts/ensure-deps.sh onnxruntime >&2
make -s build/release/bench/bench_train >&2
dir=$(mktemp -d /tmp/bench_eval_vs_ort.XXXXXX)
trap 'rm -rf "$dir"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '| model | input | batch | threads | ddqc eval img/s | ONNX Runtime img/s | ddqc / ORT |\n'
printf '|---|---|---|---|---|---|---|\n'
for c in $configs; do
  IFS=: read -r model width variant input batch threads <<EOF2
$c
EOF2
  args="--model=$model --input=$input --batch=$batch --threads=$threads --eval_only --budget=4"
  [ "$model" = mnv2 ] && args="$args --width=$width --variant=$variant"
  sub=$dir/$(echo "$c" | tr ':' '_')
  mkdir -p "$sub"
  build/release/bench/bench_train $args --onnx_dir="$sub" >/dev/null 2>&1 ||
    { echo "bench_eval_vs_ort.sh: error: bench_train $args failed" >&2; exit 1; }
  onnx=$(ls "$sub"/*.onnx)
  ours=""; theirs=""
  i=0
  while [ $i -lt "$rounds" ]; do
    o=$(build/release/bench/bench_train $args 2>&1 >/dev/null | sed -n 's/^RESULT.* eval_img_s=\([0-9.]*\).*/\1/p')
    t=$(node scripts/bench_ort.js "$onnx" "$onnx.check" --batch="$batch" --threads="$threads" --reps=15 |
      sed -n 's/.*img_s=\([0-9.]*\).*/\1/p')
    ours="$ours $o"; theirs="$theirs $t"
    i=$((i + 1))
  done
  mo=$(echo $ours | tr ' ' '\n' | median); mt=$(echo $theirs | tr ' ' '\n' | median)
  name=$(basename "$onnx" .onnx)
  awk -v n="$name" -v inp="$input" -v b="$batch" -v th="$threads" -v o="$mo" -v t="$mt" \
    'BEGIN {printf "| %s | %s | %s | %s | %.0f | %.0f | %.2f |\n", n, inp, b, th, o, t, o / t}'
  echo "RESULT bench_eval_vs_ort model=$name input=$input batch=$batch threads=$threads ddqc_img_s=$mo ort_img_s=$mt rounds=$rounds ddqc_runs=\"$ours\" ort_runs=\"$theirs\"" >&2
done
