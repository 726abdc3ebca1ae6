/* test_intkernels.c — every integer convolution kernel against its plain reference on a table of
 * awkward shapes: dense (the stem, 3×3 stride 1 and 2), pointwise (channel counts that are and
 * are not multiples of 4 and 16), linear on a flattened input, depthwise 3×3 stride 1 and 2; batch
 * 1 and more; odd spatial sizes; weight bits 2–8; input zero points 0 (after a ReLU), 128 and
 * others (signed inputs); output quantizers of 2 to 256 levels (both threshold paths and their
 * tails), fixed-point and logits epilogues, each activation; multipoint layers of 2–8 points
 * (dense: a GEMM per point; depthwise: 32-bit taps). Outputs must be identical: integer
 * sums are exact, so the fast kernels leave nothing to tolerate. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "helpers.h"
#include "quant/intmodel.h"

typedef struct Case {
    int n, h, w, cin, cout, k, stride, pad;
    bool depthwise, flat;   // depthwise: groups = channels; flat: a linear layer on an h×w×cin input
    bool ties;              // sums that land exactly on the thresholds: a = ±1, b = 0, integer thresholds
    int grid;               // output levels: 0 uneven gaps, GRID_EVEN evenly spaced, GRID_KINK one gap wider
    int wbits, levels;      // levels of the output quantizer (IEPI_CODES)
    int zero;               // the input's zero point
    int points;             // multipoint: weight points per channel (0, 1: one)
    IEpilogue epi;
    ActKind act;
} Case;

enum { GRID_UNEVEN, GRID_EVEN, GRID_KINK, GRID_STEP };

static int two_comparisons;  // cases whose line needed both comparisons (the path must be seen)
static int float_lines, double_lines;  // cases whose line the kernels took in float / in double

/* n levels over about [−1, 3]: uneven gaps (no line fits the thresholds: the comparisons), even
 * ones (a line: codes by arithmetic) or even with one wider gap in the middle, as DDQ's learned
 * levels have at zero (a line within one code, and integer values that are not evenly spaced);
 * GRID_STEP's gap is so wide that no line stays on one side of the count. */
static void make_quant_grid(IQuant *q, int n, int grid) {
    memset(q, 0, sizeof *q);
    q->n = n, q->zero = n <= 16 ? 0 : 100, q->scale = 0.05f;
    float lo = -1.0f;
    for (int j = 0; j < n; j++) q->k[j] = (int16_t)(j - q->zero + (grid >= GRID_KINK && j >= n / 2));  // ascending
    for (int j = 0; j + 1 < n; j++) {
        float gap = grid == GRID_UNEVEN                         ? 0.5f + rng_uniform(&R)
                    : grid == GRID_KINK && j == n / 2 - 1 ? 1.5f
                    : grid == GRID_STEP && j == n / 2 - 1 ? 2.4f
                                                          : 1.0f;
        lo += 4.0f / n * gap, q->thresh[j] = lo;
    }
}


