#!/bin/sh
# bench_vs_ort.sh — ddqc against ONNX Runtime on the same models, side by side in one sitting:
#   MobileNetV2 w0.5 s1x2 (28×28×1) and w1.0 s1x3 (32×32×3) as bench_infer builds them (random
#   weights, quantized at 4 bits with METHOD), batch 1 and 64, 1 and 2 threads: ddqc FP32 and
#   integer evaluation (bench_infer), ONNX Runtime FP32 (our float export) and int8 (our QDQ
#   export as the fused QLinearConv units, exp_infer --onnx_fused). ROUNDS rounds, the four
#   alternating within each; medians.
#     scripts/bench_vs_ort.sh [ROUNDS=3] [METHOD=lsq]
# LSQ's levels are evenly spaced, so the QDQ export needs no level tables (DDQ's learned levels
# do, and ONNX Runtime runs those tables slowly: docs/onnx.md). Prints a Markdown table and RESULT
# lines. Needs an otherwise idle machine and ONNX Runtime (scripts/ensure-deps.sh onnxruntime).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
method=${2:-lsq}
case "$method" in ddq|lsq) ;; *) echo "bench_vs_ort.sh: error: METHOD must be ddq or lsq, not $method" >&2; exit 2 ;; esac
scripts/ensure-deps.sh onnxruntime >&2
make -s build/release/bench/bench_infer >&2
dir=$(mktemp -d /tmp/bench_vs_ort.XXXXXX)
trap 'rm -rf "$dir"' EXIT
bench=build/release/bench/bench_infer
echo "bench_vs_ort.sh: writing the models and their ONNX exports into $dir" >&2
$bench --method="$method" --save="$dir" --reps=1 --budget=0.05 --gemm=false >/dev/null 2>&1
for r in $(seq "$rounds"); do
  echo "bench_vs_ort.sh: round $r of $rounds" >&2
  for t in 1 2; do
    $bench --method="$method" --threads=$t --reps=3 --gemm=false 2>&1 >/dev/null |
      sed -n 's/^RESULT bench=infer model=\([^ ]*\) [^ ]* batch=\([0-9]*\) threads=\([0-9]*\) fp32_img_s=\([0-9]*\) int_img_s=\([0-9]*\).*/\1 \2 \3 \4 \5/p' |
      while read -r m b th f i; do
        echo "$f" >>"$dir/ddqc-fp32.$m.$b.$th"
        echo "$i" >>"$dir/ddqc-int.$m.$b.$th"
      done
    for m in mobilenetv2-w0.5-s1x2 mobilenetv2-w1-s1x3; do
      for b in 1 64; do
        n=$([ $b = 1 ] && echo 64 || echo 256)
        for k in fp32 int8; do
          node scripts/bench_ort.js "$dir/$m-$k.onnx" "$dir/$m-$k.onnx.check" --batch=$b --threads=$t --reps=3 --images=$n |
            sed -n 's/.*img_s=\([0-9]*\).*/\1/p' >>"$dir/ort-$k.$m.$b.$t"
        done
      done
    done
  done
done
median() { sort -n "$1" | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
printf '| model | batch | threads | ddqc FP32 | ddqc integer | ORT FP32 | ORT int8 | ddqc integer / ORT int8 | ddqc integer / ORT FP32 |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for m in mobilenetv2-w0.5-s1x2 mobilenetv2-w1-s1x3; do
  # bench_infer names the second model w1.0
  bm=$([ $m = mobilenetv2-w1-s1x3 ] && echo mobilenetv2-w1.0-s1x3 || echo $m)
  for b in 1 64; do
    for t in 1 2; do
      df=$(median "$dir/ddqc-fp32.$bm.$b.$t"); di=$(median "$dir/ddqc-int.$bm.$b.$t")
      of=$(median "$dir/ort-fp32.$m.$b.$t"); oi=$(median "$dir/ort-int8.$m.$b.$t")
      printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' $bm $b $t "$df" "$di" "$of" "$oi" "$(ratio "$di" "$oi")" "$(ratio "$di" "$of")"
      echo "RESULT bench_vs_ort model=$bm method=$method batch=$b threads=$t ddqc_fp32_img_s=$df ddqc_int_img_s=$di ort_fp32_img_s=$of ort_int8_img_s=$oi rounds=$rounds" >&2
    done
  done
done
