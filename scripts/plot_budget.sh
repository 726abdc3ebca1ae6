#!/bin/sh
# plot_budget.sh CSV > plot.svg — top-1 (mean over seeds, with ± one standard deviation as an
# error bar where a point has more than one seed) against weight memory, one line per method (the
# label's first word), from a sweep CSV written by sweep_lib.sh.
#   X=kb (default): weight KB;  X=bits: mean weight bits (the Pareto view of issue 13)
#   TITLE="...": the plot's title;  XLABEL="...": the x axis's label
#   YMIN=v: the y axis starts at v %; a point below it is drawn on the axis as a triangle pointing
#           down, its label carrying its value (so one collapsed row does not squash the others)
# A dashed line marks the FP32 top-1 (the mean of the CSV's fp32_acc column, when it has one).
set -eu
case "${YMIN:-0}" in ''|*[!0-9.]*) echo "plot_budget.sh: error: YMIN='${YMIN}' is not a number" >&2; exit 2 ;; esac
awk -F, -v xaxis="${X:-kb}" -v title="${TITLE:-top-1 against weight memory}" -v ymin="${YMIN:-}" -v xlabel="${XLABEL:-}" '
  # a label baseline near y whose box (x from a to b, 11 px tall) overlaps no label placed so far:
  # y itself, else 12, 24, ... px below or above it, whichever comes first, inside the frame; the
  # box is then kept
  function free_y(a, b, y,    d, s, c, j, hit) {
    for (d = 0; d <= 120; d += 12)
      for (s = -1; s <= 1; s += 2) {
        c = y + s * d; if (c < T + 12 || c > H - B - 2) continue  # inside the frame
        hit = 0
        for (j = 1; j <= nbox && !hit; j++) hit = a < bx1[j] && b > bx0[j] && c > by[j] - 11 && c - 11 < by[j]
        if (!hit) { nbox++; bx0[nbox] = a; bx1[nbox] = b; by[nbox] = c; return c }
      }
    nbox++; bx0[nbox] = a; bx1[nbox] = b; by[nbox] = y; return y
  }
  NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
  {
    k = $1; if (!(k in n)) order[++nk] = k; n[k]++
    a = $(col["q_acc"]) * 100; acc[k] += a; acc2[k] += a * a
    xs[k] += xaxis == "bits" ? $(col["w_bits"]) : $(col["weight_kb"])
    if ("fp32_acc" in col && $(col["fp32_acc"]) > 0) { fp += $(col["fp32_acc"]) * 100; nfp++ }
  }
  END {
    W = 720; H = 440; L = 70; R = 30; T = 40; B = 60; CW = 5.8  # CW: about the width of a 10 px character
    x0 = 1e30; x1 = -1e30; y0 = 1e30; y1 = -1e30
    for (i = 1; i <= nk; i++) {
      k = order[i]; x = xs[k] / n[k]; y = acc[k] / n[k]
      v = n[k] > 1 ? (acc2[k] - n[k] * y * y) / (n[k] - 1) : 0; sd[k] = v > 0 ? sqrt(v) : 0
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y - sd[k] < y0) y0 = y - sd[k]; if (y + sd[k] > y1) y1 = y + sd[k]
    }
    if (nfp) { fp /= nfp; if (fp > y1) y1 = fp }
    if (ymin != "") { y0 = ymin + 0; floor = 1 }
    if (x1 <= x0) x1 = x0 + 1; if (y1 <= y0) y1 = y0 + 1
    px = (x1 - x0) * 0.08; py = (y1 - y0) * 0.1; x0 -= px; x1 += px; y1 += py
    if (!floor) y0 -= py
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", W / 2, title
    printf "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", L, T, W - L - R, H - T - B
    for (t = 0; t <= 4; t++) {
      yv = y0 + (y1 - y0) * t / 4; yp = H - B - (H - T - B) * t / 4
      xv = x0 + (x1 - x0) * t / 4; xp = L + (W - L - R) * t / 4
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%.2f</text>\n", L - 5, yp + 4, yv
      printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", xp, H - B + 16,
        sprintf(xaxis == "bits" ? "%.2f" : "%.0f", xv)
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n", (W + L - R) / 2, H - 20,
      xlabel != "" ? xlabel : xaxis == "bits" ? "mean weight bits" : "weight KB"
    printf "<text transform=\"translate(20,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">top-1 %% (± 1 std over seeds)</text>\n", (H + T - B) / 2
    if (nfp && fp >= y0) {  # the FP32 reference
      yp = H - B - (fp - y0) / (y1 - y0) * (H - T - B)
      printf "<path d=\"M%d,%.1f H%d\" stroke=\"#777\" stroke-dasharray=\"5,4\" fill=\"none\"/>\n", L, yp, W - R
      printf "<text x=\"%d\" y=\"%.1f\" font-size=\"10\" fill=\"#555\">FP32 %.2f</text>\n", L + 6, yp - 4, fp
      free_y(L + 6, L + 6 + CW * length("FP32 00.00"), yp - 4)  # kept first: point labels keep off it
    }
    split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #17becf", colors, " ")
    nm = 0
    for (i = 1; i <= nk; i++) { split(order[i], w, " "); m = w[1]; if (!(m in mi)) { mi[m] = ++nm; mname[nm] = m } }
    for (j = 1; j <= nm; j++) {
      pts = ""; c = colors[(j - 1) % 8 + 1]
      for (i = 1; i <= nk; i++) {
        split(order[i], w, " "); if (w[1] != mname[j]) continue
        k = order[i]; x = L + (xs[k] / n[k] - x0) / (x1 - x0) * (W - L - R)
        yv = acc[k] / n[k]; below = floor && yv < y0
        y = H - B - ((below ? y0 : yv) - y0) / (y1 - y0) * (H - T - B)
        pts = pts sprintf("%.1f,%.1f ", x, y)
        if (below) {  # off the axis: a triangle on it pointing down, the value in the label
          printf "<path d=\"M%.1f,%.1f L%.1f,%.1f L%.1f,%.1f Z\" fill=\"%s\"/>\n", x - 5, y - 8, x + 5, y - 8, x, y, c
          label = sprintf("%s (%d): %.2f", k, n[k], yv)
          printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%s</text>\n", x + 6, free_y(x + 6, x + 6 + CW * length(label), y - 10), label
          continue
        }
        if (sd[k] > 0) {  # error bar with caps
          e = sd[k] / (y1 - y0) * (H - T - B); lo = y + e > H - B ? H - B : y + e  # cut at the axis
          printf "<path d=\"M%.1f,%.1f V%.1f M%.1f,%.1f H%.1f M%.1f,%.1f H%.1f\" stroke=\"%s\" fill=\"none\"/>\n",
            x, y - e, lo, x - 4, y - e, x + 4, x - 4, lo, x + 4, c
        }
        printf "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, y, c
        right = x > W - R - 120  # near the right edge: the label goes to the left of its point
        label = sprintf("%s (%d)", k, n[k]); lw = CW * length(label); lx = right ? x - 6 - lw : x + 6
        ly = free_y(lx, lx + lw, y - 6)
        if (ly != y - 6)  # moved off a crowded spot: a thin leader from the point to its label
          printf "<path d=\"M%.1f,%.1f L%.1f,%.1f\" stroke=\"#aaa\" stroke-width=\"0.7\" fill=\"none\"/>\n", x, y,
            right ? x - 6 : x + 6, ly - (ly > y ? 9 : -2)
        printf "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\"%s>%s</text>\n", right ? x - 6 : x + 6, ly,
          right ? " text-anchor=\"end\"" : "", label
      }
      printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/>\n", c, pts
    }
    for (j = 1; j <= nm; j++)  # the legend, bottom right: accuracy rises with bits, so that corner is empty
      printf "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"%s\">%s</text>\n", W - R - 90, H - B - 10 - 18 * (nm - j),
        colors[(j - 1) % 8 + 1], mname[j]
    print "</svg>"
  }' "$1"
