/* mpquant.c — multipoint weight quantizers and the collection of their layers' input moments
 * (see mpquant.h). */
#include "mpquant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "multipoint.h"

typedef struct Mpq {
    Quantizer base;
    int bits, channels;
    float *approx;      // the layer's weights as the sum of their points (NULL: not yet)
    float *scales;      // (MP_MAX_POINTS, channels) each point's scale, 0 where a channel has fewer
    int8_t *codes;      // (MP_MAX_POINTS, weights) each point's codes in the weights' layout
    int max_points;     // the most points any channel has
    double points;      // mean points per output channel
    long long fan_in;
} Mpq;

static const QuantizerOps MPQ_OPS;

bool mpq_is(const Quantizer *q) { return q->ops == &MPQ_OPS; }
double mpq_points(const Quantizer *q) { return ((const Mpq *)q)->points; }

int mpq_layer_points(const Quantizer *q, const float **scales, const int8_t **codes) {
    const Mpq *m = (const Mpq *)q;
    *scales = m->scales, *codes = m->codes;
    return m->approx ? m->max_points : 0;
}

static Tensor *mpq_forward(Quantizer *q, Tape *t, Tensor *w) {
    Mpq *m = (Mpq *)q;
    if (!m->approx)
        DQ_FATAL_HINT("run the calibration batches first (mpq_calibrate_begin/end)", "%s: multipoint weights used before calibration",
                      q->name);
    Tensor *y = tensor_new(t->arena, w->ndim, w->shape);  // a constant: post-training, nothing learns through it
    memcpy(y->data, m->approx, w->numel * sizeof(float));
    return y;
}

static int mpq_bits(const Quantizer *q) { return ((const Mpq *)q)->bits; }

/* Storage per weight: each point's codes (the scales, one float per point and channel, are left
 * out as every method's scales are). */
static double mpq_bits_stored(const Quantizer *q) {
    const Mpq *m = (const Mpq *)q;
    return m->points * m->bits;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Distinct values, ascending; more than 256: 256 of them spread over the range, ends included. */
static int mpq_levels(const Quantizer *q, float *out) {
    const Mpq *m = (const Mpq *)q;
    if (!m->approx) return out[0] = 0, 1;
    size_t n = (size_t)q->elems, d = 0;
    float *v = dq_malloc(n * sizeof *v);
    memcpy(v, m->approx, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_float);
    for (size_t i = 0; i < n; i++)
        if (!d || v[i] != v[d - 1]) v[d++] = v[i];
    int k = d <= 256 ? (int)d : 256;
    for (int j = 0; j < k; j++) out[j] = v[d <= 256 ? (size_t)j : (size_t)j * (d - 1) / 255];
    dq_free(v);
    return k;
}

static void mpq_describe(const Quantizer *q, char *buf, size_t size) {
    const Mpq *m = (const Mpq *)q;
    snprintf(buf, size, "multipoint %d-bit, %.2f points per channel", m->bits, m->points);
}

static void mpq_save(const Quantizer *q, QBytes *b) { (void)q, (void)b; }  // post-training: no run to resume
static bool mpq_load(Quantizer *q, QBytes *b, char *err, size_t es) { return (void)q, (void)b, (void)err, (void)es, true; }

static void mpq_free(Quantizer *q) {
    Mpq *m = (Mpq *)q;
    dq_free(m->approx), dq_free(m->scales), dq_free(m->codes);
    dq_free(q);
}

static const QuantizerOps MPQ_OPS = {.kind = "multipoint", .forward = mpq_forward, .bits = mpq_bits,
                                     .bits_stored = mpq_bits_stored, .levels = mpq_levels, .describe = mpq_describe,
                                     .save = mpq_save, .load = mpq_load, .free = mpq_free};

Quantizer *mpq_new(const char *name, bool pinned, int bits, long long elems) {
    Mpq *m = dq_calloc(1, sizeof *m);
    quantizer_init_base(&m->base, &MPQ_OPS, name, QROLE_WEIGHT, true, pinned, elems);
    m->bits = bits;
    return &m->base;
}

/* ------------------------------------------------------------------ the inputs' moments */
typedef struct Moments {
    double *C;          // per layer: n × n (shared) or channels × n × n (depthwise)
    size_t n;           // fan-in
    long long count;    // patches added
} Moments;

typedef struct Collect {
    QuantContext *qc;
    Moments *layer;     // qc->n_layers
} Collect;

bool mpq_depthwise(const LayerSpec *s) { return s->kind != SPEC_LINEAR && s->groups > 1 && s->groups == s->in && s->in == s->out; }

static void add_outer(double *C, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (v[i] == 0) continue;
        for (size_t j = 0; j < n; j++) C[i * n + j] += (double)v[i] * v[j];
    }
}

