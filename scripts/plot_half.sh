#!/bin/sh
# plot_half.sh LABEL=half.csv ... > plot.svg — fp16 gradient underflow over training: one panel
# per run (a loss-scaling policy), the share of each layer's output gradient that underflowed in
# half precision against the epoch, on a log scale (a share of 0 is drawn at the floor, 10^-7).
# One line per tape position of the ops in OPS (default "conv2d linear"; an op matches by its first
# word, so 1x1 and depthwise convolutions count as conv2d), coloured from the
# output end of the network (red, visited first in backward) to the input end (blue). Up to four runs.
#   TITLE="...": the plot's title
#   example: scripts/plot_half.sh none=runs/a/half.csv adaptive=runs/b/half.csv > half.svg
set -eu
if [ $# -eq 0 ] || [ "$1" = "--help" ]; then
  sed -n '2,9p' "$0" | cut -c3-
  [ $# -eq 0 ] && exit 2 || exit 0
fi
[ $# -le 4 ] || { echo "plot_half.sh: error: at most four runs (got $#)" >&2; exit 2; }
. "$(dirname "$0")/plot_lib.sh"
plot_check plot_half.sh half.csv '^epoch,position,op,values,underflow,overflow,log2_scale$' "$@"
plot_runs "$@" | awk -F, -v title="${TITLE:-share of fp16 gradient values that underflow, per layer}" -v ops="${OPS:-conv2d linear}" '
  BEGIN { split(ops, o, " "); for (i in o) want[o[i]] = 1; floor = -7 }
  /^#run / { r++; label[r] = substr($0, 6); next }
  { split($3, w, " ") }  # "conv2d 1x1", "conv2d depthwise": convolutions too
  want[w[1]] && $4 > 0 {
    e = $1 + 0; p = $2 + 0
    if (!((r, p) in seen)) { seen[r, p] = 1; np[r]++; pos[r, np[r]] = p; if (p > pmax[r]) pmax[r] = p }
    v = $5; y[r, p, e] = v > 0 ? log(v) / log(10) : floor
    if (y[r, p, e] < floor) y[r, p, e] = floor
    if (e > emax) emax = e
  }
  END {
    if (!r || !emax) { print "plot_half.sh: error: no rows of the ops " ops > "/dev/stderr"; exit 1 }
    PW = 260; PH = 260; L = 60; T = 50; B = 62; G = 30
    W = L + r * PW + (r - 1) * G + 20; if (W < 520) W = 520; H = T + PH + B
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", W / 2, title
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\" fill=\"#555\">one line per %s output gradient: red at the network'"'"'s output end, blue at its input end</text>\n", W / 2, H - 2, ops
    printf "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">underflow share (log10; floor: 0)</text>\n", T + PH / 2
    for (k = 1; k <= r; k++) {
      x0 = L + (k - 1) * (PW + G)
      printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">%s</text>\n", x0 + PW / 2, T - 8, label[k]
      printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", x0, T, PW, PH
      for (d = floor; d <= 0; d++) {
        yp = T + PH * (-d) / (-floor)
        printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, x0 + PW, yp, yp
        if (k == 1) printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%s</text>\n", x0 - 4, yp + 4, d == floor ? "0" : "1e" d
      }
      for (e = 1; e <= emax; e++) {
        xp = emax > 1 ? x0 + PW * (e - 1) / (emax - 1) : x0 + PW / 2
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%d</text>\n", xp, T + PH + 14, e
      }
      printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n", x0 + PW / 2, T + PH + 30
      for (i = 1; i <= np[k]; i++) {
        p = pos[k, i]; f = pmax[k] > 1 ? (p - 1) / (pmax[k] - 1) : 0  # 0: output end, 1: input end
        col = sprintf("rgb(%d,%d,%d)", 214 - 183 * f, 39 + 80 * f, 40 + 140 * f)
        printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" stroke-opacity=\"0.8\" points=\"", col
        for (e = 1; e <= emax; e++) if ((k, p, e) in y) {
          xp = emax > 1 ? x0 + PW * (e - 1) / (emax - 1) : x0 + PW / 2
          printf "%.1f,%.1f ", xp, T + PH * (-y[k, p, e]) / (-floor)
        }
        printf "\"/>\n"
      }
    }
    printf "</svg>\n"
  }'
