#!/bin/sh
# plot_ptq.sh CSV > plot.svg — issue 15's post-training comparison (the CSV of sweep_ptq.sh): top-1
# (mean ± std over calibration seeds) against stored bits per weight, one line per method —
# mp-W<b>: multipoint of b-bit points at 1 / 1.25 / 1.5 points; minmax-ch, minmax: min/max per
# channel and per tensor across bit widths; LSQ-ft, DDQ-ft: fine-tuned — drawn by plot_budget.sh.
#   TITLE="...": the plot's title
#   YMIN=v: passed to plot_budget.sh (the y axis starts at v %; lower points drawn on it)
set -eu
if [ $# -ne 1 ] || [ "$1" = "--help" ]; then
  sed -n '2,7p' "$0" | cut -c3-
  [ "${1:-}" = "--help" ] && exit 0 || exit 2
fi
[ -r "$1" ] || { echo "plot_ptq.sh: $1: error: cannot read the file" >&2; exit 1; }
head -1 "$1" | grep -q '^label,seed,method,.*,w_bits,' || { echo "plot_ptq.sh: $1: error: not a sweep CSV (label,seed,method,…,w_bits,…)" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
head -1 "$1" >"$tmp"
# each row relabelled "<series> <point>", then sorted by series and stored bits so that a line runs left to right
awk -F, -v OFS=, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  { split($1, w, " "); b = w[2]; sub(/A8$/, "", b)
    if (w[1] ~ /^mp/) $1 = "mp-" b " " substr(w[1], 3) "pt"
    else if (w[1] == "minmax_ch") $1 = "minmax-ch " b
    else if (w[1] == "minmax") $1 = "minmax " b
    else if (w[1] == "lsq_ft") $1 = "LSQ-ft " b
    else if (w[1] == "ddq_ft") $1 = "DDQ-ft " b
    split($1, s, " "); printf "%s\t%s\t%s\n", s[1], $(col["w_bits"]), $0 }' "$1" |
  sort -t "$(printf '\t')" -k1,1 -k2,2n -s | cut -f3- >>"$tmp"
X=bits XLABEL="stored bits per weight (bits × points)" TITLE="${TITLE:-post-training quantization: top-1 against stored bits per weight}" "$(dirname "$0")/plot_budget.sh" "$tmp"
