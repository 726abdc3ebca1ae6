/* svg.c — line and bar charts with axes, ticks, labels and a legend. */
#include "svg.h"

#include <math.h>
#include <stdio.h>

void svg_begin(Text *t, int width, int height) {
    text_printf(t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                   "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", width, height, width, height);
    text_printf(t, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
}

void svg_end(Text *t) { text_printf(t, "</svg>\n"); }

static void escaped(Text *t, const char *s) {
    for (; *s; s++) {
        if (*s == '<') text_printf(t, "&lt;");
        else if (*s == '>') text_printf(t, "&gt;");
        else if (*s == '&') text_printf(t, "&amp;");
        else text_printf(t, "%c", *s);
    }
}

void svg_text(Text *t, double x, double y, const char *anchor, int size, const char *s) {
    text_printf(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%d\">", x, y, anchor, size);
    escaped(t, s);
    text_printf(t, "</text>\n");
}

static double nice_step(double span, int target) {
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void frame(Text *t, const SvgAxes *a) {
    text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n",
                a->x, a->y, a->w, a->h);
    if (a->title) svg_text(t, a->x + a->w / 2, a->y - 8, "middle", 14, a->title);
    if (a->xlabel) svg_text(t, a->x + a->w / 2, a->y + a->h + 34, "middle", 12, a->xlabel);
    if (a->ylabel) {
        text_printf(t, "<text transform=\"translate(%.1f,%.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">",
                    a->x - 46, a->y + a->h / 2);
        escaped(t, a->ylabel);
        text_printf(t, "</text>\n");
    }
}

static void y_ticks(Text *t, const SvgAxes *a) {
    double step = nice_step(a->y1 - a->y0, 5);
    for (double v = ceil(a->y0 / step) * step; v <= a->y1 + 1e-9 * step; v += step) {
        double py = a->y + a->h - (v - a->y0) / (a->y1 - a->y0) * a->h;
        char s[32];
        snprintf(s, sizeof s, "%g", fabs(v) < 1e-12 * step ? 0.0 : v);
        text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", a->x, py, a->x + a->w, py);
        svg_text(t, a->x - 5, py + 4, "end", 11, s);
    }
}

void svg_line_chart(Text *t, SvgAxes a, const SvgSeries *series, int n_series) {
    if (a.x0 == a.x1 || a.y0 == a.y1) {
        double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (int s = 0; s < n_series; s++)
            for (int i = 0; i < series[s].n; i++) {
                if (!isfinite(series[s].y[i])) continue;
                x0 = fmin(x0, series[s].x[i]), x1 = fmax(x1, series[s].x[i]);
                y0 = fmin(y0, series[s].y[i]), y1 = fmax(y1, series[s].y[i]);
            }
        if (!(x0 < x1)) x0 = isfinite(x0) ? x0 - 1 : 0, x1 = x0 + 2;
        if (!(y0 < y1)) y0 = isfinite(y0) ? y0 - 1 : 0, y1 = y0 + 2;
        double pad = 0.05 * (y1 - y0);
        if (a.x0 == a.x1) a.x0 = x0, a.x1 = x1;
        if (a.y0 == a.y1) a.y0 = y0 - pad, a.y1 = y1 + pad;
    }
    frame(t, &a);
    y_ticks(t, &a);
    double step = nice_step(a.x1 - a.x0, 6);
    for (double v = ceil(a.x0 / step) * step; v <= a.x1 + 1e-9 * step; v += step) {
        double px = a.x + (v - a.x0) / (a.x1 - a.x0) * a.w;
        char s[32];
        snprintf(s, sizeof s, "%g", v);
        svg_text(t, px, a.y + a.h + 16, "middle", 11, s);
    }
    for (int s = 0; s < n_series; s++) {
        const SvgSeries *se = &series[s];
        text_printf(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", se->color,
                    se->dashed ? " stroke-dasharray=\"6,4\"" : "");
        for (int i = 0; i < se->n; i++) {
            if (!isfinite(se->y[i])) continue;
            double px = a.x + (se->x[i] - a.x0) / (a.x1 - a.x0) * a.w;
            double py = a.y + a.h - (se->y[i] - a.y0) / (a.y1 - a.y0) * a.h;
            text_printf(t, "%.1f,%.1f ", px, py);
        }
        text_printf(t, "\"/>\n");
        double ly = a.y + 16 + 16 * s;  // legend, top right
        text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                    a.x + a.w - 150, ly - 4, a.x + a.w - 128, ly - 4, se->color,
                    se->dashed ? " stroke-dasharray=\"6,4\"" : "");
        svg_text(t, a.x + a.w - 122, ly, "start", 11, se->label);
    }
}

void svg_bar_chart(Text *t, SvgAxes a, const double *v, int n, const char *const *labels,
                   int label_every, const char *color) {
    if (a.y0 == a.y1) {
        a.y0 = 0, a.y1 = 1e-12;
        for (int i = 0; i < n; i++) a.y1 = fmax(a.y1, v[i]);
        a.y1 *= 1.05;
    }
    frame(t, &a);
    y_ticks(t, &a);
    double bw = a.w / (n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        double h = (fmax(v[i], a.y0) - a.y0) / (a.y1 - a.y0) * a.h;
        text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                    a.x + i * bw + 0.1 * bw, a.y + a.h - h, 0.8 * bw, h, color);
        if (labels && label_every > 0 && i % label_every == 0)
            text_printf(t, "<text transform=\"translate(%.1f,%.1f) rotate(60)\" font-size=\"9\">%s</text>\n",
                        a.x + (i + 0.5) * bw, a.y + a.h + 6, labels[i]);
    }
}
