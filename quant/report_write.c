/* report_write.c — the per-layer report as files: layers.csv, bits.svg (bits per layer),
 * levels.svg (each layer's weight histogram with its levels over it). See report.h. */
#include "report.h"

#include <math.h>
#include <stdio.h>

#include "core/error.h"
#include "core/svg.h"
#include "core/text.h"

static void save(const Text *t, const char *dir, const char *file) {
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (!text_save(t, path, err, sizeof err)) DQ_FATAL_FILE(path, "%s", err);
}

void quant_report_write_csv(const QuantLayerInfo *rows, int n, const char *dir) {
    Text t;
    text_init(&t);
    text_printf(&t, "layer,kind,pinned,params,macs,w_bits,a_bits,w_level_lo,w_level_hi,distinct_w_levels,weight_bytes,"
                    "int_codes_alone,int_codes_chained,w_level_below_0,w_level_above_0,a_level_1,a_level_2\n");
    for (int i = 0; i < n; i++) {
        const QuantLayerInfo *r = &rows[i];
        text_printf(&t, "%s,%s,%d,%lld,%lld,%d,%d,%.6g,%.6g,%d,%.1f,", r->name, r->kind, r->pinned, r->params,
                    r->macs, r->w_bits, r->a_bits, r->w_lo, r->w_hi, r->w_levels, r->w_bytes);
        if (r->int_alone >= 0) text_printf(&t, "%.6f,%.6f", r->int_alone, r->int_chain);
        else text_printf(&t, ",");
        const float near[4] = {r->w_below0, r->w_above0, r->a_level1, r->a_level2};
        for (int k = 0; k < 4; k++)
            if (isnan(near[k])) text_printf(&t, ",");
            else text_printf(&t, ",%.6g", near[k]);
        text_printf(&t, "\n");
    }
    save(&t, dir, "layers.csv");
    text_free(&t);
}

void quant_report_write_bits_svg(const QuantLayerInfo *rows, int n, const char *dir, const char *title) {
    double *w = dq_malloc(2 * (size_t)n * sizeof(double)), *a = w + n;
    const char **labels = dq_malloc((size_t)n * sizeof *labels);
    for (int i = 0; i < n; i++) w[i] = rows[i].w_bits, a[i] = rows[i].a_bits, labels[i] = rows[i].name;
    Text t;
    text_init(&t);
    int width = 140 + 14 * n;
    svg_begin(&t, width, 640);
    svg_text(&t, width / 2.0, 22, "middle", 15, title);
    svg_bar_chart(&t, (SvgAxes){.x = 70, .y = 50, .w = width - 100, .h = 180, .title = "weight bits per layer",
                                .xlabel = NULL, .ylabel = "bits", .x0 = 0, .x1 = 0, .y0 = 0,
                                .y1 = 8.5}, w, n, NULL, 0, "#1f77b4");
    svg_bar_chart(&t, (SvgAxes){.x = 70, .y = 290, .w = width - 100, .h = 180, .title = "activation bits per layer",
                                .xlabel = NULL, .ylabel = "bits", .x0 = 0, .x1 = 0, .y0 = 0,
                                .y1 = 8.5}, a, n, labels, 1, "#ff7f0e");
    svg_end(&t);
    save(&t, dir, "bits.svg");
    text_free(&t);
    dq_free(w);
    dq_free(labels);
}

/* A grid of panels: each layer's FP32-valued weight histogram, its levels as red lines. */
void quant_report_write_levels_svg(const QuantLayerInfo *rows, int n, const char *dir) {
    int cols = 6, pw = 230, ph = 140, rowsn = (n + cols - 1) / cols;
    Text t;
    text_init(&t);
    svg_begin(&t, cols * pw + 20, rowsn * ph + 40);
    svg_text(&t, (cols * pw + 20) / 2.0, 22, "middle", 15, "weight histograms (grey) and quantization levels (red)");
    for (int i = 0; i < n; i++) {
        const QuantLayer *l = rows[i].layer;
        double x0 = 10 + (i % cols) * pw, y0 = 40 + (i / cols) * ph, w = pw - 20, h = ph - 40;
        float lv[256];
        int nl = l->wq->ops->levels(l->wq, lv);
        const float *data = l->weight->data;
        size_t nw = l->weight->numel;
        float lo = lv[0], hi = lv[nl - 1];
        for (size_t k = 0; k < nw; k++) lo = fminf(lo, data[k]), hi = fmaxf(hi, data[k]);
        if (!(hi > lo)) hi = lo + 1e-6f;
        int bins[60] = {0}, most = 1;
        for (size_t k = 0; k < nw; k++) {
            int b = (int)((data[k] - lo) / (hi - lo) * 59.999f);
            if (++bins[b] > most) most = bins[b];
        }
        text_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", x0, y0, w, h);
        double opacity = nl <= 16 ? 1.0 : 16.0 / nl;  // 256 lines at 8 bits would hide the histogram
        for (int k = 0; k < nl; k++) {
            double px = x0 + (lv[k] - lo) / (hi - lo) * w;
            text_printf(&t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d62728\" stroke-width=\"1\" stroke-opacity=\"%.2f\"/>\n",
                        px, y0, px, y0 + h, opacity);
        }
        for (int b = 0; b < 60; b++) {
            double bh = sqrt((double)bins[b] / most) * h;  // square root: tails stay visible
            text_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\" fill=\"#888\" fill-opacity=\"0.55\"/>\n",
                        x0 + b * w / 60, y0 + h - bh, w / 60, bh);
        }
        char label[128];
        snprintf(label, sizeof label, "%s  %d bit", rows[i].name, rows[i].w_bits);
        svg_text(&t, x0 + w / 2, y0 + h + 14, "middle", 10, label);
    }
    svg_end(&t);
    save(&t, dir, "levels.svg");
    text_free(&t);
}