long long mpq_add_moments(const LayerSpec *s, const Tensor *x, double *C, size_t n) {
    int N = x->shape[0];
    long long count = 0;
    if (s->kind == SPEC_LINEAR) {
        size_t stride = N > MPQ_PATCHES ? (size_t)N / MPQ_PATCHES : 1;
        DQ_CHECK(x->numel / (size_t)N == n);
        for (size_t r = 0; r < (size_t)N; r += stride) add_outer(C, x->data + r * n, n), count++;
        return count;
    }
    int H = x->shape[1], W = x->shape[2], Cin = x->shape[3], K = s->kernel, S = s->stride, P = s->pad;
    DQ_CHECK(n == (size_t)K * K * (mpq_depthwise(s) ? 1 : Cin));
    int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
    bool dw = mpq_depthwise(s);
    size_t positions = (size_t)N * OH * OW, stride = positions > MPQ_PATCHES ? positions / MPQ_PATCHES : 1;
    float *v = dq_malloc(n * sizeof *v);
    for (size_t p = 0; p < positions; p += stride) {
        int img = (int)(p / ((size_t)OH * OW)), oh = (int)(p / (size_t)OW % (size_t)OH), ow = (int)(p % (size_t)OW);
        for (int ch = 0; ch < (dw ? Cin : 1); ch++) {
            size_t k = 0;
            for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                    int ih = oh * S - P + kh, iw = ow * S - P + kw;
                    bool in = ih >= 0 && ih < H && iw >= 0 && iw < W;
                    const float *px = x->data + (((size_t)img * H + (in ? ih : 0)) * W + (in ? iw : 0)) * Cin;
                    if (dw) v[k++] = in ? px[ch] : 0;
                    else
                        for (int ci = 0; ci < Cin; ci++) v[k++] = in ? px[ci] : 0;
                }
            add_outer(C + (dw ? (size_t)ch * n * n : 0), v, n);
        }
        count++;
    }
    dq_free(v);
    return count;
}

static void collect(void *ctx, const QuantLayer *l, const Tensor *x) {
    Collect *c = ctx;
    int li = 0;
    while (c->qc->layers[li] != l) li++;
    Moments *mo = &c->layer[li];
    mo->count += mpq_add_moments(&l->spec, x, mo->C, mo->n);
}

void mpq_calibrate_begin(QuantContext *qc) {
    Collect *c = dq_calloc(1, sizeof *c);
    c->qc = qc;
    c->layer = dq_calloc((size_t)qc->n_layers, sizeof *c->layer);
    for (int i = 0; i < qc->n_layers; i++) {
        const QuantLayer *l = qc->layers[i];
        Moments *mo = &c->layer[i];
        mo->n = l->weight->numel / (size_t)l->spec.out;
        mo->C = dq_calloc((mpq_depthwise(&l->spec) ? (size_t)l->spec.out : 1) * mo->n * mo->n, sizeof *mo->C);
    }
    qc->tap = collect, qc->tap_ctx = c;
}

bool mpq_calibrate_end(QuantContext *qc, double avg_points, char *err, size_t es) {
    Collect *c = qc->tap_ctx;
    DQ_CHECK(qc->tap == collect && c);
    qc->tap = NULL, qc->tap_ctx = NULL;
    bool ok = true;
    for (int i = 0; i < qc->n_layers && ok; i++) {
        QuantLayer *l = qc->layers[i];
        Mpq *m = (Mpq *)l->wq;
        Moments *mo = &c->layer[i];
        const LayerSpec *s = &l->spec;
        if (!mpq_is(l->wq)) continue;
        if (s->kind != SPEC_LINEAR && s->groups > 1 && !mpq_depthwise(s)) {
            ok = dq_fail(err, es, "%s: multipoint handles dense and depthwise convolutions, not %d groups", l->base.name, s->groups);
            break;
        }
        if (mo->count == 0) {
            ok = dq_fail(err, es, "%s: no calibration data reached the layer", l->base.name);
            break;
        }
        size_t total = (mpq_depthwise(s) ? (size_t)s->out : 1) * mo->n * mo->n;
        for (size_t k = 0; k < total; k++) mo->C[k] /= (double)mo->count;
        int k = s->out, budget = l->wq->pinned ? k : (int)lround(avg_points * k);
        if (budget < k) budget = k;
        int *points = dq_malloc((size_t)k * sizeof *points);
        size_t numel = l->weight->numel;
        dq_free(m->approx), dq_free(m->scales), dq_free(m->codes);
        m->approx = dq_malloc(numel * sizeof *m->approx);
        m->scales = dq_malloc((size_t)MP_MAX_POINTS * k * sizeof *m->scales);
        m->codes = dq_malloc(MP_MAX_POINTS * numel);
        mp_allocate_points(l->weight->data, k, mo->n, 1, (size_t)k, mo->C, mpq_depthwise(s) ? mo->n * mo->n : 0, m->bits,
                           budget, m->approx, points, m->scales, m->codes, numel);
        long long sum = 0;
        m->max_points = 0;
        for (int j = 0; j < k; j++) sum += points[j], m->max_points = points[j] > m->max_points ? points[j] : m->max_points;
        m->points = (double)sum / k, m->channels = k, m->fan_in = (long long)mo->n;
        dq_free(points);
    }
    for (int i = 0; i < qc->n_layers; i++) dq_free(c->layer[i].C);
    dq_free(c->layer), dq_free(c);
    return ok;
}
