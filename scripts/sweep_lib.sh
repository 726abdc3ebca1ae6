# sweep_lib.sh — shared helpers of the sweep scripts (sourced, not run).
#   run_exp CSV LABEL BINARY ARGS...   run one experiment, append its RESULT line to CSV as a row
#                                      (LABEL first, then the RESULT's values in a fixed order,
#                                      empty where the run has none);
#                                      a LABEL and seed already in CSV is skipped, and a run that
#                                      was stopped continues from its checkpoint (--resume): a
#                                      sweep started again resumes where it stopped
#   run_recal CSV LABEL BINARY ARGS... the finished run of that row once more, resumed from its
#                                      last checkpoint (nothing trains), with --q_bn_recal=BN_RECAL
#                                      [100]: top-1 with every BatchNorm's statistics averaged over
#                                      that many un-augmented training batches (experiments/
#                                      bnrecal.h), a row "label,seed,q_acc,bn_recal_acc" of
#                                      CSV's -bnrecal.csv; skipped when done, when the row is not,
#                                      or with BN_RECAL=0
#   summarize CSV > table.md           mean ± std of q_acc, delta, bits, KB, epoch time per label
#                                      (the mean alone when a label has one seed), "seed: q_acc"
#                                      of each run (in the CSV's order: as they ran; "(r)" beside it:
#                                      re-estimated, below), the largest
#                                      |bits moved| by the final guarantee over seeds, and, when
#                                      CSV's -bnrecal.csv exists, top-1 with BatchNorm re-estimated
#                                      (mean ± std over the seeds it has, and how many)
#   write_plot FILE COMMAND...         a plot written only when COMMAND succeeds (below)
#   DRY_RUN=1 scripts/sweep_….sh       nothing runs and nothing is written: each row of the grid
#                                      is listed as "done" or "to do" (sweep_dry: whether set)
# The CSV header is written by run_exp when the file does not exist. A run whose RESULT line is
# missing stops the sweep with the tail of its log.
#
# Where things go: the result files (CSV rows, Markdown tables, SVG plots) in $SWEEP_DATA,
# docs/data by default — tracked by git, so the rows a sweep has finished survive the machine
# (commit them as they land; a sweep on a new clone skips them); the runs' directories and the
# sweeps' logs in runs/sweeps, which git ignores.

SWEEP_FIELDS="method w_budget a_budget fp32_acc q_acc delta w_bits a_bits weight_kb fp32_epoch_s q_epoch_s step_ratio moved_w moved_a alloc_s"
SWEEP_DATA=${SWEEP_DATA:-docs/data}

sweep_dry() { [ -n "${DRY_RUN:-}" ]; }

# sweep_log CSV: the log of the sweep that writes CSV (runs/sweeps/NAME.log)
sweep_log() {
  mkdir -p runs/sweeps
  echo "runs/sweeps/$(basename "${1%.csv}").log"
}

# sweep_row_done CSV KEY SEED: whether CSV has a row whose first two fields are KEY and SEED
sweep_row_done() {
  [ -f "$1" ] && awk -F, -v l="$2" -v s="$3" '$1 == l && $2 == s {f = 1} END {exit !f}' "$1"
}

# sweep_dry_row CSV KEY SEED WHAT: the DRY_RUN line of one row ("done" or "to do", WHAT naming it)
sweep_dry_row() {
  if sweep_row_done "$1" "$2" "$3"; then echo "done   $4, seed $3 ($1)"; else echo "to do  $4, seed $3 ($1)"; fi
}

# write_plot FILE COMMAND...: COMMAND's output into FILE, which is replaced only when COMMAND
# succeeds with some output. A plot drawn from runs' directories that are not on this machine (a
# new clone has docs/data, not runs/) keeps the file it had, with a note.
write_plot() {
  wp_file=$1; shift
  if "$@" >"$wp_file.tmp" 2>"$wp_file.err" && [ -s "$wp_file.tmp" ]; then
    mv "$wp_file.tmp" "$wp_file"
  else
    echo "note: $wp_file kept as it was ($(head -1 "$wp_file.err"))" >&2
    rm -f "$wp_file.tmp"
  fi
  rm -f "$wp_file.err"
}

