/* quantizer.c — dispatch, calibration pass-through, state bytes, percentiles. */
#include "quantizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

void qbytes_put(QBytes *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = dq_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

bool qbytes_get(QBytes *b, void *dst, size_t n) {
    if (b->len - b->pos < n) return false;
    memcpy(dst, b->p + b->pos, n);
    b->pos += n;
    return true;
}

QBytes qbytes_view(const uint8_t *data, size_t n) {
    return (QBytes){.p = (uint8_t *)(uintptr_t)data, .len = n, .cap = n};
}

void quantizer_init_base(Quantizer *q, const QuantizerOps *ops, const char *name, QuantRole role,
                         bool is_signed, bool pinned, long long elems) {
    q->ops = ops;
    if (strlen(name) >= sizeof q->name) DQ_FATAL("quantizer name '%s' is too long", name);
    strcpy(q->name, name);
    q->role = role, q->is_signed = is_signed, q->pinned = pinned, q->elems = elems;
    q->bypass = true;
}

Tensor *quantizer_forward(Quantizer *q, Tape *t, Tensor *x) {
    if (q->bypass) return x;
    if (q->calibrating) {
        if (q->ops->observe) q->ops->observe(q, x);
        return x;
    }
    return q->ops->forward(q, t, x);
}

double quantizer_bits_stored(const Quantizer *q) { return q->ops->bits_stored ? q->ops->bits_stored(q) : q->ops->bits(q); }

void quantizer_free(Quantizer *q) {
    if (!q) return;
    if (q->ops->free) q->ops->free(q);
    else dq_free(q);
}

void qsamples_add(QSamples *s, const Tensor *x) {
    size_t stride = x->numel / 65536 + 1;
    for (size_t i = 0; i < x->numel; i += stride) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 65536;
            s->v = dq_realloc(s->v, s->cap * sizeof(float));
        }
        s->v[s->n++] = x->data[i];
    }
}

void qsamples_free(QSamples *s) {
    dq_free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float quant_percentile(const float *x, size_t n, double p) {
    DQ_CHECK(n > 0);
    float *c = dq_malloc(n * sizeof(float));
    memcpy(c, x, n * sizeof(float));
    qsort(c, n, sizeof *c, cmp_float);
    double pos = p / 100.0 * (double)(n - 1);
    size_t i = (size_t)pos;
    float v = i + 1 < n ? c[i] + (float)(pos - (double)i) * (c[i + 1] - c[i]) : c[n - 1];
    dq_free(c);
    return v;
}
