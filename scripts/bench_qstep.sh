#!/bin/sh
# bench_qstep.sh — the cost of a quantized training step against FP32: MobileNetV2 w0.5 s1x2 on
# 28x28x1 inputs, batch 128, 2 threads, W4A4. ROUNDS rounds (default 3), each timing every
# configuration once in turn, so a busy spell hits them alike; the table gives medians.
# DDQ is timed with gates learning (joint) at the 8 bits a run starts from and at the 4-bit
# budget where it spends most steps, and with gates frozen (at the budget, after the guarantee);
# ddq-off: the same joint step with the off-centre merge of DDQ as first built (--ddq_merge_centered=false).
# Run on an otherwise idle machine.   scripts/bench_qstep.sh [ROUNDS]   (BUDGET=s: seconds per timing, 6)
set -eu
cd "$(dirname "$0")/.."
b=${BUILD:-build/release}/bench/bench_train
rounds=${1:-3}
common="--model=mnv2 --width=0.5 --variant=s1x2 --input=fmnist --batch=128 --threads=2 --budget=${BUDGET:-6}"
configs="none:joint:4 ddq:joint:8 ddq:joint:4 ddq-off:joint:4 ddq:frozen:4 lsq:joint:4 pact:joint:4 minmax:joint:4"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
r=1
while [ "$r" -le "$rounds" ]; do
  for c in $configs; do
    IFS=: read -r q p bits <<EOC
$c
EOC
    centred=true
    [ "$q" = ddq-off ] && q=ddq centred=false
    v=$("$b" $common --quant="$q" --phase="$p" --ddq_bits="$bits" --ddq_merge_centered=$centred 2>&1 >/dev/null | sed -n 's/.*train_img_s=\([0-9.]*\).*/\1/p')
    echo "$c $v" >>"$tmp"
  done
  r=$((r + 1))
done
echo "| method | phase | DDQ bits | train img/s (median of $rounds) | step vs FP32 |"
echo "|---|---|---|---|---|"
for c in $configs; do
  med=$(awk -v c="$c" '$1 == c {print $2}' "$tmp" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  [ "$c" = none:joint:4 ] && fp32=$med
  echo "$c $med ${fp32:-$med}"
done | awk '{split($1, a, ":"); m = a[1] == "none" ? "FP32" : a[1]; p = a[1] ~ /^ddq/ ? a[2] : "-"; b = a[1] ~ /^ddq/ ? a[3] : "-"
            printf "| %s | %s | %s | %.1f | %.2f |\n", m, p, b, $2, $3 / $2}'
