#!/bin/sh
# bench_vs_torch.sh — training/eval throughput of ddqc beside PyTorch on the same machine, in
# the same sitting: for each configuration the two programs run alternately ROUNDS times and the
# medians are compared as a ratio (machines are shared and drift; medians of alternating runs
# are what we quote).
#
#   scripts/bench_vs_torch.sh [ROUNDS (3)] [configs ...]
#   config = model:width:variant:batch:threads, e.g. mnv2:1.0:s1x3:64:2 resnet20:-:-:64:2
#
# Needs PyTorch (apt-get install python3-torch python3-torchvision) and, for PyTorch's best
# setting, tcmalloc (libtcmalloc-minimal4). The PyTorch side is bench/torch_reference.py (the same
# architectures as our builders; $TORCH_REF to use another script).
# Output: a Markdown table; the raw runs go to build/bench_vs_torch.log.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
[ $# -gt 0 ] && shift
configs=${*:-"mnv2:1.0:s1x3:64:2 resnet20:-:-:64:2"}
ref=${TORCH_REF:-bench/torch_reference.py}
[ -f "$ref" ] || { echo "bench_vs_torch.sh: error: $ref not found (set TORCH_REF)" >&2; exit 1; }
/usr/bin/python3 -c "import torch" 2>/dev/null ||
  { echo "bench_vs_torch.sh: error: PyTorch missing; run: sudo apt-get install -y python3-torch python3-torchvision" >&2; exit 1; }
tc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
preload=""
[ -f "$tc" ] && preload=$tc
make -s build/release/bench/bench_train >/dev/null
log=build/bench_vs_torch.log
: >"$log"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '| model | batch | threads | ours train img/s | torch train img/s | train ratio | ours eval img/s | torch eval img/s | eval ratio | ours RSS MB | torch RSS MB |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for c in $configs; do
  IFS=: read -r model width variant batch threads <<EOF2
$c
EOF2
  ours_args="--model=$model --batch=$batch --threads=$threads --budget=10"
  torch_args="--model $model --batch $batch --threads $threads --channels-last --budget 10"
  if [ "$model" = mnv2 ]; then
    ours_args="$ours_args --width=$width --variant=$variant"
    torch_args="$torch_args --width $width --variant $variant"
  fi
  ot=""; oe=""; tt=""; te=""; orss=""; trss=""
  i=0
  while [ $i -lt "$rounds" ]; do
    line=$(build/release/bench/bench_train $ours_args 2>&1 >/dev/null | grep '^RESULT')
    echo "ours $c: $line" >>"$log"
    ot="$ot $(echo "$line" | sed 's/.*train_img_s=\([0-9.]*\).*/\1/')"
    oe="$oe $(echo "$line" | sed 's/.*eval_img_s=\([0-9.]*\).*/\1/')"
    orss=$(echo "$line" | sed 's/.*rss_mb=\([0-9]*\).*/\1/')
    json=$(LD_PRELOAD=$preload /usr/bin/python3 "$ref" $torch_args 2>/dev/null | tail -1)
    echo "torch $c: $json" >>"$log"
    tt="$tt $(echo "$json" | sed 's/.*"train_img_s": \([0-9.]*\).*/\1/')"
    te="$te $(echo "$json" | sed 's/.*"eval_img_s": \([0-9.]*\).*/\1/')"
    trss=$(echo "$json" | sed 's/.*"rss_after_train_mb": \([0-9]*\).*/\1/')
    i=$((i + 1))
  done
  mot=$(echo $ot | tr ' ' '\n' | median); moe=$(echo $oe | tr ' ' '\n' | median)
  mtt=$(echo $tt | tr ' ' '\n' | median); mte=$(echo $te | tr ' ' '\n' | median)
  name=$model; [ "$model" = mnv2 ] && name="mnv2 w$width $variant"
  awk -v n="$name" -v b="$batch" -v t="$threads" -v ot="$mot" -v tt="$mtt" -v oe="$moe" -v te="$mte" -v orss="$orss" -v trss="$trss" \
    'BEGIN {printf "| %s | %s | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %s | %s |\n", n, b, t, ot, tt, ot/tt, oe, te, oe/te, orss, trss}'
done