# seed_of ARGS...: the value of --seed in a command line (empty without one)
seed_of() { printf '%s\n' "$*" | sed -n 's/.*--seed=\([0-9]*\).*/\1/p'; }
# result_field LINE NAME: NAME's value in a RESULT line (empty without one)
result_field() { printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

run_exp() {
  csv=$1; label=$2; bin=$3; shift 3
  seed=$(seed_of "$@")
  if sweep_dry; then
    sweep_dry_row "$csv" "$label" "${seed:-1}" "$label"
    return 0
  fi
  mkdir -p "$(dirname "$csv")"
  log=$(sweep_log "$csv")
  if [ ! -f "$csv" ]; then
    printf 'label,seed' >"$csv"
    for f in $SWEEP_FIELDS; do printf ',%s' "$f" >>"$csv"; done
    printf '\n' >>"$csv"
  fi
  if sweep_row_done "$csv" "$label" "${seed:-1}"; then
    echo "== $label, seed ${seed:-1}: done already ($csv)"
    return 0
  fi
  echo "== $label: $bin $*" | tee -a "$log"
  out=$("$bin" --progress=false --resume=true "$@" 2>&1 | tee -a "$log" | grep '^RESULT' | tail -1)
  if [ -z "$out" ]; then
    echo "sweep: error: no RESULT from $bin $* (see $log)" >&2
    tail -5 "$log" >&2
    exit 1
  fi
  row="$label,${seed:-1}"
  for f in $SWEEP_FIELDS; do
    v=$(result_field "$out" "$f")
    row="$row,${v:-}"
  done
  echo "$row" >>"$csv"
}

BN_RECAL=${BN_RECAL:-100}
run_recal() {
  csv=$1; label=$2; bin=$3; shift 3
  [ "$BN_RECAL" -gt 0 ] || return 0
  seed=$(seed_of "$@")
  recsv=${csv%.csv}-bnrecal.csv
  if sweep_dry; then
    sweep_dry_row "$recsv" "$label" "${seed:-1}" "$label, BatchNorm re-estimated"
    return 0
  fi
  sweep_row_done "$recsv" "$label" "${seed:-1}" && return 0
  sweep_row_done "$csv" "$label" "${seed:-1}" || return 0
  [ -f "$recsv" ] || echo "label,seed,q_acc,bn_recal_acc" >"$recsv"
  log=$(sweep_log "$csv")
  echo "== $label, BatchNorm re-estimated: $bin $* --q_bn_recal=$BN_RECAL" | tee -a "$log"
  out=$("$bin" "$@" --q_bn_recal="$BN_RECAL" --resume=true --progress=false 2>&1 | tee -a "$log" | grep '^RESULT' | tail -1)
  q=$(result_field "$out" q_acc)
  r=$(result_field "$out" bn_recal_acc)
  if [ -z "$r" ]; then
    echo "sweep: error: no bn_recal_acc from $bin $* (see $log)" >&2
    exit 1
  fi
  echo "$label,${seed:-1},$q,$r" >>"$recsv"
}

# summarize CSV: one Markdown row per label, mean ± std over its seeds.
summarize() {
  re=${1%.csv}-bnrecal.csv
  [ -f "$re" ] || re=/dev/null
  awk -F, -v recal="$([ "$re" = /dev/null ] && echo 0 || echo 1)" '
    FILENAME != ARGV[ARGC - 1] { if (FNR > 1) rc[$1, $2] = $4; next }  # the -bnrecal.csv: label, seed → top-1
    FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {
      if (($1, $2) in rc) { v = rc[$1, $2]; rn[$1]++; rs[$1] += v; rq[$1] += v * v }
      k = $1; if (!(k in n)) order[++nk] = k
      n[k]++
      per[k] = per[k] (n[k] > 1 ? ", " : "") sprintf("%s: %.2f", $2, 100 * $(col["q_acc"]))  # seed: top-1, as the rows ran,
      if (($1, $2) in rc) per[k] = per[k] sprintf(" (%.2f)", 100 * rc[$1, $2])                # (re-estimated)
      split("fp32_acc q_acc delta w_bits a_bits weight_kb q_epoch_s step_ratio moved_w moved_a", f, " ")
      for (j in f) { v = $(col[f[j]]); s[k, f[j]] += v; q[k, f[j]] += v * v }
      for (j = 0; j < 2; j++) {  # the largest |bits moved| over seeds: did every run settle?
        v = $(col[j ? "moved_a" : "moved_w"]); v = v < 0 ? -v : v
        if (v > mx[k, j]) mx[k, j] = v
      }
    }
    function ms(k, name, scale, digits,   m, v, sd) {
      m = s[k, name] / n[k]; v = n[k] > 1 ? (q[k, name] - n[k] * m * m) / (n[k] - 1) : 0
      sd = v > 0 ? sqrt(v) : 0  # equal values can round to a tiny negative variance
      if (n[k] == 1) return sprintf("%." digits "f", m * scale)  # one seed: no spread to show
      return sprintf("%." digits "f ± %." digits "f", m * scale, sd * scale)
    }
    function recal_cell(k,   m, v) {  # top-1 with BatchNorm re-estimated: mean ± std (seeds it has)
      if (!rn[k]) return "—"
      m = rs[k] / rn[k]; v = rn[k] > 1 ? (rq[k] - rn[k] * m * m) / (rn[k] - 1) : 0
      return sprintf(rn[k] > 1 ? "%.2f ± %.2f" : "%.2f", 100 * m, 100 * (v > 0 ? sqrt(v) : 0)) (rn[k] < n[k] ? sprintf(" (%d of %d)", rn[k], n[k]) : "")
    }
    END {
      printf "| run | seeds | FP32 top-1 %% | quantized top-1 %% | per seed (seed: top-1 %%%s) |%s Δ points | mean W bits | mean A bits | weight KB | s/epoch | step vs FP32 | bits moved W / A | max \\|moved\\| W / A |\n",
        recal ? " (re-estimated)" : "", recal ? " BatchNorm re-estimated top-1 % |" : ""
      print "|---|---|---|---|---|" (recal ? "---|" : "") "---|---|---|---|---|---|---|---|"
      for (i = 1; i <= nk; i++) {
        k = order[i]
        printf "| %s | %d | %s | %s | %s |%s %s | %s | %s | %s | %s | %s | %s / %s | %.2f / %.2f |\n", k, n[k],
          ms(k, "fp32_acc", 100, 2), ms(k, "q_acc", 100, 2), per[k], recal ? " " recal_cell(k) " |" : "", ms(k, "delta", 100, 2),
          ms(k, "w_bits", 1, 2), ms(k, "a_bits", 1, 2), ms(k, "weight_kb", 1, 1), ms(k, "q_epoch_s", 1, 0),
          ms(k, "step_ratio", 1, 2), ms(k, "moved_w", 1, 2), ms(k, "moved_a", 1, 2), mx[k, 0], mx[k, 1]
      }
    }' "$re" "$1"
}
