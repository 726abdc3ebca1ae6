/* baselines.c — min/max, DoReFa, PACT and LSQ(+) quantizers (see baselines.h). */
#include "baselines.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "core/tape.h"
#include "core/threads.h"

typedef struct Base {
    Quantizer base;
    BaselineKind kind;
    const BaselineConfig *cfg;
    int bits, channels;       // channels: 1 per tensor, OC per channel
    Tensor *p0, *p1;          // lsq: step, offset (LSQ+); pact: α
    float lo, hi;             // minmax activations: running range
    float w0;                 // dorefa: max|w| at initialisation
    QSamples samples;         // activation calibration
} Base;

static const QuantizerOps BASE_OPS;

bool baseline_is(const Quantizer *q) { return q->ops == &BASE_OPS; }

Tensor *baseline_param(const Quantizer *q, int which) {
    const Base *b = (const Base *)q;
    return which == 0 ? b->p0 : b->p1;
}

static float qn_of(bool is_signed, int bits) { return is_signed ? (float)(1 << (bits - 1)) : 0.0f; }
static float qp_of(bool is_signed, int bits) { return is_signed ? (float)((1 << (bits - 1)) - 1) : (float)((1 << bits) - 1); }
static float qn(const Base *b) { return qn_of(b->base.is_signed, b->bits); }
static float qp(const Base *b) { return qp_of(b->base.is_signed, b->bits); }

/* LSQ's initial step for values of mean magnitude mean_abs (Esser et al.: 2·mean|v|/sqrt(Q_P)). */
static double lsq_init_step(double mean_abs, bool is_signed, int bits) { return 2 * mean_abs / sqrt(qp_of(is_signed, bits)); }

/* ------------------------------------------------------------------ calibration */
static void observe(Quantizer *q, const Tensor *x) { qsamples_add(&((Base *)q)->samples, x); }

static void finish_calibration(Quantizer *q) {
    Base *b = (Base *)q;
    if (b->samples.n == 0) return;
    float p = b->cfg->percentile, lo = quant_percentile(b->samples.v, b->samples.n, 100 - p);
    float hi = quant_percentile(b->samples.v, b->samples.n, p);
    if (!q->is_signed || lo > 0) lo = 0;
    if (hi <= lo) hi = lo + 1e-3f;
    double mean_abs = 0;
    for (size_t i = 0; i < b->samples.n; i++) mean_abs += fabs(b->samples.v[i]);
    mean_abs /= (double)b->samples.n;
    b->lo = lo, b->hi = hi;
    if (b->kind == BASE_PACT) b->p0->data[0] = hi;
    if (b->kind == BASE_LSQ) b->p0->data[0] = (float)lsq_init_step(mean_abs, q->is_signed, b->bits);
    qsamples_free(&b->samples);
    q->calibrated = true;
}

/* Weights initialise from their first forward. */
static void init_weights(Base *b, const Tensor *w) {
    int C = b->channels;
    for (int c = 0; c < C; c++) {
        double sa = 0, mx = 0;
        size_t n = 0;
        for (size_t i = (size_t)c; i < w->numel; i += (size_t)C) sa += fabs(w->data[i]), mx = fmax(mx, fabs(w->data[i])), n++;
        if (b->kind == BASE_LSQ) b->p0->data[c] = (float)lsq_init_step(sa / (double)n, true, b->bits);
        if (c == 0 || mx > b->w0) b->w0 = (float)mx;
    }
    if (b->w0 == 0) b->w0 = 1;
    for (int c = 0; c < (b->p0 ? (int)b->p0->numel : 0); c++)
        if (b->p0->data[c] <= 0) b->p0->data[c] = 1e-4f;
    b->base.calibrated = true;
}

/* ------------------------------------------------------------------ elementwise kernels */
/* The smallest and largest element of x, split over the threads (min and max are exact in any
 * order, so the result does not depend on the split); 8 lanes keep the comparisons independent. */
typedef struct RangeJob {
    const float *x;
    size_t n;
    int items;
    float *lo, *hi;  // per item
} RangeJob;