static void run_case(const Case *c) {
    IntModel im = {0};
    im.n_tensors = 3, im.n_ops = 1;
    im.tensors = dq_calloc(3, sizeof *im.tensors);
    im.ops = dq_calloc(1, sizeof *im.ops);
    int oh = c->flat ? 1 : (c->h + 2 * c->pad - c->k) / c->stride + 1, ow = c->flat ? 1 : (c->w + 2 * c->pad - c->k) / c->stride + 1;
    im.tensors[1] = (ITensor){.kind = ITENSOR_CODES, .h = c->h, .w = c->w, .c = c->cin};
    im.tensors[2] = (ITensor){.kind = c->epi == IEPI_CODES ? ITENSOR_CODES : ITENSOR_FIX, .h = oh, .w = ow, .c = c->cout, .frac = 20};
    IOp *op = &im.ops[0];
    op->kind = IOP_CONV, op->in = 1, op->out = 2;
    IConv *cv = &op->conv;
    int groups = c->depthwise ? c->cin : 1, kk = c->flat ? 1 : c->k;
    *cv = (IConv){.kh = kk, .kw = kk, .stride = c->flat ? 1 : c->stride, .pad = c->flat ? 0 : c->pad, .groups = groups,
                  .cin = c->flat ? c->h * c->w * c->cin : c->cin, .cout = c->cout, .wbits = c->wbits, .in_zero = c->zero,
                  .in_kmax = 255, .act = c->act, .epi = c->epi};
    size_t nw = (size_t)kk * kk * (cv->cin / groups) * cv->cout, tab = (size_t)1 << c->wbits;
    int P = c->points > 1 ? c->points : 1;
    cv->points = P;
    cv->wcodes = dq_malloc((size_t)P * nw);
    cv->wtable = dq_malloc((size_t)cv->cout * tab);
    for (size_t i = 0; i < (size_t)P * nw; i++) cv->wcodes[i] = (uint8_t)rng_below(&R, (uint32_t)tab);
    for (size_t i = 0; i < (size_t)cv->cout * tab; i++) cv->wtable[i] = (int8_t)((int)rng_below(&R, 256) - 128);
    cv->a = dq_malloc((size_t)cv->cout * sizeof(float));
    cv->b = dq_malloc((size_t)cv->cout * sizeof(float));
    for (int o = 0; o < cv->cout; o++) {  // scales of either sign (a negative γ flips the comparisons)
        cv->a[o] = (rng_uniform(&R) < 0.2f ? -1 : 1) * (0.5f + rng_uniform(&R)) * 12.0f / (255.0f * 128 * sqrtf((float)nw / cv->cout));
        cv->b[o] = rng_uniform(&R) - 0.5f;
    }
    if (P > 1) {  // point 0 in every channel (multiplier ±64..100), later ones in about two channels of three
        cv->pmul = dq_malloc((size_t)P * cv->cout * sizeof *cv->pmul);
        for (int p = 0; p < P; p++)
            for (int o = 0; o < cv->cout; o++)
                cv->pmul[(size_t)p * cv->cout + o] = p == 0   ? (rng_below(&R, 2) ? 1 : -1) * (64 + (int)rng_below(&R, 37))
                                                    : rng_below(&R, 3) ? (int)rng_below(&R, 33) - 16
                                                                       : 0;
        for (int o = 0; o < cv->cout; o++) cv->a[o] /= 80;  // the sums are ~80 times an int8 layer's
    }
    if (c->epi == IEPI_CODES) make_quant_grid(&cv->out, c->levels, c->grid);
    if (c->ties) {  // small sums; y = ±acc; thresholds on the integers around 0
        for (size_t i = 0; i < (size_t)cv->cout * tab; i++) cv->wtable[i] = (int8_t)((int)rng_below(&R, 5) - 2);
        for (int o = 0; o < cv->cout; o++) cv->a[o] = o % 3 ? 1.0f : -1.0f, cv->b[o] = 0;
        for (int j = 0; j + 1 < c->levels; j++) cv->out.thresh[j] = (float)(j - c->levels / 2);
    }
    if (c->epi == IEPI_LOGITS) im.logits = 0;
    intmodel_finish(&im);
    // the codes by a line (intaffine.h): taken wherever the levels are even or kinked once
    cr_assert(c->epi != IEPI_CODES || (!c->grid && !c->ties) || c->grid == GRID_STEP || cv->aff.ok,
              "%d levels (grid %d): no line fits", c->levels, c->grid);
    two_comparisons += c->epi == IEPI_CODES && cv->aff.ok && !cv->aff.below;
    float_lines += c->epi == IEPI_CODES && cv->aff.ok && cv->aff.f32;
    double_lines += c->epi == IEPI_CODES && cv->aff.ok && !cv->aff.f32;
    size_t in_n = (size_t)c->n * c->h * c->w * c->cin, out_n = (size_t)c->n * oh * ow * c->cout;
    uint8_t *x = dq_malloc(in_n);
    for (size_t i = 0; i < in_n; i++) x[i] = (uint8_t)(c->ties ? c->zero + (int)rng_below(&R, 3) - 1 : (int)rng_below(&R, 256));
    size_t bytes = out_n * (c->epi == IEPI_CODES ? 1 : 4);
    uint8_t *ref = dq_malloc(bytes), *fast = dq_malloc(bytes);
    intconv_forward(cv, &im.tensors[1], &im.tensors[2], x, ref, c->n, true);
    intconv_forward(cv, &im.tensors[1], &im.tensors[2], x, fast, c->n, false);
    size_t bad = 0;
    while (bad < bytes && ref[bad] == fast[bad]) bad++;
    cr_assert(bad == bytes,
              "n%d %dx%dx%d -> %d, k%d s%d p%d %s%s, w%d bits × %d points, %d levels, zero %d, epilogue %d, act %d: byte %zu differs",
              c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, c->pad, c->depthwise ? "depthwise" : "dense",
              c->flat ? " (flat)" : "", c->wbits, P, c->levels, c->zero, c->epi, c->act, bad);
    if (c->epi == IEPI_CODES) {  // and the codes are not all alike (the case tests something)
        size_t distinct = 0;
        bool seen[256] = {0};
        for (size_t i = 0; i < out_n; i++) distinct += !seen[ref[i]], seen[ref[i]] = true;
        cr_assert(distinct >= 2 || out_n < 8, "%d levels: only %zu distinct codes", c->levels, distinct);
    }
    dq_free(x), dq_free(ref), dq_free(fast);
    intmodel_free(&im);
}

