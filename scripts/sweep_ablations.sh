#!/bin/sh
# sweep_ablations.sh — Which of DDQ's choices matter? (docs/ddq.md lists each variant)
# Question: top-1 at a W4A4 budget (BITS to change) when one choice is switched:
#   mixed vs fixed bits at the same budget (fixed: --ddq_init_bits=B --ddq_lr_gate=0);
#   learned vs frozen-uniform levels (--ddq_lr_levels_w=0 --ddq_lr_levels_a=0);
#   both at once (lsq_like: fixed bits and frozen levels — DDQ reduced to a static uniform
#   quantizer at its calibrated range: nothing learns but the weights); the last two again with
#   LSQ's initial step instead of DDQ's min/max calibration (*_init: --ddq_init_lsq) and, on top,
#   with the levels starting on LSQ's level set (*_centered: --ddq_init_centered; lsq_like_centered
#   is LSQ with its step frozen at LSQ's initial value; the *_init rows keep the off-centre level
#   set they were measured with); full DDQ as first built (offcentre_merge:
#   --ddq_merge_centered=false, 0 the first level of its block, so below 8 bits the zero bin is off
#   centre; the default since 2026-11-30 centres every merged level set, LSQ's level sets from a
#   uniform grid — docs/ddq.md §1; rows measured before then as `centered_merge` are `default` in
#   docs/data, and the old default's are `offcentre_merge`; the three variants that need the
#   off-centre merge — product-rule gates, fine-level forward, unpinned zero — run on it);
#   frontier vs product-rule gates; dual ascent vs hinge; nearest-value vs fine-level forward;
#   pinned zero on/off; gradient correction on/off (α = 0.1); element-count vs BitOPs budget;
#   plus ramped target, bits starting at 4 instead of 8 (from_4_bits: at W3A3 and W2A2, is the
#   way down from 8 bits what DDQ pays for?), Adam on levels, and the bit price's controller
#   (issue 13: does the joint phase settle on the budget?): dual ascent as it was the default
#   before (one-sided, η 0.003), with a ramped target, faster (η 0.01, 0.03), the hinge; the default two-sided price without
#   the settling window (pi_price), with a stiffer proportional term, or with the gate step
#   following the learning-rate schedule — all these without the settling window — and with a
#   window twice as long (settle_long: the last fifth of the joint phase, the default before);
#   and *_bn_freeze: full DDQ, fixed_bits and lsq_like with BatchNorm statistics frozen for the
#   last quarter of the fine-tune (--q_bn_freeze=0.25: is a low-bit top-1 still a lottery of
#   which batches came last when the weights adapt to the statistics the test uses?); esser_grad
#   and fixed_bits_centered_esser: full DDQ, and DDQ at fixed bits from LSQ's start, with LSQ's
#   in-bin term in the level gradients (--ddq_esser_grad: is that term LSQ's lead at W2A2?), and
#   *_lr1: the same with the levels learning at the schedule's rate, as LSQ's step does (the
#   default weight levels learn at 1% of it); *_lrw0.1, *_lrw0.3: fixed-bit DDQ from LSQ's start
#   with its weight levels at 10% and 30% of the schedule's rate (the activation levels at the
#   default 25%: at W2A2, is the rest of LSQ's lead the rate?).
# Grid: the variants below × SEEDS on MODEL, one shared FP32 run per seed (FP32_SEED=N: all
#   seeds fine-tune the FP32 model of seed N).
# Compute: ≈ 7 min per run with the default preset (18 variants × 3 seeds ≈ 6 h on 2 cores).
# Output: docs/data/ablations-MODEL-PRESET.csv and .md (mean ± std over seeds; BITS other than
#   4 add -wBITS to the names), -bnrecal.csv (top-1 with BatchNorm re-estimated: run_recal in
#   sweep_lib.sh; a column of the .md). Resumable: started again, it skips the rows it has.
#   ONLY="fixed_bits hinge_budget" SEEDS=1 scripts/sweep_ablations.sh    a subset of the variants
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
MODEL=${MODEL:-mobilenetv2}; PRESET=${PRESET:-default}; SEEDS=${SEEDS:-"1 2 3"}; FP32_SEED=${FP32_SEED:-0}; B=${BITS:-4}
make -s "exp_$MODEL"
preset=$([ "$MODEL" = mobilenetv2 ] && echo "--preset=$PRESET" || true)  # exp_resnet20 has one schedule
suffix=$([ "$B" = 4 ] || echo "-w$B")
csv=$SWEEP_DATA/ablations-$MODEL-$PRESET$suffix.csv
variants="default|
fixed_bits|--ddq_init_bits=$B --ddq_lr_gate=0
frozen_uniform_levels|--ddq_lr_levels_w=0 --ddq_lr_levels_a=0
lsq_like|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_lr_levels_w=0 --ddq_lr_levels_a=0
lsq_like_init|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_lr_levels_w=0 --ddq_lr_levels_a=0 --ddq_init_lsq --ddq_merge_centered=false
fixed_bits_init|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_merge_centered=false
lsq_like_centered|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_lr_levels_w=0 --ddq_lr_levels_a=0 --ddq_init_lsq --ddq_init_centered
fixed_bits_centered|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered
offcentre_merge|--ddq_merge_centered=false
product_rule_gates|--ddq_product_rule --ddq_merge_centered=false
hinge_budget|--ddq_lambda=hinge --ddq_settle=0
fine_level_forward|--ddq_fine_forward --ddq_merge_centered=false
unpinned_zero|--ddq_pin_zero=false --ddq_merge_centered=false
gradient_correction|--ddq_alpha=0.1
bitops_budget|--ddq_budget=bitops
ramped_target|--ddq_ramp
from_4_bits|--ddq_init_bits=4
adam_levels|--ddq_adam
dual_price|--ddq_lambda=dual --ddq_eta=0.003 --ddq_settle=0
pi_price|--ddq_settle=0
settle_long|--ddq_settle=0.2
dual_ramped|--ddq_lambda=dual --ddq_eta=0.003 --ddq_ramp --ddq_settle=0
fast_price|--ddq_lambda=dual --ddq_eta=0.01 --ddq_settle=0
faster_price|--ddq_lambda=dual --ddq_eta=0.03 --ddq_settle=0
stiff_price|--ddq_kp=0.5 --ddq_eta=0.001 --ddq_settle=0
gate_anneal|--ddq_gate_anneal --ddq_settle=0
bn_freeze|--q_bn_freeze=0.25
fixed_bits_bn_freeze|--ddq_init_bits=$B --ddq_lr_gate=0 --q_bn_freeze=0.25
lsq_like_bn_freeze|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_lr_levels_w=0 --ddq_lr_levels_a=0 --q_bn_freeze=0.25
esser_grad|--ddq_esser_grad
fixed_bits_centered_esser|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered --ddq_esser_grad
fixed_bits_centered_lr1|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered --ddq_lr_levels_w=1 --ddq_lr_levels_a=1
fixed_bits_centered_esser_lr1|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered --ddq_esser_grad --ddq_lr_levels_w=1 --ddq_lr_levels_a=1
fixed_bits_centered_lrw0.1|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered --ddq_lr_levels_w=0.1
fixed_bits_centered_lrw0.3|--ddq_init_bits=$B --ddq_lr_gate=0 --ddq_init_lsq --ddq_init_centered --ddq_lr_levels_w=0.3"
for seed in $SEEDS; do
  printf '%s\n' "$variants" | while IFS='|' read -r name args; do
    case " ${ONLY:-$name} " in *" $name "*) ;; *) continue ;; esac  # ONLY="a b": just those variants
    # shellcheck disable=SC2086
    set -- "./exp_$MODEL" $preset --q_method=ddq --q_wbits="$B" --q_abits="$B" $args \
      --seed="$seed" --fp32_seed="$FP32_SEED" --out_dir="runs/sweeps/$MODEL-$PRESET$suffix-ablation-$name-s$seed"
    run_exp "$csv" "$name" "$@"
    run_recal "$csv" "$name" "$@"
  done
done
sweep_dry && exit 0
summarize "$csv" >"${csv%.csv}.md"
cat "${csv%.csv}.md"