static void range_task(void *ctx, int begin, int end, int tid) {
    const RangeJob *j = ctx;
    for (int item = begin; item < end; item++) {
        size_t e0 = j->n * (size_t)item / (size_t)j->items, e1 = j->n * (size_t)(item + 1) / (size_t)j->items;
        float lo[8], hi[8];
        for (int l = 0; l < 8; l++) lo[l] = hi[l] = j->x[e0];
        size_t e = e0;
        for (; e + 8 <= e1; e += 8)
            for (int l = 0; l < 8; l++) {
                float v = j->x[e + l];
                lo[l] = v < lo[l] ? v : lo[l];
                hi[l] = v > hi[l] ? v : hi[l];
            }
        for (; e < e1; e++) lo[0] = fminf(lo[0], j->x[e]), hi[0] = fmaxf(hi[0], j->x[e]);
        for (int l = 1; l < 8; l++) lo[0] = fminf(lo[0], lo[l]), hi[0] = fmaxf(hi[0], hi[l]);
        j->lo[item] = lo[0], j->hi[item] = hi[0];
    }
}

static void tensor_min_max(const Tensor *x, float *lo, float *hi) {
    float los[64], his[64];
    RangeJob job = {.x = x->data, .n = x->numel, .items = x->numel >= 64 ? 64 : 1, .lo = los,
                    .hi = his};  // every item non-empty
    parallel_for(job.items, range_task, &job);
    *lo = los[0], *hi = his[0];
    for (int i = 1; i < job.items; i++) *lo = fminf(*lo, los[i]), *hi = fmaxf(*hi, his[i]);
}

typedef struct BaseJob {
    Base *b;
    const float *x, *dy;
    float *y, *dx;
    float *range;    // minmax weights: max|w| per channel (C); others NULL
    size_t n;
    int chunks;
    double *sums;    // backward: per-thread partial parameter gradients (2·C doubles each)
    bool dx_overwrite;  // backward: dx is new (tape_grad_overwrite): store 0 + term, as adding to zeros
    bool ref;        // reference kernels (quantize_one only)
} BaseJob;

static size_t at(const BaseJob *j, int c) { return j->n * (size_t)c / (size_t)j->chunks; }

/* The quantized value of x for channel c, and what backward needs: whether x is inside the
 * range, and the partial derivatives with respect to the method's parameters. */
typedef struct QVal {
    float y;
    bool inside;
    float d0, d1;  // ∂y/∂p0, ∂y/∂p1 (lsq: step, offset; pact: α)
    float dx;      // ∂y/∂x (STE mask, DoReFa's chain)
} QVal;

static inline QVal quantize_one(const Base *b, const float *range, float x, int c) {
    QVal r = {.y = 0, .inside = true, .d0 = 0, .d1 = 0, .dx = 1};
    float levels = (float)((1 << b->bits) - 1);
    switch (b->kind) {
    case BASE_MINMAX: {
        float lo, hi;
        if (b->base.role == QROLE_WEIGHT) hi = range[c], lo = -hi;
        else lo = b->lo, hi = b->hi;
        float s, zero;
        if (b->base.role == QROLE_WEIGHT) {  // symmetric: 2^(b−1) − 1 steps each side
            s = hi / qp(b);
            zero = 0;
            if (s <= 0) s = 1e-12f;
            float v = fminf(fmaxf(x / s, -qp(b)), qp(b));
            r.y = rintf(v) * s;
        } else {  // asymmetric with an exact zero: zero point on the integer grid
            s = (hi - lo) / levels;
            if (s <= 0) s = 1e-12f;
            zero = rintf(-lo / s);
            float v = fminf(fmaxf(rintf(x / s) + zero, 0), levels);
            r.y = (v - zero) * s;
        }
        r.inside = x >= lo && x <= hi;
        r.dx = r.inside;
        break;
    }
    case BASE_DOREFA: {
        float t = tanhf(x), M = range[c] > 0 ? range[c] : 1;  // range: max|tanh w|
        float u = t / (2 * M) + 0.5f;
        r.y = (2 * rintf(levels * u) / levels - 1) * b->w0;
        r.dx = (1 - t * t) / M * b->w0;
        break;
    }
    case BASE_PACT: {
        float alpha = b->p0->data[0], s = alpha / levels;
        float v = fminf(fmaxf(x, 0), alpha);
        r.y = s > 0 ? rintf(v / s) * s : 0;
        r.inside = x >= 0 && x < alpha;
        r.dx = r.inside;
        r.d0 = x >= alpha ? 1.0f : 0.0f;
        break;
    }
    case BASE_LSQ: {
        float s = b->p0->data[c], beta = b->p1 ? b->p1->data[0] : 0, v = (x - beta) / s;
        float QN = qn(b), QP = qp(b);
        if (v < -QN) r.y = -QN * s + beta, r.inside = false, r.d0 = -QN, r.d1 = 1;
        else if (v > QP) r.y = QP * s + beta, r.inside = false, r.d0 = QP, r.d1 = 1;
        else r.y = rintf(v) * s + beta, r.d0 = b->cfg->lsq_bin_grad ? rintf(v) : rintf(v) - v, r.d1 = 0;
        r.dx = r.inside;
        break;
    }
    }
    return r;
}