static const Case cases[] = {
    // dense: the stem (3 channels in), stride 1 and 2, odd sizes, batch 1
    {.n = 2, .h = 9, .w = 7, .cin = 3, .cout = 16, .k = 3, .stride = 1, .pad = 1, .wbits = 8, .levels = 256, .zero = 128, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 11, .w = 5, .cin = 1, .cout = 17, .k = 3, .stride = 2, .pad = 1, .wbits = 8, .levels = 16, .zero = 37, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 3, .h = 8, .w = 8, .cin = 5, .cout = 33, .k = 3, .stride = 2, .pad = 0, .wbits = 3, .levels = 8, .zero = 0, .epi = IEPI_FIX, .act = ACT_NONE},
    {.n = 1, .h = 6, .w = 6, .cin = 2, .cout = 4, .k = 5, .stride = 1, .pad = 2, .wbits = 2, .levels = 2, .zero = 200, .epi = IEPI_CODES, .act = ACT_NONE},
    // pointwise: channels multiple of 4 (rows read directly) and not, tails of 16
    {.n = 2, .h = 7, .w = 9, .cin = 16, .cout = 96, .k = 1, .stride = 1, .pad = 0, .wbits = 4, .levels = 16, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 5, .w = 5, .cin = 13, .cout = 24, .k = 1, .stride = 1, .pad = 0, .wbits = 5, .levels = 32, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 2, .h = 3, .w = 13, .cin = 24, .cout = 7, .k = 1, .stride = 1, .pad = 0, .wbits = 6, .levels = 17, .zero = 128, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 3, .h = 4, .w = 4, .cin = 96, .cout = 40, .k = 1, .stride = 1, .pad = 0, .wbits = 7, .levels = 64, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 7, .w = 7, .cin = 32, .cout = 16, .k = 1, .stride = 1, .pad = 0, .wbits = 4, .levels = 4, .zero = 0, .epi = IEPI_FIX, .act = ACT_NONE},
    {.n = 2, .h = 9, .w = 9, .cin = 8, .cout = 16, .k = 1, .stride = 2, .pad = 0, .wbits = 2, .levels = 3, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 5, .h = 1, .w = 1, .cin = 64, .cout = 10, .k = 1, .stride = 1, .pad = 0, .wbits = 8, .levels = 0, .zero = 0, .epi = IEPI_LOGITS, .act = ACT_NONE},
    // linear on a flattened 3×3×5 input
    {.n = 4, .h = 3, .w = 3, .cin = 5, .cout = 12, .k = 1, .stride = 1, .pad = 0, .flat = true, .wbits = 4, .levels = 256, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    // depthwise 3×3 stride 1 and 2, channel counts around the vector width
    {.n = 2, .h = 9, .w = 7, .cin = 16, .cout = 16, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .wbits = 8, .levels = 256, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 8, .w = 8, .cin = 48, .cout = 48, .k = 3, .stride = 2, .pad = 1, .depthwise = true, .wbits = 4, .levels = 16, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 3, .h = 7, .w = 5, .cin = 7, .cout = 7, .k = 3, .stride = 2, .pad = 1, .depthwise = true, .wbits = 3, .levels = 5, .zero = 128, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 1, .h = 4, .w = 70, .cin = 97, .cout = 97, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .wbits = 6, .levels = 128, .zero = 3, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 2, .h = 5, .w = 5, .cin = 24, .cout = 24, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .wbits = 2, .levels = 0, .zero = 0, .epi = IEPI_FIX, .act = ACT_RELU6},
    // sums exactly on the thresholds (>= against >), few and many thresholds, dense and depthwise
    {.n = 2, .h = 6, .w = 6, .cin = 8, .cout = 35, .k = 1, .stride = 1, .pad = 0, .ties = true, .wbits = 3, .levels = 9, .zero = 128, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 2, .h = 6, .w = 6, .cin = 8, .cout = 35, .k = 1, .stride = 1, .pad = 0, .ties = true, .wbits = 3, .levels = 41, .zero = 128, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 1, .h = 7, .w = 7, .cin = 33, .cout = 33, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .ties = true, .wbits = 3, .levels = 15, .zero = 128, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 1, .h = 7, .w = 7, .cin = 33, .cout = 33, .k = 3, .stride = 2, .pad = 1, .depthwise = true, .ties = true, .wbits = 3, .levels = 25, .zero = 128, .epi = IEPI_CODES, .act = ACT_NONE},
    // even and once-kinked levels: codes by a line (exact, or within one code and settled), the
    // bytes stepped, from the 16-entry table or gathered
    {.n = 2, .h = 9, .w = 7, .cin = 3, .cout = 16, .k = 3, .stride = 1, .pad = 1, .grid = GRID_EVEN, .wbits = 8, .levels = 256, .zero = 128, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 7, .w = 7, .cin = 32, .cout = 37, .k = 1, .stride = 1, .pad = 0, .grid = GRID_EVEN, .wbits = 4, .levels = 16, .zero = 0, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 2, .h = 5, .w = 9, .cin = 24, .cout = 19, .k = 1, .stride = 1, .pad = 0, .grid = GRID_KINK, .wbits = 6, .levels = 128, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 1, .h = 6, .w = 6, .cin = 16, .cout = 16, .k = 1, .stride = 1, .pad = 0, .grid = GRID_KINK, .wbits = 5, .levels = 12, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 2, .h = 7, .w = 5, .cin = 41, .cout = 41, .k = 3, .stride = 2, .pad = 1, .depthwise = true, .grid = GRID_KINK, .wbits = 8, .levels = 64, .zero = 0, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 1, .h = 9, .w = 9, .cin = 23, .cout = 23, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .grid = GRID_EVEN, .wbits = 7, .levels = 200, .zero = 3, .epi = IEPI_CODES, .act = ACT_RELU},
    // multipoint: 2–8 points per channel, each an int8 GEMM over the channels that have it (dense,
    // pointwise, linear), or summed into 32-bit taps (depthwise)
    {.n = 2, .h = 9, .w = 7, .cin = 3, .cout = 16, .k = 3, .stride = 1, .pad = 1, .points = 2, .wbits = 4, .levels = 16, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 7, .w = 7, .cin = 32, .cout = 37, .k = 1, .stride = 1, .pad = 0, .points = 3, .wbits = 4, .levels = 256, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 2, .h = 5, .w = 9, .cin = 13, .cout = 70, .k = 1, .stride = 1, .pad = 0, .points = 8, .wbits = 3, .levels = 9, .zero = 128, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 3, .h = 8, .w = 8, .cin = 5, .cout = 33, .k = 3, .stride = 2, .pad = 0, .points = 2, .wbits = 8, .levels = 8, .zero = 0, .epi = IEPI_FIX, .act = ACT_NONE},
    {.n = 5, .h = 1, .w = 1, .cin = 64, .cout = 10, .k = 1, .stride = 1, .pad = 0, .points = 4, .wbits = 4, .levels = 0, .zero = 0, .epi = IEPI_LOGITS, .act = ACT_NONE},
    {.n = 4, .h = 3, .w = 3, .cin = 5, .cout = 12, .k = 1, .stride = 1, .pad = 0, .flat = true, .points = 2, .wbits = 2, .levels = 5, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU},
    {.n = 2, .h = 9, .w = 7, .cin = 48, .cout = 48, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .points = 2, .wbits = 4, .levels = 16, .zero = 0, .epi = IEPI_CODES, .act = ACT_RELU6},
    {.n = 1, .h = 4, .w = 70, .cin = 97, .cout = 97, .k = 3, .stride = 2, .pad = 1, .depthwise = true, .points = 5, .wbits = 3, .levels = 128, .zero = 3, .epi = IEPI_CODES, .act = ACT_NONE},
    {.n = 2, .h = 5, .w = 5, .cin = 24, .cout = 24, .k = 3, .stride = 1, .pad = 1, .depthwise = true, .points = 3, .wbits = 2, .levels = 0, .zero = 0, .epi = IEPI_FIX, .act = ACT_RELU6},
};

static void all_cases(int threads) {
    threads_init(threads);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    threads_shutdown();
}

Test(intkernels, fast_equals_reference_one_thread, .init = test_setup, .fini = test_teardown) { all_cases(1); }
Test(intkernels, fast_equals_reference_three_threads, .init = test_setup, .fini = test_teardown) { all_cases(3); }

/* Every weight width 2–8 and every output quantizer size from 2 to 256 levels in one shape. */
Test(intkernels, every_width_and_level_count, .init = test_setup, .fini = test_teardown) {
    threads_init(2);
    for (int wb = 2; wb <= 8; wb++)
        for (int lv = 2; lv <= 256; lv = lv < 20 ? lv + 1 : lv * 2) {
            Case c = {.n = 2, .h = 6, .w = 5, .cin = 20, .cout = 19, .k = 1, .stride = 1, .pad = 0, .wbits = wb,
                      .levels = lv > 256 ? 256 : lv, .zero = lv % 3 ? 0 : 128, .epi = IEPI_CODES, .act = (ActKind)(lv % 3)};
            for (c.grid = GRID_UNEVEN; c.grid <= GRID_STEP; c.grid++) {
                c.depthwise = false, c.cout = 19, c.k = 1, c.pad = 0;
                run_case(&c);
                c.depthwise = true, c.cout = c.cin, c.k = 3, c.pad = 1;
                run_case(&c);
            }
        }
    threads_shutdown();
    cr_assert(two_comparisons > 0, "no case took a line settled by two comparisons");
    cr_assert(float_lines > 0 && double_lines > 0, "lines in float: %d cases, in double: %d (both paths must be seen)",
              float_lines, double_lines);
}

/* The quantization ops on values spread over the thresholds and on the thresholds themselves:
 * fixed point (the integer thresholds) and the float input, every level count. */
Test(intkernels, quantization_ops_equal_reference, .init = test_setup, .fini = test_teardown) {
    for (int grid = GRID_UNEVEN; grid <= GRID_KINK; grid++)
    for (int levels = 2; levels <= 256; levels = levels < 20 ? levels + 1 : levels * 2) {
        IntModel im = {0};
        im.n_tensors = 3, im.n_ops = 2;
        im.tensors = dq_calloc(3, sizeof *im.tensors);
        im.ops = dq_calloc(2, sizeof *im.ops);
        im.tensors[0] = (ITensor){.kind = ITENSOR_FIX, .h = 7, .w = 9, .c = 5};
        im.tensors[1] = (ITensor){.kind = ITENSOR_FIX, .h = 7, .w = 9, .c = 5, .frac = 12};
        im.tensors[2] = (ITensor){.kind = ITENSOR_CODES, .h = 7, .w = 9, .c = 5};
        im.ops[0] = (IOp){.kind = IOP_QUANT_INPUT, .in = 0, .out = 2};
        im.ops[1] = (IOp){.kind = IOP_QUANT_FIX, .in = 1, .out = 2};
        make_quant_grid(&im.ops[0].q, levels > 256 ? 256 : levels, grid);
        im.ops[1].q = im.ops[0].q;
        intmodel_finish(&im);
        cr_assert(grid == GRID_UNEVEN || im.ops[1].fix_aff.ok, "%d levels (grid %d): no line fits", levels, grid);
        int n = 3;
        size_t e = (size_t)n * 7 * 9 * 5;
        float *xf = dq_malloc(e * sizeof(float));
        int32_t *xi = dq_malloc(e * sizeof(int32_t));
        const IQuant *q = &im.ops[0].q;
        for (size_t i = 0; i < e; i++) {  // a third exactly on a threshold, the rest anywhere in range
            int j = (int)rng_below(&R, (uint32_t)(q->n - 1));
            bool on = rng_below(&R, 3) == 0;
            xf[i] = on ? q->thresh[j] : rng_uniform_range(&R, -1.5f, 3.5f);
            xi[i] = on ? im.ops[1].fix_thr[j] : (int32_t)(xf[i] * 4096);
        }
        uint8_t *a = dq_malloc(e), *b = dq_malloc(e);
        for (int k = 0; k < 2; k++) {
            intquant_forward(&im.ops[k], &im.tensors[k], k ? (const void *)xi : (const void *)xf, a, n, true);
            intquant_forward(&im.ops[k], &im.tensors[k], k ? (const void *)xi : (const void *)xf, b, n, false);
            cr_assert(!memcmp(a, b, e), "%s, %d levels: fast and reference codes differ", k ? "fixed point" : "float input", q->n);
        }
        dq_free(xf), dq_free(xi), dq_free(a), dq_free(b);
        intmodel_free(&im);
    }
}
