#!/bin/sh
# test_sweep_lib.sh — the sweep helpers of scripts/sweep_lib.sh against a stand-in experiment:
# run_exp appends one row per label and seed and skips it the second time; run_recal appends the
# re-estimated top-1 of finished rows only, once, and stops the sweep when the run gives none;
# summarize shows the re-estimates per seed and as a column; write_plot keeps a plot its plotter
# could not draw; paired.sh differences two rows seed by seed; plot_budget.sh keeps the labels of
# crowded points apart. Run by .ci/run.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test_sweep_lib.sh: FAIL: $*" >&2; exit 1; }
# the stand-in: top-1 0.8 + seed/100; with --q_bn_recal, re-estimated 0.5 + seed/100 (seed 9: none)
cat >"$tmp/exp" <<'SH'
#!/bin/sh
seed=1; recal=0
for a in "$@"; do case $a in --seed=*) seed=${a#--seed=} ;; --q_bn_recal=*) recal=${a#--q_bn_recal=} ;; esac; done
echo "$*" >>"$(dirname "$0")/calls"
r=""
[ "$recal" -gt 0 ] && [ "$seed" != 9 ] && r=" bn_recal_acc=0.5$seed"
echo "RESULT method=ddq q_acc=0.8$seed w_bits=3.000 a_bits=3.000$r"
SH
chmod +x "$tmp/exp"
SWEEP_DATA=$tmp
. scripts/sweep_lib.sh
csv=$tmp/t.csv
mkdir -p runs/sweeps
for pass in 1 2; do
  for seed in 1 2; do
    run_exp "$csv" "x" "$tmp/exp" --seed=$seed >/dev/null
    run_recal "$csv" "x" "$tmp/exp" --seed=$seed >/dev/null
  done
done
[ "$(grep -c '^x,' "$csv")" = 2 ] || fail "rows: $(cat "$csv")"
[ "$(cat "${csv%.csv}-bnrecal.csv")" = "label,seed,q_acc,bn_recal_acc
x,1,0.81,0.51
x,2,0.82,0.52" ] || fail "re-estimates: $(cat "${csv%.csv}-bnrecal.csv")"
[ "$(grep -c -- '--q_bn_recal=100 --resume=true' "$tmp/calls")" = 2 ] || fail "calls: $(cat "$tmp/calls")"
run_recal "$csv" "y" "$tmp/exp" --seed=3 >/dev/null  # no row y: nothing to re-estimate
[ "$(wc -l <"$tmp/calls")" = 4 ] || fail "re-estimated a row that did not run"
run_exp "$csv" "z" "$tmp/exp" --seed=9 >/dev/null
if (run_recal "$csv" "z" "$tmp/exp" --seed=9 >/dev/null 2>&1); then fail "a run without bn_recal_acc passed"; fi
table=$(summarize "$csv")
printf '%s\n' "$table" | grep -q '| x | 2 | .* | 81.50 ± 0.71 | 1: 81.00 (51.00), 2: 82.00 (52.00) | 51.50 ± 0.71 |' ||
  fail "table: $table"
printf '%s\n' "$table" | grep -q '| z | 1 | .* | 89.00 | 9: 89.00 | — |' || fail "table without a re-estimate: $table"
# write_plot: a failing or silent plotter leaves the old file; a working one replaces it
echo old >"$tmp/p.svg"
write_plot "$tmp/p.svg" sh -c 'echo partial; echo "plot: error: no runs" >&2; exit 1' 2>"$tmp/note"
[ "$(cat "$tmp/p.svg")" = old ] || fail "a failed plot replaced the file: $(cat "$tmp/p.svg")"
grep -q 'kept as it was (plot: error: no runs)' "$tmp/note" || fail "note: $(cat "$tmp/note")"
write_plot "$tmp/p.svg" true 2>/dev/null
[ "$(cat "$tmp/p.svg")" = old ] || fail "an empty plot replaced the file"
write_plot "$tmp/p.svg" env T=new sh -c 'echo "$T"'
[ "$(cat "$tmp/p.svg")" = new ] || fail "a good plot did not replace the file: $(cat "$tmp/p.svg")"
[ "$(ls "$tmp" | grep -c 'p\.svg')" = 1 ] || fail "left behind: $(ls "$tmp")"
# paired.sh: seed by seed over the seeds both rows have; fragile when either row's figures differ by > 1
printf 'label,seed,method,q_acc\na,1,ddq,0.90\na,2,ddq,0.80\na,3,ddq,0.70\nb,1,lsq,0.85\nb,2,lsq,0.81\n' >"$tmp/p.csv"
printf 'label,seed,q_acc,bn_recal_acc\na,1,0.90,0.905\na,2,0.80,0.70\nb,1,0.85,0.85\n' >"$tmp/p-bnrecal.csv"
out=$(scripts/paired.sh "$tmp/p.csv:a" ":b")
[ "$out" = "seed=1 a=90.00 b=85.00 diff=+5.00 a_re=90.50 b_re=85.00 diff_re=+5.50 fragile=no
seed=2 a=80.00 b=81.00 diff=-1.00 a_re=70.00 b_re=- diff_re=- fragile=yes
mean seeds=2 diff=+2.00±4.24 diff_re=+5.50 solid_seeds=1 solid_diff=+5.00 solid_diff_re=+5.50" ] || fail "paired: $out"
if scripts/paired.sh "$tmp/p.csv:a" ":c" 2>/dev/null; then fail "paired.sh passed with no common seed"; fi
# plot_budget.sh: labels of points at one spot do not overlap, and stay inside the frame
printf 'label,seed,q_acc,w_bits,weight_kb,fp32_acc\nx W3,1,0.900,3,100,0.92\ny W3,1,0.901,3,100,0.92\nz W3,1,0.899,3,100,0.92\nx W4,1,0.95,4,130,0.92\n' >"$tmp/b.csv"
ys=$(X=bits scripts/plot_budget.sh "$tmp/b.csv" | sed -n 's/^<text x="[0-9.]*" y="\([0-9.]*\)" font-size="10"[^>]*>[xyz] W.*/\1/p' | sort -n)
[ "$(echo "$ys" | wc -l)" = 4 ] || fail "plot_budget.sh: expected 4 point labels, got: $ys"
echo "$ys" | awk 'NR > 1 && $1 - p < 11 { bad = 1 } { p = $1 } $1 < 51 || $1 > 378 { bad = 1 } END { exit bad }' ||
  fail "plot_budget.sh: labels overlap or leave the frame at y = $(echo $ys)"
rm -f "runs/sweeps/t.log"
echo "test_sweep_lib.sh: ok"