#if defined(__AVX512F__)
/* Per-tensor min/max activations, PACT and LSQ(+), 16 elements at a time: the arithmetic of
 * quantize_one with the constants hoisted (a NaN input gives the same output: max(NaN, c) is c,
 * as fmaxf; comparisons with NaN are false). Parameter-gradient sums are float per block of
 * 1024 elements, then double. Returns where it stopped (the tail is the caller's). */
typedef struct Flat {
    float s, beta, lo, hi, zero, levels;  // the method's constants for this tensor
} Flat;

static bool flat_ok(const Base *b, bool ref) {
    return !ref && b->channels == 1 &&
           (b->kind == BASE_LSQ || b->kind == BASE_PACT || (b->kind == BASE_MINMAX && b->base.role == QROLE_ACTIVATION));
}

static Flat flat_constants(const Base *b) {
    Flat f = {.levels = (float)((1 << b->bits) - 1)};
    if (b->kind == BASE_LSQ) f.s = b->p0->data[0], f.beta = b->p1 ? b->p1->data[0] : 0, f.lo = -qn(b), f.hi = qp(b);
    if (b->kind == BASE_PACT) f.hi = b->p0->data[0], f.s = f.hi / f.levels;
    if (b->kind == BASE_MINMAX) {
        f.lo = b->lo, f.hi = b->hi, f.s = (f.hi - f.lo) / f.levels;
        if (f.s <= 0) f.s = 1e-12f;
        f.zero = rintf(-f.lo / f.s);
    }
    return f;
}

static inline __m512 rint16(__m512 v) { return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

static size_t forward_flat(const Base *b, const float *x, float *y, size_t e, size_t e1) {
    Flat f = flat_constants(b);
    const __m512 s = _mm512_set1_ps(f.s), beta = _mm512_set1_ps(f.beta), lo = _mm512_set1_ps(f.lo),
                 hi = _mm512_set1_ps(f.hi), zero = _mm512_set1_ps(f.zero), levels = _mm512_set1_ps(f.levels),
                 z = _mm512_setzero_ps();
    for (; e + 16 <= e1; e += 16) {
        __m512 xv = _mm512_loadu_ps(x + e), out;
        if (b->kind == BASE_LSQ) {
            __m512 v = _mm512_div_ps(_mm512_sub_ps(xv, beta), s);
            __mmask16 below = _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), above = _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ);
            v = _mm512_mask_blend_ps(above, _mm512_mask_blend_ps(below, rint16(v), lo), hi);
            out = _mm512_add_ps(_mm512_mul_ps(v, s), beta);
        } else if (b->kind == BASE_PACT) {
            __m512 v = _mm512_min_ps(_mm512_max_ps(xv, z), hi);
            out = f.s > 0 ? _mm512_mul_ps(rint16(_mm512_div_ps(v, s)), s) : z;
        } else {
            __m512 v = _mm512_add_ps(rint16(_mm512_div_ps(xv, s)), zero);
            v = _mm512_min_ps(_mm512_max_ps(v, z), levels);
            out = _mm512_mul_ps(_mm512_sub_ps(v, zero), s);
        }
        _mm512_storeu_ps(y + e, out);
    }
    return e;
}

