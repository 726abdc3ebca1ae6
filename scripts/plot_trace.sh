#!/bin/sh
# plot_trace.sh LABEL=TRACE.csv ... > plot.svg — DDQ's controller over a run: mean weight bits
# (solid) and mean activation bits (dashed) against the step, one colour per run, from the
# ddq_trace.csv files the experiments write; the budget in effect is the grey line, the joint
# phase the shaded band. Up to five runs.
#   TITLE="...": the plot's title
#   example: scripts/plot_trace.sh dual=runs/a/ddq_trace.csv pi=runs/b/ddq_trace.csv > trace.svg
set -eu
if [ $# -eq 0 ] || [ "$1" = "--help" ]; then
  sed -n '2,7p' "$0" | cut -c3-
  [ $# -eq 0 ] && exit 2 || exit 0
fi
. "$(dirname "$0")/plot_lib.sh"
plot_check plot_trace.sh ddq_trace.csv '^step,phase,lambda_w,lambda_a,mean_w_bits,mean_a_bits,target_w,target_a$' "$@"
plot_runs "$@" | awk -F, -v title="${TITLE:-DDQ mean bits during fine-tuning}" '
  /^#run / { r++; label[r] = substr($0, 6); next }
  {
    n[r]++; s = $1 + 0; st[r, n[r]] = s; wb[r, n[r]] = $5; ab[r, n[r]] = $6; tw[r, n[r]] = $7
    if (s > smax) smax = s
    if ($2 == 1 && (j0 == "" || s < j0)) j0 = s
    if ($2 == 1 && s > j1) j1 = s
  }
  END {
    W = 800; H = 420; L = 60; R = 200; T = 40; B = 50; y0 = 2; y1 = 8.2
    pw = W - L - R; ph = H - T - B
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", (W - R + L) / 2, title
    if (j0 != "")
      printf "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#eef\"/>\n", L + pw * j0 / smax, T, pw * (j1 - j0) / smax, ph
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph
    for (b = 2; b <= 8; b++) {
      yp = T + ph * (y1 - b) / (y1 - y0)
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%d</text>\n", L - 5, yp + 4, b
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, L + pw, yp, yp
    }
    for (t = 0; t <= 4; t++)
      printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%d</text>\n", L + pw * t / 4, H - B + 16, smax * t / 4
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">step (shaded: joint phase)</text>\n", L + pw / 2, H - 12
    printf "<text transform=\"translate(18,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">mean bits</text>\n", T + ph / 2
    split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd", colors, " ")
    # the budget in effect (the first run'"'"'s weight target; a ramp shows as a slope)
    printf "<polyline fill=\"none\" stroke=\"#888\" stroke-width=\"1.5\" points=\""
    for (i = 1; i <= n[1]; i++) printf "%.1f,%.1f ", L + pw * st[1, i] / smax, T + ph * (y1 - tw[1, i]) / (y1 - y0)
    printf "\"/>\n"
    for (k = 1; k <= r && k <= 5; k++) {
      for (kind = 0; kind < 2; kind++) {
        printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.3\"%s points=\"", colors[k], kind ? " stroke-dasharray=\"5,3\"" : ""
        for (i = 1; i <= n[k]; i++) {
          v = kind ? ab[k, i] : wb[k, i]
          printf "%.1f,%.1f ", L + pw * st[k, i] / smax, T + ph * (y1 - v) / (y1 - y0)
        }
        printf "\"/>\n"
      }
      ly = T + 16 + 36 * (k - 1)
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", W - R + 10, W - R + 30, ly, ly, colors[k]
      printf "<text x=\"%d\" y=\"%d\" font-size=\"11\">%s</text>\n", W - R + 35, ly + 4, label[k]
      printf "<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#555\">solid W, dashed A</text>\n", W - R + 35, ly + 17
    }
    printf "</svg>\n"
  }'
