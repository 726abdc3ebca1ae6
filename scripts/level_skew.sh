#!/bin/sh
# level_skew.sh layers.csv ... — how far each run's quantizers are from a grid centred on 0, from
# the layers.csv the experiments write (unpinned layers): the weight levels next to 0 as the ratio
# above / −below (1 for LSQ's k·s; 3 for DDQ's merged grid, whose pinned block spans [0, s): its
# neighbours sit at −s/2 and +3s/2) and the activation's two levels above 0 as the ratio
# level 2 / level 1 (2 for a uniform grid through 0; 5/3 for DDQ's merged grid). Median, smallest
# and largest over the layers, one line per file.
set -eu
if [ $# -eq 0 ] || [ "$1" = "--help" ]; then
  sed -n '2,7p' "$0" | cut -c3-
  [ "${1:-}" = "--help" ] && exit 0 || exit 2
fi
for f in "$@"; do
  [ -r "$f" ] || { echo "level_skew.sh: $f: error: cannot read the file" >&2; exit 1; }
  head -1 "$f" | grep -q ',w_level_below_0,w_level_above_0,a_level_1,a_level_2$' ||
    { echo "level_skew.sh: $f: error: no level columns (a layers.csv written before 2026-11-30 12:25 UTC: resume the run to rewrite it)" >&2; exit 1; }
  awk -F, -v file="$f" '
    function sort(x, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t } }
    function med(x, k) { return k % 2 ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2 }
    NR > 1 && $3 == 0 && $14 != "" && $15 != "" && $14 < 0 { w[++n] = $15 / -$14 }
    NR > 1 && $3 == 0 && $16 != "" && $17 != "" && $16 > 0 { a[++m] = $17 / $16 }
    END {
      sort(w, n); sort(a, m)
      if (n) printf "%s: weights above/-below median %.2f [%.2f, %.2f] over %d layers", file, med(w, n), w[1], w[n], n
      else printf "%s: weights: no layer with levels on both sides of 0", file
      if (m) printf "; activations level2/level1 median %.2f [%.2f, %.2f] over %d layers\n", med(a, m), a[1], a[m], m
      else printf "; activations: no layer with two levels above 0\n"
    }' "$f"
done
