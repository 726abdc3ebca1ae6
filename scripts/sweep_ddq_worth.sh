#!/bin/sh
# sweep_ddq_worth.sh — the grid of issue 13 ("what each part of DDQ is worth"), in the issue's
# order (the most decisive rows first: questions 2 and 1 seed by seed, then 3, 4, 6, 5),
# resumable: each sweep skips the rows its CSV in docs/data has and a stopped run continues from
# its checkpoint, so run it again after an interruption (or on a new clone: commit docs/data as
# rows land) and it goes on. Fine-tunes of
# one model share one FP32 model (FP32_SEED: the spread is the fine-tuning's), except question 5,
# which is about the FP32 seeds.
#
#   C  the controller at W4A4: the default (two-sided PI price + settling window) against the PI
#      price alone and dual ascent, the default before issue 13, 3 seeds — last: it is written up
#      in results.md from runs made before the data files were tracked  docs/data/ablations-mobilenetv2-default.*
#   Q2 ablations at W3A3, then W2A2 (default preset): full DDQ, fixed bits, frozen uniform levels,
#      both (lsq_like), the BitOPs budget, the ramped target, starting at 4 bits (from_4_bits) —
#      LSQ at the same bits beside them;
#      the fixed-bit rows again from LSQ's step and level set (*_centered; at W2 also from LSQ's
#      step alone on DDQ's off-centre level set, *_init: results.md, "Question 2"); full DDQ as first
#      built (offcentre_merge, beside the default: what the off-centre zero bin cost at low bits);
#      seed 1 of everything first, then seeds 2 and 3      docs/data/ablations-mobilenetv2-default-w{3,2}.*
#   Q3 full preset, W3A3: DDQ vs LSQ, 3 seeds             docs/data/methods-mobilenetv2-full.*
#   Q1 W2A2: LSQ, PACT, min/max (DDQ: Q2's default row, the same run); min/max at W3A3
#                                                          docs/data/methods-mobilenetv2-default.*
#   Q4 ResNet-20 (its 30-epoch FP32 model of seed 7): DDQ vs LSQ at W4A4 and W3A3, 3 seeds
#                                                          docs/data/methods-resnet20-default.*
#   Q6 accuracy against mean weight bits (A4): DDQ budgets 2–5 against LSQ at 2–5 bits, both models
#                                                          docs/data/budget-*.{csv,md,svg}
#   Q5 the main full-preset W4A4 result over three FP32 seeds (each trains its own FP32 model)
#                                                          docs/data/methods-mobilenetv2-full-fp32seeds.*
# Compute (2 cores): ≈ 5–7 min per default fine-tune, ≈ 20–55 per full one, ≈ 80 per 30-epoch
# FP32 model; Q2 alone is 54 runs. Run it niced in the background:
#   mkdir -p runs/sweeps && nohup nice -n 19 scripts/sweep_ddq_worth.sh > runs/sweeps/ddq_worth.log 2>&1 &
set -eu
cd "$(dirname "$0")/.."
# STAGES (default all, in this order) runs a part of the grid: q2s1, q2s2, q2s3 — questions 2 and 1
# for one seed (full DDQ, centred and as first built, and LSQ at W3A3 and W2A2; then the fixed-bit rows,
# PACT and min/max, and the other priced variants); q3; q4; q6s1 and q6s23 (question 6, seed 1 of
# both models, then seeds 2 and 3); q5; c.
STAGES=${STAGES:-"q2s1 q2s2 q2s3 q3 q4 q6s1 q6s23 q5 c"}
stage() { case " $STAGES " in *" $1 "*) return 0 ;; esac; return 1; }
first="default offcentre_merge"  # full DDQ (centred merged grids) and as first built: the rows that decide
fixed="fixed_bits lsq_like lsq_like_centered fixed_bits_centered"
priced="frozen_uniform_levels bitops_budget ramped_target from_4_bits"
for seed in 1 2 3; do  # Q2, Q1
  stage "q2s$seed" || continue
  for b in 3 2; do
    ONLY="$first" BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
    METHODS=lsq BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  done
  for b in 3 2; do
    ONLY="$fixed$([ "$b" = 2 ] && echo " lsq_like_init fixed_bits_init")" BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
  done
  METHODS="pact minmax" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  METHODS=minmax BITS=3 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  for b in 3 2; do
    ONLY="$priced" BITS=$b SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
  done
done
if stage q3; then
  PRESET=full METHODS="ddq lsq" BITS=3 SEEDS="1 2 3" FP32_SEED=1 scripts/sweep_methods.sh
fi
if stage q4; then  # LSQ first: it does not depend on DDQ's price
  MODEL=resnet20 METHODS=lsq BITS="4 3" SEEDS="1 2 3" FP32_SEED=7 scripts/sweep_methods.sh
  MODEL=resnet20 METHODS="ddq lsq" BITS="4 3" SEEDS="1 2 3" FP32_SEED=7 scripts/sweep_methods.sh
fi
for part in 1 23; do  # Q6: one seed of both models first (the plots' points), then the error bars
  stage "q6s$part" || continue
  seeds=$([ "$part" = 1 ] && echo 1 || echo "2 3")
  BUDGETS="2 2.5 3 4 5" LSQ_BITS="2 3 4 5" SEEDS="$seeds" FP32_SEED=1 scripts/sweep_budget.sh
  MODEL=resnet20 BUDGETS="2 2.5 3 4 5" LSQ_BITS="2 3 4 5" SEEDS="$seeds" FP32_SEED=7 scripts/sweep_budget.sh
done
if stage q5; then
  PRESET=full METHODS=ddq BITS=4 SEEDS="1 2 3" FP32_SEED=0 TAG=fp32seeds scripts/sweep_methods.sh
fi
if stage c; then  # written up in results.md since 2026-11-29 from runs made before docs/data; its data file last
  ONLY="default pi_price dual_price settle_long" BITS=4 SEEDS="1 2 3" FP32_SEED=1 scripts/sweep_ablations.sh
fi
