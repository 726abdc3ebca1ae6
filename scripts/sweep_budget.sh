#!/bin/sh
# sweep_budget.sh — What does each bit of budget buy? Accuracy against weight memory.
# Question: DDQ top-1 and weight KB at mean weight budgets of 2.5, 3, 4 and 5 bits (activations
#   at 4), and the same for LSQ at the whole-bit points, plotted as accuracy vs weight KB.
# Grid: BUDGETS × SEEDS for DDQ, 3/4/5 bits for LSQ, on MODEL; one FP32 run per seed (FP32_SEED=N:
#   all seeds fine-tune the FP32 model of seed N).
# Compute: ≈ 7 min per run with the default preset (7 runs × 3 seeds ≈ 2.5 h on 2 cores).
# Output: docs/data/budget-MODEL-PRESET.csv, .md, .svg (accuracy vs weight KB) and -bits.svg
#   (accuracy vs mean weight bits, error bars over seeds), -bnrecal.csv (top-1 with BatchNorm
#   re-estimated: run_recal in sweep_lib.sh; a column of the .md). Resumable.
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
MODEL=${MODEL:-mobilenetv2}; PRESET=${PRESET:-default}; SEEDS=${SEEDS:-"1 2 3"}; FP32_SEED=${FP32_SEED:-0}
BUDGETS=${BUDGETS:-"2.5 3 4 5"}; LSQ_BITS=${LSQ_BITS:-"3 4 5"}
make -s "exp_$MODEL"
preset=$([ "$MODEL" = mobilenetv2 ] && echo "--preset=$PRESET" || true)  # exp_resnet20 has one schedule
csv=$SWEEP_DATA/budget-$MODEL-$PRESET.csv
for seed in $SEEDS; do
  for run in $(for w in $BUDGETS; do echo "ddq:$w"; done) $(for w in $LSQ_BITS; do echo "lsq:$w"; done); do
    m=${run%:*}; w=${run#*:}
    # shellcheck disable=SC2086
    set -- "./exp_$MODEL" $preset --q_method="$m" --q_wbits="$w" --q_abits=4 \
      --seed="$seed" --fp32_seed="$FP32_SEED" --out_dir="runs/sweeps/$MODEL-$PRESET-budget-$m-w$w-s$seed"
    run_exp "$csv" "$m W$w A4" "$@"
    run_recal "$csv" "$m W$w A4" "$@"
  done
done
sweep_dry && exit 0
summarize "$csv" >"${csv%.csv}.md"
write_plot "${csv%.csv}.svg" scripts/plot_budget.sh "$csv"
write_plot "${csv%.csv}-bits.svg" env X=bits TITLE="$MODEL: top-1 against mean weight bits (activations 4 bits)" scripts/plot_budget.sh "$csv"
cat "${csv%.csv}.md"
echo "plots: ${csv%.csv}.svg (weight KB), ${csv%.csv}-bits.svg (mean weight bits)"
