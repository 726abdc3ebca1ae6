#!/bin/sh
# bench_vs_base.sh — training/eval throughput of this checkout beside an earlier commit's, in the
# same sitting: the base commit is built in a git worktree (build/base-COMMIT, left for the next
# run), and the two bench_train binaries run alternately ROUNDS times per configuration; medians
# and their ratio. For the targets stated against "today's main" (issue 12: the main model's
# training ≥ 1.5× that of commit 57b521e).
#
#   scripts/bench_vs_base.sh COMMIT [ROUNDS (3)] [configs ...]
#   config = model:width:variant:input:batch:threads, default mnv2:0.5:s1x2:fmnist:128:2 (the main model)
#
# Output: a Markdown table and RESULT lines (stderr); needs an otherwise idle machine.
set -eu
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench_vs_base.sh COMMIT [ROUNDS] [model:width:variant:input:batch:threads ...]}
rounds=${2:-3}
[ $# -gt 1 ] && shift 2 || shift $#
configs=${*:-"mnv2:0.5:s1x2:fmnist:128:2"}
commit=$(git rev-parse --short=12 "$base^{commit}") ||
  { echo "bench_vs_base.sh: error: $base is not a commit of this repository" >&2; exit 2; }
dir=build/base-$commit
if [ ! -x "$dir/build/release/bench/bench_train" ]; then
  [ -d "$dir" ] || git worktree add --detach "$dir" "$commit" >&2
  make -s -C "$dir" build/release/bench/bench_train >&2
fi
make -s build/release/bench/bench_train >&2
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
printf '| model | batch | threads | base (%s) train img/s | this train img/s | train ratio | base eval img/s | this eval img/s | eval ratio |\n' "$commit"
printf '|---|---|---|---|---|---|---|---|---|\n'
for c in $configs; do
  IFS=: read -r model width variant input batch threads <<EOF
$c
EOF
  args="--model=$model --batch=$batch --threads=$threads --budget=4"
  [ "$model" = mnv2 ] && args="$args --width=$width --variant=$variant --input=$input"
  : >/tmp/bvb.$$.bt; : >/tmp/bvb.$$.be; : >/tmp/bvb.$$.tt; : >/tmp/bvb.$$.te
  for r in $(seq "$rounds"); do
    # shellcheck disable=SC2086
    "$dir/build/release/bench/bench_train" $args 2>&1 >/dev/null | grep '^RESULT' >/tmp/bvb.$$.line
    field train_img_s </tmp/bvb.$$.line >>/tmp/bvb.$$.bt; field eval_img_s </tmp/bvb.$$.line >>/tmp/bvb.$$.be
    # shellcheck disable=SC2086
    build/release/bench/bench_train $args 2>&1 >/dev/null | grep '^RESULT' >/tmp/bvb.$$.line
    field train_img_s </tmp/bvb.$$.line >>/tmp/bvb.$$.tt; field eval_img_s </tmp/bvb.$$.line >>/tmp/bvb.$$.te
  done
  bt=$(median </tmp/bvb.$$.bt); be=$(median </tmp/bvb.$$.be); tt=$(median </tmp/bvb.$$.tt); te=$(median </tmp/bvb.$$.te)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a / b}'; }
  name=$model$([ "$model" = mnv2 ] && echo "-w$width-$variant-$input" || true)
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$batch" "$threads" "$bt" "$tt" "$(ratio "$tt" "$bt")" "$be" "$te" "$(ratio "$te" "$be")"
  echo "RESULT bench_vs_base base=$commit config=$c rounds=$rounds base_train_img_s=$bt train_img_s=$tt base_eval_img_s=$be eval_img_s=$te" >&2
done
rm -f /tmp/bvb.$$.*
