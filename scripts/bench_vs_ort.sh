#!/bin/sh
# bench_vs_ort.sh — our integer engine against ONNX Runtime on the same model, side by side:
#   ddqc integer (exp_infer on model.dqm), ONNX Runtime int8 (model.onnx, our QDQ export) and
#   ONNX Runtime FP32 (fp32.onnx, our float export), batch 1 and 64, 1 and 2 threads; ROUNDS
#   rounds, the three alternating within each; medians. RUN_DIR is a quantized run made with
#   --export_onnx (it holds model.dqm, model.onnx, fp32.onnx and their .check files).
#     scripts/bench_vs_ort.sh runs/mobilenetv2-ddq-snap 5
# Prints a Markdown table and RESULT lines. Needs an otherwise idle machine and ONNX Runtime
# (scripts/ensure-deps.sh onnxruntime).
set -eu
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/bench_vs_ort.sh RUN_DIR [ROUNDS]}
rounds=${2:-5}
for f in model.dqm model.onnx fp32.onnx model.onnx.check fp32.onnx.check; do
  [ -f "$dir/$f" ] || { echo "bench_vs_ort.sh: error: $dir/$f is missing (run the experiment with --export_onnx)" >&2; exit 2; }
done
scripts/ensure-deps.sh onnxruntime >&2
make -s exp_infer >&2
images=960  # the check files hold 1000; a whole number of batches of 64 (at batch 1: the first 192)
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
printf '| batch | threads | ddqc integer img/s | ORT int8 img/s | ORT FP32 img/s | ddqc / ORT int8 | ORT int8 / ORT FP32 |\n|---|---|---|---|---|---|---|\n'
for b in 1 64; do
  for t in 1 2; do
    : >/tmp/bvo.$$.d; : >/tmp/bvo.$$.q; : >/tmp/bvo.$$.f
    n=$([ $b = 1 ] && echo 192 || echo $images)
    for r in $(seq "$rounds"); do
      ./exp_infer --model="$dir/model.dqm" --batch=$b --threads=$t --subset=$n --repeat=3 | sed -n 's/.*img_s=\([0-9]*\).*/\1/p' >>/tmp/bvo.$$.d
      node scripts/bench_ort.js "$dir/model.onnx" "$dir/model.onnx.check" --batch=$b --threads=$t --images=$n | sed -n 's/.*img_s=\([0-9]*\).*/\1/p' >>/tmp/bvo.$$.q
      node scripts/bench_ort.js "$dir/fp32.onnx" "$dir/fp32.onnx.check" --batch=$b --threads=$t --images=$n | sed -n 's/.*img_s=\([0-9]*\).*/\1/p' >>/tmp/bvo.$$.f
    done
    d=$(median </tmp/bvo.$$.d); q=$(median </tmp/bvo.$$.q); f=$(median </tmp/bvo.$$.f)
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' $b $t "$d" "$q" "$f" "$(ratio "$d" "$q")" "$(ratio "$q" "$f")"
    echo "RESULT bench_vs_ort dir=$dir batch=$b threads=$t ddqc_int_img_s=$d ort_int8_img_s=$q ort_fp32_img_s=$f rounds=$rounds" >&2
  done
done
rm -f /tmp/bvo.$$.*
