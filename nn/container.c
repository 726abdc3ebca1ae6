/* container.c — sequential and residual containers. */
#include "container.h"

#include <string.h>

#include "core/error.h"
#include "core/ops.h"

typedef struct Sequential {
    Layer base;
    Layer **items;
    int n, cap;
} Sequential;

/* In evaluation (no gradients, running statistics) a BatchNorm after a layer that can fuse it is
 * applied as that layer's epilogue, to the same bits: one pass over the output instead of two. */
static bool fuse_batchnorm(const Tape *t, const Layer *l, const Layer *next, LayerInfo *bn) {
    if (!t->no_grad || t->training || !l->ops->forward_affine) return false;
    *bn = layer_info(next);
    return bn->kind == LAYER_BATCHNORM;
}

static Tensor *conv_batchnorm(Layer *conv, Tape *t, Tensor *x, const LayerInfo *bn) {
    int C = (int)bn->gamma->numel;
    float *mean = arena_floats(t->arena, 4 * (size_t)C), *invstd = mean + C, *scale = invstd + C, *shift = scale + C;
    batchnorm_eval_stats(mean, invstd, bn->mean->data, bn->var->data, bn->eps, C);
    batchnorm_affine(scale, shift, mean, invstd, bn->gamma->data, bn->beta->data, C);
    ChannelAffine after = {.scale = scale, .shift = shift, .act = bn->act};
    return conv->ops->forward_affine(conv, t, x, &after);
}

/* t->compact: y, the output of the layer just run, moved to the mark and everything after it given
 * back (the previous output and the layer's intermediates: with no_grad nothing refers to them).
 * Only the place of the values changes, never the values. */
static Tensor *keep_only(Tape *t, ArenaMark m, Tensor *y) {
    Tensor keep = *y;
    size_t bytes = keep.numel * sizeof(float);
    if (!arena_release(t->arena, m)) return y;  // spilled since the mark: keep everything
    float *data = arena_floats(t->arena, keep.numel);  // at the mark, so at or below y's values
    if (data != keep.data) memmove(data, keep.data, bytes);
    Tensor *out = arena_alloc(t->arena, sizeof *out);
    *out = keep;
    out->data = data;
    return out;
}

static Tensor *seq_forward(Layer *l, Tape *t, Tensor *x) {
    Sequential *s = (Sequential *)l;
    bool compact = t->compact && t->no_grad;
    ArenaMark m = arena_mark(t->arena);
    for (int i = 0; i < s->n; i++) {
        LayerInfo bn;
        if (i + 1 < s->n && fuse_batchnorm(t, s->items[i], s->items[i + 1], &bn)) {
            x = conv_batchnorm(s->items[i], t, x, &bn);
            i++;
        } else {
            x = layer_forward(s->items[i], t, x);
        }
        if (compact) x = keep_only(t, m, x);
    }
    return x;
}

static int seq_children(Layer *l, Layer ***out) {
    Sequential *s = (Sequential *)l;
    *out = s->items;
    return s->n;
}

static void seq_free(Layer *l) {
    dq_free(((Sequential *)l)->items);
    dq_free(l);
}

static void seq_info(const Layer *l, LayerInfo *i) { *i = (LayerInfo){.kind = LAYER_SEQUENTIAL}; }

static const LayerOps SEQ_OPS = {.kind = "sequential", .forward = seq_forward, .free = seq_free,
                                 .children = seq_children, .info = seq_info};

Layer *sequential_new(const char *name) {
    Sequential *s = dq_calloc(1, sizeof *s);
    s->base.ops = &SEQ_OPS;
    layer_set_name(&s->base, name);
    return &s->base;
}

Layer *sequential_add(Layer *seq, Layer *item) {
    DQ_CHECK(seq->ops == &SEQ_OPS);
    Sequential *s = (Sequential *)seq;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->items = dq_realloc(s->items, (size_t)s->cap * sizeof *s->items);
    }
    s->items[s->n++] = item;
    return item;
}

int sequential_len(Layer *seq) {
    DQ_CHECK(seq->ops == &SEQ_OPS);
    return ((Sequential *)seq)->n;
}

typedef struct Residual {
    Layer base;
    Layer *kids[2];   // body, shortcut (NULL = identity)
    bool relu_after;
} Residual;

static Tensor *res_forward(Layer *l, Tape *t, Tensor *x) {
    Residual *r = (Residual *)l;
    Tensor *y = layer_forward(r->kids[0], t, x);
    Tensor *s = r->kids[1] ? layer_forward(r->kids[1], t, x) : x;
    return op_add_act(t, y, s, r->relu_after ? ACT_RELU : ACT_NONE);
}

static int res_children(Layer *l, Layer ***out) {
    Residual *r = (Residual *)l;
    *out = r->kids;
    return r->kids[1] ? 2 : 1;
}

static void res_info(const Layer *l, LayerInfo *i) {
    *i = (LayerInfo){.kind = LAYER_RESIDUAL, .relu_after = ((const Residual *)l)->relu_after};
}

static const LayerOps RES_OPS = {.kind = "residual", .forward = res_forward, .children = res_children,
                                 .info = res_info};

Layer *residual_new(const char *name, Layer *body, Layer *shortcut, bool relu_after) {
    Residual *r = dq_calloc(1, sizeof *r);
    r->base.ops = &RES_OPS;
    layer_set_name(&r->base, name);
    r->kids[0] = body;
    r->kids[1] = shortcut;
    r->relu_after = relu_after;
    return &r->base;
}
