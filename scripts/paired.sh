#!/bin/sh
# paired.sh — the difference between two rows of the sweeps' tables, seed by seed: what one part
# of a method is worth when both rows ran on the same FP32 model and the same seeds.
#   scripts/paired.sh CSV:LABEL CSV:LABEL
#   scripts/paired.sh docs/data/ablations-mobilenetv2-default-w3.csv:default \
#                     docs/data/ablations-mobilenetv2-default-w3.csv:fixed_bits
# CSV is a sweep's CSV (docs/data/*.csv, written by scripts/sweep_lib.sh run_exp); LABEL a value of
# its first column. The second CSV may be omitted ("A.csv:x :y" compares x and y of A.csv).
# One line per seed both rows have, then the mean ± sample std over those seeds, in top-1 points:
#   seed=1 a=90.89 b=89.44 diff=+1.45 a_re=91.19 b_re=89.39 diff_re=+1.80 fragile=no
#   mean seeds=3 diff=+1.17±0.35 diff_re=+1.30±0.45 solid_seeds=3 solid_diff=+1.17±0.35 solid_diff_re=+1.30±0.45
# a_re / b_re: top-1 with BatchNorm re-estimated (the CSV's -bnrecal.csv; "-" when it has none).
# fragile=yes when either row's two figures differ by more than FRAGILE points (1): its top-1 says
# more about BatchNorm statistics than the quantizer (docs/results.md); fragile=unknown when a
# re-estimate is missing. solid_*: the seeds whose fragile is "no".
set -eu
usage() { echo "usage: scripts/paired.sh CSV:LABEL [CSV]:LABEL   (the difference of two sweep rows, seed by seed)"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -eq 2 ] || { usage >&2; exit 2; }
a_csv=${1%%:*}; a_label=${1#*:}; b_csv=${2%%:*}; b_label=${2#*:}
[ -n "$b_csv" ] || b_csv=$a_csv
for f in "$a_csv" "$b_csv"; do
  [ -f "$f" ] || { echo "paired.sh: $f: error: no such file" >&2; exit 1; }
done
[ "$1" != "${1#*:}" ] && [ "$2" != "${2#*:}" ] || { echo "paired.sh: error: each row is CSV:LABEL" >&2; exit 2; }
# rows of one file: "label seed q_acc" from the CSV, "label seed re" from its -bnrecal.csv when present
rows() {  # rows CSV LABEL TAG: "TAG seed q_acc re" per seed of LABEL
  re=${1%.csv}-bnrecal.csv
  [ -f "$re" ] || re=/dev/null
  awk -F, -v l="$2" -v t="$3" '
    FILENAME == ARGV[1] { if (FNR > 1 && $1 == l) r[$2] = $4; next }
    FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; if (!("q_acc" in col)) { print "nocol"; exit } next }
    $1 == l { print t, $2, $(col["q_acc"]), ($2 in r) ? r[$2] : "-" }' "$re" "$1"
}
{ rows "$a_csv" "$a_label" a; rows "$b_csv" "$b_label" b; } | awk -v fr="${FRAGILE:-1}" -v an="$a_csv:$a_label" -v bn="$b_csv:$b_label" '
  $1 == "nocol" { print "paired.sh: error: a CSV without a q_acc column (not a sweep CSV)" > "/dev/stderr"; bad = 1; exit 1 }
  { q[$1, $2] = 100 * $3; re[$1, $2] = $4 == "-" ? "-" : 100 * $4; if ($1 == "a") seeds[++ns] = $2; has[$1, $2] = 1 }
  function add(name, v) { n[name]++; s[name] += v; ss[name] += v * v }
  function ms(name,   m, v) {
    if (!n[name]) return "-"
    m = s[name] / n[name]; v = n[name] > 1 ? (ss[name] - n[name] * m * m) / (n[name] - 1) : 0
    return n[name] > 1 ? sprintf("%+.2f±%.2f", m, v > 0 ? sqrt(v) : 0) : sprintf("%+.2f", m)
  }
  function gap(t, k) { return re[t, k] == "-" ? 0 : (q[t, k] > re[t, k] ? q[t, k] - re[t, k] : re[t, k] - q[t, k]) }
  END {
    if (bad) exit 1
    for (i = 1; i <= ns; i++) {
      k = seeds[i]; if (!has["b", k]) continue
      d = q["a", k] - q["b", k]; add("diff", d)
      both = re["a", k] != "-" && re["b", k] != "-"
      if (both) { dr = re["a", k] - re["b", k]; add("re", dr) }
      f = gap("a", k) > fr || gap("b", k) > fr ? "yes" : both ? "no" : "unknown"  # unknown: no re-estimate
      if (f == "no") { add("sdiff", d); add("sre", dr) }
      printf "seed=%s a=%.2f b=%.2f diff=%+.2f a_re=%s b_re=%s diff_re=%s fragile=%s\n", k, q["a", k], q["b", k], d,
        re["a", k] == "-" ? "-" : sprintf("%.2f", re["a", k]), re["b", k] == "-" ? "-" : sprintf("%.2f", re["b", k]),
        both ? sprintf("%+.2f", dr) : "-", f
    }
    if (!n["diff"]) { printf "paired.sh: error: no seed has both %s and %s\n", an, bn > "/dev/stderr"; exit 1 }
    printf "mean seeds=%d diff=%s diff_re=%s solid_seeds=%d solid_diff=%s solid_diff_re=%s\n",
      n["diff"], ms("diff"), ms("re"), n["sdiff"], ms("sdiff"), ms("sre")
  }'
