#!/bin/sh
# sweep_alloc.sh — Who allocates bits better: DDQ learning them, or an allocator deciding them
# before fine-tuning? (issue 14; docs/allocators.md)
# Question: top-1 at a mean weight budget of 4 and 3 bits, activations at 4 bits for every method:
#   lsq       fixed bits (every layer at the budget): the floor every allocator must beat
#   hawq      Hessian-trace allocation, then the same LSQ fine-tune
#   ompq      orthogonality allocation, then the same LSQ fine-tune
#   bsq       bit-plane training with a group lasso, its strength bisected to the budget, then the
#             same LSQ fine-tune from the FP32 weights
#   haq       a DDPG agent's best of 60 episodes (size budget), then the same LSQ fine-tune
#   ddq       DDQ learning the weight bits (--ddq_fixed_abits: activations stay at 4)
# Grid: METHODS × BITS × SEEDS on MobileNetV2 (default preset), every run fine-tuning the FP32 model
#   of FP32_SEED; then the per-layer bits of seed 1 of each method in one chart per budget.
# Compute: ≈ 8 min per run (2 cores) plus the allocation (HAWQ ≈ 2.5 min, OMPQ ≈ 0.5 min,
#   BSQ ≈ 6 × 1 min, HAQ ≈ 60 × 7 s): 6 methods × 2 budgets × 3 seeds ≈ 6 h.
# Output: docs/data/alloc-mobilenetv2.csv, .md (mean ± std), -search.md (allocation seconds,
#   median over seeds, from the rows' alloc_s), -bits-wB.svg and -bits-wB.md (per-layer bits of
#   seed 1, and how many layers the methods agree on), -bnrecal.csv (each finished run resumed
#   with --q_bn_recal: top-1 with BatchNorm statistics re-estimated, run_recal in sweep_lib.sh;
#   the .md has them in a column). Resumable.
#   METHODS="lsq hawq" BITS=4 SEEDS=1 scripts/sweep_alloc.sh
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
METHODS=${METHODS:-"lsq hawq ompq bsq haq ddq"}; BITS=${BITS:-"4 3"}; SEEDS=${SEEDS:-"1 2 3"}; FP32_SEED=${FP32_SEED:-1}
PRESET=${PRESET:-default}
make -s exp_mobilenetv2
csv=$SWEEP_DATA/alloc-mobilenetv2-$PRESET.csv
dir() { echo "runs/sweeps/mobilenetv2-$PRESET-alloc-$1-w$2-s$3"; }
for seed in $SEEDS; do
  for b in $BITS; do
    for m in $METHODS; do
      case $m in
        lsq) args="--q_method=lsq" ;;
        hawq|ompq|bsq|haq) args="--q_method=lsq --q_alloc=$m" ;;
        ddq) args="--q_method=ddq --ddq_fixed_abits" ;;
        *) echo "sweep_alloc.sh: error: unknown method '$m' (lsq, hawq, ompq, bsq, haq, ddq)" >&2; exit 2 ;;
      esac
      # shellcheck disable=SC2086
      set -- ./exp_mobilenetv2 --preset="$PRESET" $args --q_wbits="$b" --q_abits=4 --seed="$seed" --fp32_seed="$FP32_SEED" \
        --out_dir="$(dir "$m" "$b" "$seed")"
      run_exp "$csv" "$m W$b A4" "$@"
      run_recal "$csv" "$m W$b A4" "$@"
    done
  done
done
sweep_dry && exit 0
summarize "$csv" >"${csv%.csv}.md"
# the allocation's wall time per method and budget: the median over seeds of the rows' alloc_s
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
     $(col["alloc_s"]) != "" {
       k = $1; n[k]++; t[k, n[k]] = $(col["alloc_s"])
     }
     END {
       print "| allocator | runs | allocation seconds (median) |"
       print "|---|---|---|"
       for (k in n) {
         m = n[k]; for (i = 1; i <= m; i++) s[i] = t[k, i]
         for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (s[j] + 0 < s[i] + 0) { x = s[i]; s[i] = s[j]; s[j] = x }
         printf "| %s | %d | %.1f |\n", k, m, m % 2 ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
       }
     }' "$csv" >"${csv%.csv}-search.md"
first=$(echo "$SEEDS" | awk '{print $1}')
for b in $BITS; do
  set --
  missing=""
  for m in $METHODS; do
    f="$(dir "$m" "$b" "$first")/layers.csv"
    if [ -f "$f" ]; then set -- "$@" "$m=$f"; else missing="$missing $m"; fi
  done
  # a chart of every method or none: runs of another machine are not here, and a partial chart
  # would replace a whole one
  if [ -n "$missing" ]; then echo "note: the W$b chart is not redrawn: no runs of$missing for seed $first here" >&2; continue; fi
  write_plot "${csv%.csv}-bits-w$b.svg" env TITLE="weight bits per layer, budget W$b A4 (seed $first)" scripts/plot_layer_bits.sh "$@"
  write_plot "${csv%.csv}-bits-w$b.md" env FORMAT=md scripts/plot_layer_bits.sh "$@"
done
cat "${csv%.csv}.md" "${csv%.csv}-search.md"
echo "charts: ${csv%.csv}-bits-w*.svg (tables: -bits-w*.md)"
