#!/bin/sh
# sweep_methods.sh — Does DDQ beat the usual fixed-bit methods at equal bits?
# Question: top-1 of DDQ (mixed bits under a W/A mean-bit budget) against LSQ, PACT (DoReFa
#   weights) and min/max at W4A4, W3A3 and W2A2, fine-tuned from the same FP32 checkpoint with
#   the same schedule, first/last layer at 8 bits for every method, depthwise quantized.
# Grid: METHODS × BITS × SEEDS on MODEL (mobilenetv2 or resnet20); one FP32 run per seed, reused;
#   FP32_SEED=N fine-tunes every seed from the FP32 model of seed N instead (the spread is then
#   the fine-tuning's alone, and no FP32 run is needed beyond seed N's).
# Compute: default preset ≈ 7 min per quantized run + 10 min per FP32 seed on 2 cores
#   (4 methods × 3 bits × 3 seeds ≈ 4.5 h); PRESET=full multiplies by about 7.
# Output: docs/data/methods-MODEL-PRESET[-TAG].csv (one row per run) and .md (mean ± std over
#   seeds), -bnrecal.csv (top-1 with BatchNorm re-estimated: run_recal in sweep_lib.sh; a column
#   of the .md). Resumable: started again, it skips the rows it has.
#   METHODS="ddq lsq" BITS="4 3" SEEDS="1 2" MODEL=mobilenetv2 scripts/sweep_methods.sh
#   TAG=bnfreeze EXTRA=--q_bn_freeze=0.25 …    options added to every run, in a grid of its own
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
MODEL=${MODEL:-mobilenetv2}; PRESET=${PRESET:-default}
METHODS=${METHODS:-"ddq lsq pact minmax"}; BITS=${BITS:-"4 3 2"}; SEEDS=${SEEDS:-"1 2 3"}; FP32_SEED=${FP32_SEED:-0}
make -s "exp_$MODEL"
preset=$([ "$MODEL" = mobilenetv2 ] && echo "--preset=$PRESET" || true)  # exp_resnet20 has one schedule
TAG=${TAG:-}  # TAG=x: a separate grid (its own CSV and run directories)
EXTRA=${EXTRA:-}
[ -z "$EXTRA" ] || [ -n "$TAG" ] || { echo "sweep_methods.sh: error: EXTRA needs a TAG (its rows are not the plain grid's)" >&2; exit 2; }
csv=$SWEEP_DATA/methods-$MODEL-$PRESET${TAG:+-$TAG}.csv
for seed in $SEEDS; do
  for b in $BITS; do
    for m in $METHODS; do
      bmin=""  # DDQ's floor follows a 1-bit budget; the other methods refuse DDQ's options
      [ "$m" = ddq ] && [ "$b" -lt 2 ] && bmin="--ddq_bmin=$b"
      # shellcheck disable=SC2086
      set -- "./exp_$MODEL" $preset --q_method="$m" --q_wbits="$b" --q_abits="$b" \
        $bmin $EXTRA --seed="$seed" --fp32_seed="$FP32_SEED" --out_dir="runs/sweeps/$MODEL-$PRESET${TAG:+-$TAG}-$m-w${b}a${b}-s$seed"
      run_exp "$csv" "$m W${b}A${b}" "$@"
      run_recal "$csv" "$m W${b}A${b}" "$@"
    done
  done
done
sweep_dry && exit 0
summarize "$csv" >"${csv%.csv}.md"
cat "${csv%.csv}.md"
