/* precise_bn.c — BatchNorm statistics averaged over batches (see precise_bn.h). */
#include "precise_bn.h"

#include "basic.h"
#include "core/error.h"

static void collect(Layer *l, void *ctx) {
    PreciseBn *p = ctx;
    if (layer_info(l).kind != LAYER_BATCHNORM) return;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->layers = dq_realloc(p->layers, (size_t)p->cap * sizeof *p->layers);
        p->momentum = dq_realloc(p->momentum, (size_t)p->cap * sizeof *p->momentum);
        p->frozen = dq_realloc(p->frozen, (size_t)p->cap * sizeof *p->frozen);
    }
    p->momentum[p->n] = batchnorm_set_momentum(l, 1);
    p->frozen[p->n] = batchnorm_set_frozen(l, false);
    p->layers[p->n++] = l;
}

static size_t total_channels(const PreciseBn *p) {
    size_t c = 0;
    for (int i = 0; i < p->n; i++) c += layer_info(p->layers[i]).mean->numel;
    return c;
}

void precise_bn_begin(PreciseBn *p, Layer *net) {
    *p = (PreciseBn){0};
    layer_visit(net, collect, p);
    p->sum = dq_calloc(2 * total_channels(p) + 1, sizeof *p->sum);
}

void precise_bn_add(PreciseBn *p) {
    double *s = p->sum;
    for (int i = 0; i < p->n; i++) {
        LayerInfo info = layer_info(p->layers[i]);
        size_t c = info.mean->numel;
        for (size_t k = 0; k < c; k++) s[k] += info.mean->data[k], s[c + k] += info.var->data[k];
        s += 2 * c;
    }
    p->batches++;
}

int precise_bn_end(PreciseBn *p) {
    const double *s = p->sum;
    for (int i = 0; i < p->n; i++) {
        LayerInfo info = layer_info(p->layers[i]);
        size_t c = info.mean->numel;
        for (size_t k = 0; p->batches && k < c; k++)
            info.mean->data[k] = (float)(s[k] / p->batches), info.var->data[k] = (float)(s[c + k] / p->batches);
        s += 2 * c;
        batchnorm_set_momentum(p->layers[i], p->momentum[i]);
        batchnorm_set_frozen(p->layers[i], p->frozen[i]);
    }
    int batches = p->batches;
    dq_free(p->layers), dq_free(p->momentum), dq_free(p->frozen), dq_free(p->sum);
    *p = (PreciseBn){0};
    return batches;
}
