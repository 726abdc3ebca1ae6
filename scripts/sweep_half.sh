#!/bin/sh
# sweep_half.sh — What does fp16 gradient storage cost in training, and which loss scaling cures
# it? (issue 15; docs/half.md)
# Question: for each model, FP32 training with every activation gradient stored in IEEE half
#   (--half=grads) under each loss-scaling policy, against float training (off), same schedule
#   and seeds: top-1, the share of the weighted layers' output gradients that underflowed (all
#   epochs), overflowed values, skipped steps, the final loss scale; and a plot of underflow per
#   layer over training, one panel per policy (seed 1).
#   off       float gradients (the reference)
#   none      half, no loss scale
#   static    half, the loss times --loss_scale_init (65536)
#   dynamic   half, PyTorch's GradScaler rule from 65536
#   adaptive  half, per-layer scales from the gradients' statistics (Zhao et al. 2020)
#   all-none, all-static, all-dynamic, all-adaptive: the same with the activations in half too
#             (--half=all; not in the default list)
# Grid: lenet (SEEDS, default 1 2 3; 6 epochs), resnet20 and mobilenetv2 (BIG_SEEDS, default 1;
#   their pipelines' FP32 schedules: 30 epochs from seed 7, and the default preset's 4 epochs from
#   seed 1 — the FP32 models issue 13's grid uses, so "off" costs nothing there); RESNET_EPOCHS
#   shortens ResNet-20's (default 30, the pipeline's; another E names its files half-resnet20-eE).
# Compute (2 cores): LeNet ≈ 2 min per run; MobileNetV2 ≈ 10 min; ResNet-20 30 epochs ≈ 1 h per
#   policy. Resumable (every run continues from its checkpoint, finished rows are skipped).
# Output: docs/data/half-MODEL.csv, .md (mean ± std over seeds), half-MODEL.svg.
#   MODELS=lenet POLICIES="off none dynamic adaptive" SEEDS=1 scripts/sweep_half.sh
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
MODELS=${MODELS:-"lenet mobilenetv2 resnet20"}; POLICIES=${POLICIES:-"off none static dynamic adaptive"}
SEEDS=${SEEDS:-"1 2 3"}; BIG_SEEDS=${BIG_SEEDS:-1}; RESNET_EPOCHS=${RESNET_EPOCHS:-30}
EXTRA=${EXTRA:-}; TAG=${TAG:-}  # a quick look: TAG=-quick EXTRA="--epochs=1 --subset=2000" MODELS=lenet
# Underflow share and overflowed values of every convolution's (1x1 and depthwise included) and
# linear layer's output gradient, over all epochs of a run's half.csv.
half_stats() {
  awk -F, 'NR > 1 && $3 ~ /^(conv2d|linear)/ { v += $4; u += $4 * $5; o += $4 * $6 }
           END { printf "%.3g,%.0f", v ? u / v : 0, o }' "$1"
}
for model in $MODELS; do
  make -s "exp_$model"
  sfx=$TAG; [ "$model" = resnet20 ] && [ "$RESNET_EPOCHS" != 30 ] && sfx="-e$RESNET_EPOCHS$TAG"
  csv=$SWEEP_DATA/half-$model$sfx.csv; log=$(sweep_log "$csv")
  if ! sweep_dry; then
    mkdir -p "$SWEEP_DATA"
    [ -f "$csv" ] || echo "policy,seed,test_acc,underflow,overflow_values,skipped_steps,final_scale" >"$csv"
  fi
  seeds=$([ "$model" = lenet ] && echo "$SEEDS" || echo "$BIG_SEEDS")
  plots=""
  for seed in $seeds; do
    for pol in $POLICIES; do
      case $pol in
        off) half="" ;;
        none|static|dynamic|adaptive) half="--half=grads --loss_scale=$pol" ;;
        all-none|all-static|all-dynamic|all-adaptive) half="--half=all --loss_scale=${pol#all-}" ;;
        *) echo "sweep_half.sh: error: unknown policy '$pol' (off none static dynamic adaptive, all-…)" >&2; exit 2 ;;
      esac
      case $model in
        lenet) dir=runs/sweeps/half-lenet$TAG-$pol-s$seed
               set -- ./exp_lenet --seed="$seed" --out_dir="$dir" ;;
        mobilenetv2) dir=runs/fp32-mobilenetv2-w0.5-s1x2-fashion-mnist-e4-seed$seed${half:+-half-$pol}
               set -- ./exp_mobilenetv2 --preset=default --q_method=none --seed="$seed" ;;
        resnet20) s=$((seed + 6)); dir=runs/fp32-resnet20-fashion-mnist-e$RESNET_EPOCHS-seed$s${half:+-half-$pol}
               set -- ./exp_resnet20 --q_method=none --seed="$s" --fp32_epochs="$RESNET_EPOCHS" ;;
        *) echo "sweep_half.sh: error: unknown model '$model' (lenet mobilenetv2 resnet20)" >&2; exit 2 ;;
      esac
      [ "$seed" = "$(echo "$seeds" | awk '{print $1}')" ] && [ -n "$half" ] && plots="$plots $pol=$dir/half.csv"
      if sweep_dry; then
        sweep_dry_row "$csv" "$pol" "$seed" "$model $pol"
        continue
      fi
      if sweep_row_done "$csv" "$pol" "$seed"; then
        echo "== $model $pol, seed $seed: done already ($csv)"; continue
      fi
      echo "=== sweep_half $model $pol seed $seed: $* $half $EXTRA" | tee -a "$log"
      # shellcheck disable=SC2086
      out=$("$@" $half $EXTRA --progress=false --resume=true 2>&1 | tee -a "$log" | grep '^RESULT' | tail -1)
      [ -n "$out" ] || { echo "sweep_half.sh: error: no RESULT from $* $half (see $log)" >&2; tail -5 "$log" >&2; exit 1; }
      acc=$(printf '%s\n' "$out" | tr ' ' '\n' | sed -n 's/^\(test_acc\|fp32_acc\)=//p')
      if [ -n "$half" ]; then  # the weighted layers' output gradients over every epoch, and the epoch lines
        stats=$(half_stats "$dir/half.csv")
        # skipped steps and the last loss scale: the epoch lines of this run in the sweep's log (an
        # interrupted run resumes at an epoch boundary, so its epochs are each printed once)
        set -- $(awk -v h="=== sweep_half $model $pol seed $seed:" 'index($0, "=== sweep_half ") == 1 { on = index($0, h) == 1; next }
                   on && /half-precision gradients: loss scale/ {
                     for (i = 1; i <= NF; i++) if ($i == "scale") sc = $(i + 1); else if ($i == "of") sk += $(i - 1)
                   } END { sub(",", "", sc); print sk + 0, sc }' "$log")
        skipped=${1:-0}; scale=${2:-unknown}  # unknown: a finished run reused, no epoch printed
      else stats="0,0"; skipped=0; scale=1
      fi
      echo "$pol,$seed,$acc,$stats,$skipped,$scale" >>"$csv"
    done
  done
  sweep_dry && continue
  awk -F, 'NR > 1 { k = $1; if (!(k in n)) o[++nk] = k; n[k]++; a[k] += $3; q[k] += $3 * $3; u[k] += $4; ov[k] += $5; sk[k] += $6; sc[k] = $7 }
           END {
             print "| policy | seeds | top-1 % | underflow share (conv/linear output grads) | overflowed values | skipped steps | final loss scale |"
             print "|---|---|---|---|---|---|---|"
             for (i = 1; i <= nk; i++) {
               k = o[i]; m = a[k] / n[k]; v = n[k] > 1 ? (q[k] - n[k] * m * m) / (n[k] - 1) : 0; sd = v > 0 ? sqrt(v) : 0
               acc = n[k] > 1 ? sprintf("%.2f ± %.2f", 100 * m, 100 * sd) : sprintf("%.2f", 100 * m)
               printf "| %s | %d | %s | %.3g | %d | %.0f | %s |\n", k, n[k], acc, u[k] / n[k], ov[k] / n[k], sk[k] / n[k], sc[k]
             }
           }' "$csv" >"${csv%.csv}.md"
  # shellcheck disable=SC2086
  [ -z "$plots" ] || write_plot "${csv%.csv}.svg" \
    env TITLE="$model: fp16 gradient underflow per layer (seed $(echo "$seeds" | awk '{print $1}'))" scripts/plot_half.sh $plots
  cat "${csv%.csv}.md"
done
