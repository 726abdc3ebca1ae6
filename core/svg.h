/* svg.h — a small SVG writer for the plots users look at: line charts (training curves) and
 * bar charts (per-layer bits, histograms). Axes get "nice" ticks (1, 2, 5 × 10^k). */
#ifndef DQ_SVG_H
#define DQ_SVG_H

#include <stdbool.h>

#include "text.h"

typedef struct SvgSeries {
    const char *label;
    const double *x, *y;   // n points
    int n;
    const char *color;     // "#1f77b4"
    bool dashed;
} SvgSeries;

typedef struct SvgAxes {
    double x, y, w, h;           // panel box in the picture
    const char *title, *xlabel, *ylabel;
    double x0, x1, y0, y1;       // data ranges; a range with x0 == x1 is computed from the data
} SvgAxes;

void svg_begin(Text *t, int width, int height);
void svg_end(Text *t);
void svg_text(Text *t, double x, double y, const char *anchor, int size, const char *s);
void svg_line_chart(Text *t, SvgAxes ax, const SvgSeries *series, int n_series);
/* Vertical bars: values[i] at category i, labels optional (every `label_every`-th shown). */
void svg_bar_chart(Text *t, SvgAxes ax, const double *values, int n, const char *const *labels,
                   int label_every, const char *color);

#endif
