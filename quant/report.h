/* report.h — what a quantized model looks like, layer by layer: kind, size, bits, level range,
 * distinct weight values in use, weight memory. The experiments print it, write it as CSV and
 * draw it (per-layer bits, weight histograms with the learned levels over them). */
#ifndef DQ_REPORT_H
#define DQ_REPORT_H

#include <stdio.h>

#include "qlayer.h"

typedef struct QuantLayerInfo {
    const QuantLayer *layer;
    const char *name, *kind;   // layer name; conv / depthwise / pointwise / grouped / linear
    long long params, macs;    // weights (+ bias) and MACs per image
    int w_bits, a_bits;
    bool pinned;               // first / last layer
    float w_lo, w_hi;          // smallest and largest weight level
    int w_levels;              // distinct quantized weight values actually used
    double w_bytes;            // weights·w_bits/8 (+ 4 bytes per bias)
    double int_alone, int_chain;  // integer engine: share of this layer's input codes that agree
                                  // with fake-quant, layer by layer and chained (< 0: not measured)
    float w_below0, w_above0;  // the weight levels next to the one at 0 (NAN: none on that side);
                               // a uniform grid centred on 0 has w_above0 = −w_below0
    float a_level1, a_level2;  // the activation's two levels above the one at 0 (NAN: none); a
                               // uniform grid through 0 has a_level2 = 2·a_level1
} QuantLayerInfo;

typedef struct QuantSummary {
    double mean_w_bits, mean_a_bits;   // over unpinned layers, weighted by elements
    double weight_kb;                  // all quantized layers, at their bits
    double fp32_weight_kb;             // the same weights at 32 bits
    int layers;
} QuantSummary;

/* Fills out[0..n) (n = qc->n_layers, at most max); returns n. Quantizes the weights once. */
int quant_report(const QuantContext *qc, QuantLayerInfo *out, int max);
QuantSummary quant_summary(const QuantLayerInfo *rows, int n, const QuantContext *qc);
void quant_report_print(FILE *f, const QuantLayerInfo *rows, int n);
/* The report as files in dir (report_write.c), each written atomically; fatal if one cannot be:
 *   layers.csv   one row per layer: kind, pinned, params, MACs, bits, level range, distinct levels, bytes,
 *                integer code agreement (alone, chained; empty when not measured), the weight levels
 *                next to 0 and the activation's two levels above 0 (empty where there is none)
 *   bits.svg     weight and activation bits per layer (title atop)
 *   levels.svg   each layer's FP32-valued weight histogram with its quantization levels over it */
void quant_report_write_csv(const QuantLayerInfo *rows, int n, const char *dir);
void quant_report_write_bits_svg(const QuantLayerInfo *rows, int n, const char *dir, const char *title);
void quant_report_write_levels_svg(const QuantLayerInfo *rows, int n, const char *dir);

#endif