/* dx += dy·(∂y/∂x), p[0] += Σ dy·∂y/∂p0, p[1] += Σ dy·∂y/∂p1 (see quantize_one). */
static size_t backward_flat(const Base *b, const float *x, const float *dy, float *dx, bool overwrite, size_t e,
                            size_t e1, double *p) {
    Flat f = flat_constants(b);
    const __m512 s = _mm512_set1_ps(f.s), beta = _mm512_set1_ps(f.beta), lo = _mm512_set1_ps(f.lo),
                 hi = _mm512_set1_ps(f.hi), z = _mm512_setzero_ps();
    const bool bin_grad = b->cfg->lsq_bin_grad;  // ds without −v/s (quantize_one)
    enum { BLOCK = 1024 };
    while (e + 16 <= e1) {
        size_t b1 = e + BLOCK < e1 ? e + BLOCK : e1;
        __m512 a0 = z, a1 = z;
        for (; e + 16 <= b1; e += 16) {
            __m512 xv = _mm512_loadu_ps(x + e), g = _mm512_loadu_ps(dy + e);
            __mmask16 inside;
            if (b->kind == BASE_LSQ) {
                __m512 v = _mm512_div_ps(_mm512_sub_ps(xv, beta), s);
                __mmask16 below = _mm512_cmp_ps_mask(v, lo, _CMP_LT_OQ), above = _mm512_cmp_ps_mask(v, hi, _CMP_GT_OQ);
                inside = (__mmask16)~(below | above);
                __m512 d0 = _mm512_mask_blend_ps(above, _mm512_mask_blend_ps(below, bin_grad ? rint16(v) : _mm512_sub_ps(rint16(v), v), lo), hi);
                a0 = _mm512_add_ps(a0, _mm512_mul_ps(g, d0));
                a1 = _mm512_add_ps(a1, _mm512_maskz_mov_ps((__mmask16)~inside, g));
            } else if (b->kind == BASE_PACT) {
                __mmask16 clipped = _mm512_cmp_ps_mask(xv, hi, _CMP_GE_OQ);
                inside = _mm512_cmp_ps_mask(xv, z, _CMP_GE_OQ) & _mm512_cmp_ps_mask(xv, hi, _CMP_LT_OQ);
                a0 = _mm512_add_ps(a0, _mm512_maskz_mov_ps(clipped, g));
            } else {
                inside = _mm512_cmp_ps_mask(xv, lo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(xv, hi, _CMP_LE_OQ);
            }
            if (dx) _mm512_storeu_ps(dx + e, _mm512_add_ps(overwrite ? z : _mm512_loadu_ps(dx + e), _mm512_maskz_mov_ps(inside, g)));
        }
        p[0] += (double)_mm512_reduce_add_ps(a0), p[1] += (double)_mm512_reduce_add_ps(a1);
    }
    return e;
}
#endif

/* Channels cycle fastest (channels-last), so c is stepped rather than computed as e % C: an
 * integer division per element would cost more than the quantization itself. */
static void forward_task(void *ctx, int begin, int end, int tid) {
    const BaseJob *j = ctx;
    int C = j->b->channels;
    size_t e0 = at(j, begin), e1 = at(j, end);
#if defined(__AVX512F__)
    if (flat_ok(j->b, j->ref)) e0 = forward_flat(j->b, j->x, j->y, e0, e1);
#endif
    int c = (int)(e0 % (size_t)C);
    for (size_t e = e0; e < e1; e++) {
        j->y[e] = quantize_one(j->b, j->range, j->x[e], c).y;
        if (++c == C) c = 0;
    }
}

static void backward_task(void *ctx, int begin, int end, int tid) {
    const BaseJob *j = ctx;
    int C = j->b->channels;
    double *s = j->sums + (size_t)tid * 2 * C;
    memset(s, 0, 2 * (size_t)C * sizeof(double));
    size_t e0 = at(j, begin), e1 = at(j, end);
    float *dx = j->dx;
    if (C == 1) {  // one channel: 8 interleaved partial sums, so the adds need not wait in line
#if defined(__AVX512F__)
        if (flat_ok(j->b, j->ref)) e0 = backward_flat(j->b, j->x, j->dy, dx, j->dx_overwrite, e0, e1, s);
#endif
        double p0[8] = {0}, p1[8] = {0};
        for (size_t e = e0; e < e1; e++) {
            QVal r = quantize_one(j->b, j->range, j->x[e], 0);
            float g = j->dy[e];
            if (dx) dx[e] = (j->dx_overwrite ? 0.0f : dx[e]) + g * r.dx;
            p0[e & 7] += (double)g * r.d0;
            p1[e & 7] += (double)g * r.d1;
        }
        for (int l = 0; l < 8; l++) s[0] += p0[l], s[1] += p1[l];
        return;
    }
    int c = (int)(e0 % (size_t)C);
    for (size_t e = e0; e < e1; e++) {
        QVal r = quantize_one(j->b, j->range, j->x[e], c);
        float g = j->dy[e];
        if (dx) dx[e] = (j->dx_overwrite ? 0.0f : dx[e]) + g * r.dx;
        s[c] += (double)g * r.d0;
        s[C + c] += (double)g * r.d1;
        if (++c == C) c = 0;
    }
}

typedef struct BaseSaved {
    Base *b;
    float *range;
} BaseSaved;

static void base_backward_op(Tape *t, TapeRecord *r) {
    const BaseSaved *sv = r->saved;
    Base *b = sv->b;
    Tensor *x = r->in[0];
    int C = b->channels, T = threads_count();
    double *sums = arena_calloc(t->arena, (size_t)T * 2 * C, sizeof(double));
    bool overwrite = false;
    float *dx = r->ref ? tape_grad_of(t, x) : tape_grad_overwrite(t, x, &overwrite);
    BaseJob job = {.b = b, .x = x->data, .dy = r->out->grad, .dx = dx, .range = sv->range, .n = x->numel,
                   .chunks = T, .sums = sums, .dx_overwrite = overwrite, .ref = r->ref};
    parallel_for(T, backward_task, &job);
    double scale = b->kind == BASE_LSQ ? 1.0 / sqrt((double)b->base.elems / C * qp(b)) : 1.0;
    for (int k = 0; k < 2; k++) {
        Tensor *p = k == 0 ? b->p0 : b->p1;
        if (!p || !p->grad) continue;
        for (int c = 0; c < (int)p->numel; c++) {
            double g = 0;
            for (int tt = 0; tt < T; tt++) g += sums[(size_t)tt * 2 * C + (size_t)k * C + c];
            if (p->numel == 1 && C > 1)  // one parameter shared by all channels
                for (int cc = 1; cc < C; cc++)
                    for (int tt = 0; tt < T; tt++) g += sums[(size_t)tt * 2 * C + (size_t)k * C + cc];
            p->grad[c] += (float)(g * scale);
        }
    }
}

static const TapeOp BASE_OP = {"baseline_quantize", base_backward_op};

static Tensor *base_forward(Quantizer *q, Tape *t, Tensor *x) {
    Base *b = (Base *)q;
    if (!q->calibrated) {
        if (q->role != QROLE_WEIGHT)
            DQ_FATAL_HINT("run the calibration batches before training (quant_calibrate)",
                          "%s: activation quantizer used before calibration", q->name);
        init_weights(b, x);
    }
    int C = b->channels;
    float *range = NULL;
    if (b->kind == BASE_MINMAX && q->role == QROLE_WEIGHT) {  // ±max|w| per channel, now
        range = arena_calloc(t->arena, (size_t)C, sizeof(float));
        for (size_t i = 0; i < x->numel; i++) range[i % (size_t)C] = fmaxf(range[i % (size_t)C], fabsf(x->data[i]));
    }
    if (b->kind == BASE_DOREFA) {  // max|tanh w| per channel, now
        range = arena_calloc(t->arena, (size_t)C, sizeof(float));
        for (size_t i = 0; i < x->numel; i++) range[i % (size_t)C] = fmaxf(range[i % (size_t)C], fabsf(tanhf(x->data[i])));
    }
    if (b->kind == BASE_MINMAX && q->role == QROLE_ACTIVATION && t->training && !t->no_grad) {
        float lo, hi;  // running range, momentum 0.9
        tensor_min_max(x, &lo, &hi);
        if (!q->is_signed) lo = 0;
        b->lo = 0.9f * b->lo + 0.1f * lo, b->hi = 0.9f * b->hi + 0.1f * hi;
    }
    Tensor *y = tensor_new(t->arena, x->ndim, x->shape);
    BaseJob job = {.b = b, .x = x->data, .y = y->data, .range = range, .n = x->numel, .chunks = threads_count(),
                   .ref = t->ref_kernels};
    parallel_for(job.chunks, forward_task, &job);
    TapeRecord *r = tape_push(t, &BASE_OP, y, 3, (Tensor *[]){x, b->p0, b->p1});
    if (r) {
        BaseSaved *s = arena_alloc(t->arena, sizeof *s);
        *s = (BaseSaved){.b = b, .range = range};
        r->saved = s;
    }
    return y;
}

static void base_step(Quantizer *q, float lr) {
    Base *b = (Base *)q;
    if (b->kind == BASE_LSQ)  // a step must stay positive
        for (size_t c = 0; c < b->p0->numel; c++) b->p0->data[c] = fmaxf(b->p0->data[c], 1e-8f);
    if (b->kind == BASE_PACT) b->p0->data[0] = fmaxf(b->p0->data[0], 1e-3f);
}

static int base_bits(const Quantizer *q) { return ((const Base *)q)->bits; }

static int base_levels(const Quantizer *q, float *out) {
    const Base *b = (const Base *)q;
    int n = 1 << b->bits;  // representative table for channel 0
    float s = 0, off = 0;
    switch (b->kind) {
    case BASE_LSQ: s = b->p0->data[0], off = b->p1 ? b->p1->data[0] : 0; break;
    case BASE_PACT: s = b->p0->data[0] / (float)(n - 1); break;
    case BASE_MINMAX: s = (b->base.role == QROLE_WEIGHT ? 2 * b->w0 : b->hi - b->lo) / (float)(n - 1); off = b->base.role == QROLE_WEIGHT ? -b->w0 : b->lo; break;
    case BASE_DOREFA: s = 2 * b->w0 / (float)(n - 1), off = -b->w0; break;
    }
    for (int k = 0; k < n; k++) out[k] = b->kind == BASE_LSQ ? (k - qn(b)) * s + off : off + k * s;
    return n;
}

/* Activations: the grid quantize_one computes. LSQ(+): (k − Q_N)·s + β, thresholds half a step
 * above each level; PACT: k·α/L; min/max: (k − zero)·s. */
static int base_grid(const Quantizer *q, float *levels, float *thresh) {
    const Base *b = (const Base *)q;
    if (q->role != QROLE_ACTIVATION || b->channels != 1 || !q->calibrated) return 0;
    int L = (1 << b->bits) - 1, n = L + 1;
    float s, off;
    switch (b->kind) {
    case BASE_LSQ: s = b->p0->data[0], off = (b->p1 ? b->p1->data[0] : 0) - qn(b) * s; break;
    case BASE_PACT: s = b->p0->data[0] / (float)L, off = 0; break;
    case BASE_MINMAX:
        s = (b->hi - b->lo) / (float)L;
        if (s <= 0) s = 1e-12f;
        off = -rintf(-b->lo / s) * s;
        break;
    default: return 0;
    }
    if (!(s > 0)) return 0;
    for (int k = 0; k < n; k++) levels[k] = off + (float)k * s;
    for (int k = 0; k + 1 < n; k++) thresh[k] = off + ((float)k + 0.5f) * s;
    return n;
}

static const char *KIND_NAMES[] = {"minmax", "dorefa", "pact", "lsq"};

static void base_describe(const Quantizer *q, char *buf, size_t size) {
    const Base *b = (const Base *)q;
    snprintf(buf, size, "%s %d bits%s", KIND_NAMES[b->kind], b->bits, b->channels > 1 ? " per channel" : "");
}

static void base_save(const Quantizer *q, QBytes *bytes) {
    const Base *b = (const Base *)q;
    float f[3] = {b->lo, b->hi, b->w0};
    int cal = q->calibrated;
    qbytes_put(bytes, f, sizeof f);
    qbytes_put(bytes, &cal, sizeof cal);
}

static bool base_load(Quantizer *q, QBytes *bytes, char *err, size_t es) {
    Base *b = (Base *)q;
    float f[3];
    int cal;
    if (!qbytes_get(bytes, f, sizeof f) || !qbytes_get(bytes, &cal, sizeof cal)) {
        snprintf(err, es, "%s: quantizer state is truncated", q->name);
        return false;
    }
    if (!isfinite(f[0]) || !isfinite(f[1]) || !isfinite(f[2]) || f[0] > f[1] || f[2] < 0 || (cal != 0 && cal != 1)) {
        snprintf(err, es, "%s: bad %s state (range [%g, %g], scale %g, calibrated %d)", q->name, KIND_NAMES[b->kind],
                 f[0], f[1], f[2], cal);
        return false;
    }
    b->lo = f[0], b->hi = f[1], b->w0 = f[2], q->calibrated = cal != 0;
    return true;
}

void baseline_set_bits(Quantizer *q, int bits) {
    Base *b = (Base *)q;
    DQ_CHECK(baseline_is(q) && !q->calibrated && !q->pinned && bits >= 1 && bits <= 16);
    b->bits = bits;
}

void baseline_uncalibrate(Quantizer *q) {
    DQ_CHECK(baseline_is(q));
    q->calibrated = false;
}

double baseline_lsq_init_error(const float *w, size_t n, int channels, int bits) {
    double err = 0;
    float lo = -qn_of(true, bits), hi = qp_of(true, bits);
    for (int c = 0; c < channels; c++) {
        double sa = 0;
        size_t k = 0;
        for (size_t i = (size_t)c; i < n; i += (size_t)channels) sa += fabs(w[i]), k++;
        float s = (float)lsq_init_step(k ? sa / (double)k : 0, true, bits);
        if (!(s > 0)) s = 1e-4f;  // as init_weights
        for (size_t i = (size_t)c; i < n; i += (size_t)channels) {
            float v = rintf(fminf(fmaxf(w[i] / s, lo), hi)) * s;
            err += ((double)v - w[i]) * ((double)v - w[i]);
        }
    }
    return err;
}

static void base_free(Quantizer *q) {
    qsamples_free(&((Base *)q)->samples);
    dq_free(q);
}

static const QuantizerOps BASE_OPS = {.kind = "baseline", .forward = base_forward, .observe = observe,
                                      .finish_calibration = finish_calibration, .step = base_step, .bits = base_bits,
                                      .levels = base_levels, .grid = base_grid, .describe = base_describe, .save = base_save,
                                      .load = base_load, .free = base_free};

Quantizer *baseline_new(BaselineKind kind, ParamSlab *slab, const char *name, QuantRole role,
                        bool is_signed, bool pinned, int bits, long long elems, int channels,
                        const BaselineConfig *cfg) {
    if (bits < 1 || bits > 16) DQ_FATAL("%s: %d bits, must be in 1..16", name, bits);
    if (kind == BASE_DOREFA && role != QROLE_WEIGHT) DQ_FATAL("%s: DoReFa quantizes weights only", name);
    if (kind == BASE_PACT && role != QROLE_ACTIVATION) DQ_FATAL("%s: PACT quantizes activations only", name);
    Base *b = dq_calloc(1, sizeof *b);
    quantizer_init_base(&b->base, &BASE_OPS, name, role, is_signed || role == QROLE_WEIGHT, pinned, elems);
    b->kind = kind, b->cfg = cfg, b->bits = bits;
    if (channels < 1 || (channels > 1 && role != QROLE_WEIGHT)) DQ_FATAL("%s: %d channels: per-channel quantizers are for weights", name, channels);
    b->channels = channels;
    char pname[96];
    if (kind == BASE_LSQ) {
        snprintf(pname, sizeof pname, "%s.step", name);
        b->p0 = slab_add(slab, pname, 1, &b->channels, PARAM_NO_DECAY);
        if (role == QROLE_ACTIVATION && is_signed) {  // LSQ+ offset
            snprintf(pname, sizeof pname, "%s.offset", name);
            b->p1 = slab_add(slab, pname, 1, (const int[]){1}, PARAM_NO_DECAY);
        }
    }
    if (kind == BASE_PACT) {
        snprintf(pname, sizeof pname, "%s.alpha", name);
        b->p0 = slab_add(slab, pname, 1, (const int[]){1}, 0);  // PACT decays α
    }
    return &b->base;
}
