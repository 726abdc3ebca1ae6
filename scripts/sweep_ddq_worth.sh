#!/bin/sh
# sweep_ddq_worth.sh — the grid of issue 13 ("what each part of DDQ is worth"), in the order that
# decides most first, resumable (each sweep skips the rows its CSV has; a stopped run continues
# from its checkpoint): run it again after an interruption and it goes on.
#
#   1. ablations at W3A3, then W2A2 (default preset): full DDQ, fixed bits, frozen uniform levels,
#      both (lsq_like), the BitOPs budget, the ramped target — with LSQ at the same bits beside
#      them; seed 1 of everything first, then seeds 2 and 3
#   2. the method table at W2A2 (LSQ, PACT, min/max; DDQ is stage 1's `default` row, the same
#      run) and min/max at W3A3
# Every run fine-tunes the FP32 model of seed 1 (FP32_SEED=1: the spread is the fine-tuning's).
# Results: runs/sweeps/ablations-mobilenetv2-default-w{3,2}.{csv,md},
#          runs/sweeps/methods-mobilenetv2-default.{csv,md}.
# Compute: ≈ 5–7 min per run on 2 cores; stage 1 is 42 runs. Run it niced in the background:
#   nohup nice -n 19 scripts/sweep_ddq_worth.sh > runs/sweeps/ddq_worth.log 2>&1 &
set -eu
cd "$(dirname "$0")/.."
variants="default fixed_bits frozen_uniform_levels lsq_like bitops_budget ramped_target"
for seed in 1 2 3; do
  for b in 3 2; do
    ONLY="$variants" BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
    METHODS=lsq BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  done
done
for seed in 1 2 3; do
  METHODS="lsq pact minmax" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  METHODS=minmax BITS=3 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
done
