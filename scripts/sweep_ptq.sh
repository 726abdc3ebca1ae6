#!/bin/sh
# sweep_ptq.sh — Does multipoint quantization beat plain post-training quantization at equal
# weight memory, and how far is post-training from fine-tuning? (issue 15; docs/multipoint.md)
# Question: top-1 at W4A8 and W3A8 (activations: calibrated min/max at 8 bits for every method),
#   no fine-tuning, from one FP32 model, each calibration seed drawing other calibration batches:
#   mp1 / mp1.25 / mp1.5   multipoint, 1 / 1.25 / 1.5 points per channel (stored bits b·points)
#   minmax                 min/max per tensor at b bits
#   minmax_ch              min/max per output channel at b bits
#   minmax_ch+1            min/max per output channel at b+1 bits (the memory of 1.25 points at W4)
#   lsq_ft / ddq_ft        LSQ / DDQ fine-tuned at the same W·A8 (FT_SEEDS seeds; the schedule of
#                          the model's default preset): what post-training leaves on the table
# Grid: MODELS × BITS × SEEDS (calibration seeds); FP32 from FP32_SEED (MobileNetV2: 1, ResNet-20: 7,
#   the models issue 13's grid uses).
# Compute: ≈ 1–2 min per post-training run, ≈ 8 min per fine-tune (2 cores); the ResNet-20 FP32
#   model (30 epochs) is trained first if missing. Resumable.
# Output: docs/data/ptq-MODEL.csv, .md (mean ± std over seeds) and .svg (scripts/plot_ptq.sh).
#   MODELS=mobilenetv2 BITS=4 SEEDS="1 2 3" FT_SEEDS=1 scripts/sweep_ptq.sh
set -eu
cd "$(dirname "$0")/.."
. scripts/sweep_lib.sh
MODELS=${MODELS:-"mobilenetv2 resnet20"}; BITS=${BITS:-"4 3"}; SEEDS=${SEEDS:-"1 2 3"}; FT_SEEDS=${FT_SEEDS:-1}
for model in $MODELS; do
  case $model in
    mobilenetv2) fp32_seed=${FP32_SEED:-1}; preset="--preset=default" ;;
    resnet20) fp32_seed=${FP32_SEED:-7}; preset="" ;;
    *) echo "sweep_ptq.sh: error: unknown model '$model' (mobilenetv2, resnet20)" >&2; exit 2 ;;
  esac
  make -s "exp_$model"
  csv=$SWEEP_DATA/ptq-$model.csv
  run() {  # label seed args...
    label=$1; seed=$2; shift 2
    # shellcheck disable=SC2086
    run_exp "$csv" "$label" "./exp_$model" $preset "$@" --q_abits=8 --seed="$seed" --fp32_seed="$fp32_seed" \
      --out_dir="runs/sweeps/ptq-$model-$(echo "$label" | tr ' +' '_p')-s$seed"
  }
  for seed in $SEEDS; do
    for b in $BITS; do
      for p in 1 1.25 1.5; do run "mp$p W${b}A8" "$seed" --q_method=multipoint --mp_points="$p" --q_wbits="$b"; done
      run "minmax W${b}A8" "$seed" --q_method=minmax --q_ptq --q_wbits="$b"
      run "minmax_ch W${b}A8" "$seed" --q_method=minmax --q_ptq --q_per_channel --q_wbits="$b"
      run "minmax_ch W$((b + 1))A8" "$seed" --q_method=minmax --q_ptq --q_per_channel --q_wbits="$((b + 1))"
    done
  done
  for seed in $FT_SEEDS; do
    for b in $BITS; do
      run "lsq_ft W${b}A8" "$seed" --q_method=lsq --q_wbits="$b"
      run "ddq_ft W${b}A8" "$seed" --q_method=ddq --q_wbits="$b"
    done
  done
  sweep_dry && continue
  summarize "$csv" >"${csv%.csv}.md"
  write_plot "${csv%.csv}.svg" env TITLE="$model, A8: top-1 against stored bits per weight" scripts/plot_ptq.sh "$csv"
  cat "${csv%.csv}.md"
done
