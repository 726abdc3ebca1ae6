#!/bin/sh
# plot_layer_bits.sh LABEL=layers.csv ... > chart.svg — the weight bits of every layer, one line
# per run (the layers.csv the experiments write), layers in model order along x: where do the
# methods agree? Pinned layers are drawn hollow. Up to six runs; all must be of one model.
#   TITLE="...": the chart's title
#   FORMAT=md: a markdown table instead (a row per layer, a column per run, then how many unpinned
#   layers the runs agree on exactly and within one bit)
#   FORMAT=corr: per run its mean bits over the unpinned depthwise and pointwise layers, then per
#   pair of runs the correlation of their unpinned layers' bits and the layers they give the same
#   bits and bits within one
set -eu
if [ $# -eq 0 ] || [ "$1" = "--help" ]; then
  sed -n '2,7p' "$0" | cut -c3-
  [ $# -eq 0 ] && exit 2 || exit 0
fi
. "$(dirname "$0")/plot_lib.sh"
plot_check plot_layer_bits.sh layers.csv '^layer,kind,pinned,params,macs,w_bits,' "$@"
plot_runs "$@" | awk -F, -v title="${TITLE:-weight bits per layer}" -v fmt="${FORMAT:-svg}" '
  /^#run / { r++; label[r] = substr($0, 6); next }
  { n[r]++; name[n[r]] = $1; kind[n[r]] = $2; pin[n[r]] = $3; par[n[r]] = $4; bits[r, n[r]] = $6 }
  END {
    for (k = 2; k <= r; k++)
      if (n[k] != n[1]) { print "plot_layer_bits.sh: error: the runs have different layer counts" > "/dev/stderr"; exit 1 }
    if (fmt == "corr") {
      printf "| run | unpinned layers | mean bits, depthwise | mean bits, pointwise |\n|---|---|---|---|\n"
      for (k = 1; k <= r; k++) {
        f = sd = nd = sp = np = 0
        for (i = 1; i <= n[1]; i++) {
          if (pin[i]) continue
          f++
          if (kind[i] == "depthwise") { sd += bits[k, i]; nd++ }
          if (kind[i] == "pointwise") { sp += bits[k, i]; np++ }
        }
        printf "| %s | %d | %s | %s |\n", label[k], f, nd ? sprintf("%.2f", sd / nd) : "-", np ? sprintf("%.2f", sp / np) : "-"
      }
      printf "\n| pair | correlation | same bits | within one bit |\n|---|---|---|---|\n"
      for (a = 1; a <= r; a++)
        for (c = a + 1; c <= r; c++) {
          m = sa = sc = saa = scc = sac = same = near = 0
          for (i = 1; i <= n[1]; i++) {
            if (pin[i]) continue
            x = bits[a, i]; y = bits[c, i]
            m++; sa += x; sc += y; saa += x * x; scc += y * y; sac += x * y
            same += x == y; near += (x - y <= 1 && y - x <= 1)
          }
          va = saa - sa * sa / m; vc = scc - sc * sc / m
          corr = va > 0 && vc > 0 ? sprintf("%.2f", (sac - sa * sc / m) / sqrt(va * vc)) : "- (constant bits)"
          printf "| %s – %s | %s | %d | %d |\n", label[a], label[c], corr, same, near
        }
      exit 0
    }
    if (fmt == "md") {
      printf "| layer | weights |"; for (k = 1; k <= r; k++) printf " %s |", label[k]; printf "\n|---|---|"
      for (k = 1; k <= r; k++) printf "---|"; printf "\n"
      same = near = free = 0
      for (i = 1; i <= n[1]; i++) {
        printf "| %s%s | %d |", name[i], pin[i] ? " (pinned)" : "", par[i]
        lo = 99; hi = 0
        for (k = 1; k <= r; k++) { printf " %d |", bits[k, i]; lo = bits[k, i] < lo ? bits[k, i] : lo; hi = bits[k, i] > hi ? bits[k, i] : hi }
        printf "\n"
        if (!pin[i]) { free++; same += hi == lo; near += hi - lo <= 1 }
      }
      printf "\nOf %d unpinned layers the %d runs give %d the same bits and %d bits within one of each other.\n", free, r, same, near
      exit 0
    }
    L = n[1]; W = 60 + 14 * L + 170; H = 380; left = 50; T = 40; B = 120; pw = 14 * L; ph = H - T - B
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", left + pw / 2, title
    for (b = 2; b <= 8; b++) {
      y = T + ph * (8.5 - b) / 7
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", left, left + pw, y, y
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%d</text>\n", left - 6, y + 4, b
    }
    for (i = 1; i <= L; i++) {
      x = left + 14 * (i - 0.5)
      printf "<text transform=\"translate(%.1f,%d) rotate(-60)\" text-anchor=\"end\" font-size=\"9\">%s</text>\n", x + 3, T + ph + 8, name[i]
    }
    split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b", colors, " ")
    for (k = 1; k <= r && k <= 6; k++) {
      off = (k - (r + 1) / 2) * 2.2  # side by side where runs agree
      printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" opacity=\"0.8\" points=\"", colors[k]
      for (i = 1; i <= L; i++) printf "%.1f,%.1f ", left + 14 * (i - 0.5) + off, T + ph * (8.5 - bits[k, i]) / 7
      printf "\"/>\n"
      for (i = 1; i <= L; i++)
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.6\" fill=\"%s\" stroke=\"%s\"/>\n", left + 14 * (i - 0.5) + off,
          T + ph * (8.5 - bits[k, i]) / 7, pin[i] == 1 ? "white" : colors[k], colors[k]
      ly = T + 10 + 20 * (k - 1)
      printf "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", left + pw + 15, left + pw + 35, ly, ly, colors[k]
      printf "<text x=\"%d\" y=\"%d\" font-size=\"12\">%s</text>\n", left + pw + 40, ly + 4, label[k]
    }
    printf "<text transform=\"translate(16,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">weight bits</text>\n", T + ph / 2
    printf "</svg>\n"
  }'
