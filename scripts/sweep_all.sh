#!/bin/sh
# sweep_all.sh — every sweep behind the open tables of docs/results.md (issues 13–15), one at a
# time (concurrent trainings lose throughput: README): issue 15's rows first (the fewest hours to
# finish; they also train the ResNet-20 FP32 model issue 13's grid reuses), then the rows that
# decided issue 13's default (full DDQ centred and off centre, LSQ; all done by 2026-11-30), then
# issues 13 and 14 interleaved seed by seed. Resumable like the sweeps it runs: start it again after an
# interruption, or on a new clone once docs/data is committed.
# A sweep that stops with an error is reported and the next one runs.
#   mkdir -p runs/sweeps && nohup nice -n 19 scripts/sweep_all.sh > runs/sweeps/all.log 2>&1 &
#   DRY_RUN=1 scripts/sweep_all.sh | grep '^to do' | sort -u   what is left (the last step repeats rows)
# Compute (2 cores, alone): ≈ 6 min per default-preset fine-tune, 1–2 min per post-training row;
# the whole list is several days — the order below is what lands first.
set -u
cd "$(dirname "$0")/.."
step() {
  "$@" || echo "sweep_all.sh: error: '$*' stopped (status $?); going on with the next sweep" >&2
}
step env MODELS=mobilenetv2 SEEDS="1 2 3" FT_SEEDS=1 scripts/sweep_ptq.sh                # 15: PTQ, MobileNetV2
step env MODELS=mobilenetv2 POLICIES="off none dynamic adaptive" scripts/sweep_half.sh   # 15: half, MobileNetV2
step env MODELS=resnet20 SEEDS="1 2 3" FT_SEEDS=1 scripts/sweep_ptq.sh                   # 15: ResNet-20 (its FP32 model first)
step env MODELS=resnet20 RESNET_EPOCHS=10 POLICIES="off none dynamic adaptive" scripts/sweep_half.sh  # 15: 10 epochs
step env TAG=-all MODELS=lenet POLICIES="off all-none all-dynamic" scripts/sweep_half.sh # 15: activations in half too
step env MODELS=lenet scripts/sweep_half.sh                                               # 15: LeNet (in results.md; data file)
decisive() {  # 13: the rows that decide question 2 — full DDQ centred and as first built, and LSQ, at W$1A$1
  for seed in 1 2 3; do
    step env ONLY="default offcentre_merge" BITS=$1 SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
    step env METHODS=lsq BITS=$1 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  done
}
decisive 3  # does the centred merge hold at W3A3? (it did, on all three seeds)
decisive 2
# is it neutral at the main result's W4A4? Five seeds of both decided the default (the centred
# merge became it: every row after these runs on it)
step env ONLY="default offcentre_merge" BITS=4 SEEDS="1 2 3 4 5" FP32_SEED=1 scripts/sweep_ablations.sh
step env STAGES=q2s1 scripts/sweep_ddq_worth.sh                                           # 13: Q2 + Q1, seed 1
step env BITS="3 4" SEEDS=2 scripts/sweep_alloc.sh                                        # 14: allocators, seed 2
step env STAGES=q2s2 scripts/sweep_ddq_worth.sh                                           # 13: seed 2
step env BITS="3 4" SEEDS=3 scripts/sweep_alloc.sh                                        # 14: seed 3
step env STAGES=q2s3 scripts/sweep_ddq_worth.sh                                           # 13: seed 3
step env BITS="3 4" SEEDS=1 scripts/sweep_alloc.sh                                        # 14: seed 1 (in results.md; its data file)
# 13, where LSQ's lead at W2A2 comes from: LSQ without its in-bin term, DDQ at fixed bits with it
# (results.md, question 2 over three seeds; at LSQ's rate, _lr1, DDQ collapsed to chance on seed 1)
for seed in 1 2 3; do
  step env TAG=binsgrad EXTRA=--lsq_step_grad=bins METHODS=lsq BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
  step env ONLY="fixed_bits_centered_esser" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
done
# 13, the rest of LSQ's lead over fixed-bit DDQ at W2A2: the weight levels' rate (default 1% of the
# schedule's; at 100%, _lr1, DDQ collapsed), at 10% first, then the frozen-statistics rows, then 30%
for seed in 1 2 3; do
  step env ONLY="fixed_bits_centered_lrw0.1" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
done
# 13, W2A2 with BatchNorm statistics frozen for the last quarter (--q_bn_freeze=0.25): do full DDQ,
# fixed bits and lsq_like stop being fragile, so that mixed precision and learned levels can be
# measured at two bits?
for seed in 1 2 3; do
  step env ONLY="bn_freeze fixed_bits_bn_freeze lsq_like_bn_freeze" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
  # and LSQ with the same freeze: the frozen DDQ rows are to be compared with it, not with LSQ as it was
  step env TAG=bnfreeze EXTRA=--q_bn_freeze=0.25 METHODS=lsq BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_methods.sh
done
for seed in 1 2 3; do
  step env ONLY="fixed_bits_centered_lrw0.3" BITS=2 SEEDS=$seed FP32_SEED=1 scripts/sweep_ablations.sh
done
# 13, question 6 on MobileNetV2 before question 3: runs/ may not outlive a session's machine, and
# these rows need only the 4-epoch FP32 model (7 min), where question 3 needs the 30-epoch one (50 min)
# and then about two hours: it takes a session of its own
step env BUDGETS="2 2.5 3 4 5" LSQ_BITS="2 3 4 5" SEEDS="1 2 3" FP32_SEED=1 scripts/sweep_budget.sh
step scripts/sweep_ddq_worth.sh                                                           # 13: the rest of the grid
